//! A session's archive: every record compaction, `/clear` or `/undo` took out
//! of the active log, append-only.
//!
//! It is read like the log: a damaged line is an error naming the file and
//! line (never silently left out of `show --all` or `export`), and `repair`
//! quarantines it. The one tolerated flaw is an unterminated last line, a
//! crash mid-append: its records are still in the active log (the log is
//! rewritten only after the archive append is durable), so it is skipped on
//! read and moved to a quarantine file before the next append.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::format::{self, Header, LineError, Record};
use super::lines::Lines;
use super::{SessionPaths, StoreError, files};

/// Appends records to a session's archive and fsyncs it.
pub fn append(paths: &SessionPaths, name: &str, records: &[Record]) -> Result<(), StoreError> {
    let (mut file, created) = files::open_append(&paths.archive)?;
    heal_torn_tail(&mut file, paths, name)?;
    let mut bytes = Vec::new();
    let empty = file
        .metadata()
        .map_err(|e| StoreError::io("cannot inspect", &paths.archive, e))?
        .len()
        == 0;
    if empty {
        bytes.extend(format::to_line(&Record::Header(Header::new(
            name,
            format::now(),
        ))));
    }
    for record in records {
        bytes.extend(format::to_line(record));
    }
    files::append_durably(&mut file, &paths.archive, &bytes)?;
    if created {
        files::sync_dir(&paths.dir)?;
    }
    Ok(())
}

/// If the archive's last line lacks its `\n` (a crash mid-append), either
/// completes it (the record is whole) or moves it to a quarantine file and
/// cuts it off, so the next records start on a line of their own and the
/// archive holds no damage in its middle.
fn heal_torn_tail(file: &mut File, paths: &SessionPaths, name: &str) -> Result<(), StoreError> {
    let path = &paths.archive;
    let read_error = |e| StoreError::io("cannot read", path, e);
    let end = file.metadata().map_err(read_error)?.len();
    if end == 0 || last_byte(file, end).map_err(read_error)? == b'\n' {
        return Ok(());
    }
    let start = start_of_last_line(file, end).map_err(read_error)?;
    let len = end - start;
    if len <= format::MAX_LINE_BYTES as u64 {
        let mut line = Vec::new();
        file.seek(SeekFrom::Start(start)).map_err(read_error)?;
        Read::by_ref(file)
            .take(len)
            .read_to_end(&mut line)
            .map_err(read_error)?;
        if format::parse_line(&line, start == 0).is_ok() {
            return files::append_durably(file, path, b"\n");
        }
    }
    let quarantine = paths.quarantine(name);
    files::copy_ranges_to_new(file, path, &[(start, len)], &quarantine, false)?;
    file.set_len(start)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("cannot truncate the torn line of", path, e))
}

fn last_byte(file: &mut File, end: u64) -> std::io::Result<u8> {
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(end - 1))?;
    file.read_exact(&mut byte)?;
    Ok(byte[0])
}

/// The offset just after the last `\n` before `end` (0 if none), found by
/// reading backwards in bounded chunks.
fn start_of_last_line(file: &mut File, end: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut pos = end;
    while pos > 0 {
        let from = pos.saturating_sub(CHUNK);
        let piece = &mut buf[..(pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(piece)?;
        if let Some(i) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        pos = from;
    }
    Ok(0)
}

/// The session an archive file belongs to, for messages.
fn session_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .and_then(|n| n.strip_suffix(".archive.jsonl").map(str::to_string))
        .unwrap_or_default()
}

/// Reads an archive, dropping duplicates by `seq` (left by a crash between
/// the archive append and the active rewrite). Returns the records in `seq`
/// order and the number of torn last lines skipped (0 or 1). A damaged line
/// anywhere else is [`StoreError::Corrupt`] with its line number.
pub fn read_archive(path: &Path) -> Result<(Vec<Record>, usize), StoreError> {
    let Some(file) = files::open_read(path)? else {
        return Ok((Vec::new(), 0));
    };
    let session = session_of(path);
    let mut lines = Lines::new(BufReader::new(file), format::MAX_LINE_BYTES);
    let mut records = Vec::new();
    let mut torn = 0;
    let mut seen_header = false;
    while let Some(line) = lines
        .next_line()
        .map_err(|e| StoreError::io("cannot read", path, e))?
    {
        if line
            .bytes
            .as_ref()
            .is_some_and(|b| b.iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }
        match format::parse_read_line(&line, !seen_header) {
            Ok(Record::Header(_)) => seen_header = true,
            // Settings belong to the active log; an archive never holds one.
            Ok(Record::Settings(_)) => {}
            Ok(record) => records.push(record),
            Err(LineError::UnsupportedVersion(v)) => {
                return Err(StoreError::Unsupported {
                    path: path.to_path_buf(),
                    reason: LineError::UnsupportedVersion(v).to_string(),
                });
            }
            Err(_) if line.is_last && !line.terminated => torn += 1,
            Err(reason) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    line: line.number,
                    reason: reason.to_string(),
                    session,
                });
            }
        }
    }
    records.sort_by_key(|r| r.seq());
    records.dedup_by_key(|r| r.seq());
    Ok((records, torn))
}

/// The highest `seq` in an archive (0 when it is empty or missing).
pub fn max_seq(path: &Path) -> Result<u64, StoreError> {
    let (records, _) = read_archive(path)?;
    Ok(records.iter().filter_map(Record::seq).max().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::format::{MessageRecord, Role};

    fn message(seq: u64) -> Record {
        Record::Message(MessageRecord {
            seq,
            role: Role::User,
            content: format!("m{seq}"),
            at: "x".into(),
            model: None,
            interrupted: false,
            truncated: false,
            tokens: None,
            usage: None,
            late_tokens: None,
        })
    }

    #[test]
    fn a_torn_tail_is_quarantined_before_the_next_append_and_damage_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = SessionPaths::new(tmp.path(), "s");
        append(&paths, "s", &[message(1)]).unwrap();
        let mut bytes = std::fs::read(&paths.archive).unwrap();
        bytes.extend_from_slice(br#"{"type":"message","seq":2,"ro"#);
        std::fs::write(&paths.archive, &bytes).unwrap();
        assert_eq!(read_archive(&paths.archive).unwrap().1, 1);
        append(&paths, "s", &[message(2)]).unwrap();
        let (records, torn) = read_archive(&paths.archive).unwrap();
        assert_eq!((records.len(), torn), (2, 0));
        let quarantined: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(quarantined.len(), 1);

        let mut bytes = std::fs::read(&paths.archive).unwrap();
        bytes.extend_from_slice(b"garbage\n");
        bytes.extend(format::to_line(&message(3)));
        std::fs::write(&paths.archive, &bytes).unwrap();
        let err = read_archive(&paths.archive).unwrap_err();
        assert!(err.to_string().contains("s.archive.jsonl:4:"), "{err}");
    }
}
