//! `memchat repair NAME`: the way out of a damaged active log or archive.
//! Every line that cannot be read goes, byte for byte, to a quarantine file
//! (copied in bounded chunks, so a line of any size can be moved out); every
//! good line is kept; the file is then replaced atomically. Nothing is dropped.

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::{self, Header, LineError, Record};
use super::lines::Lines;
use super::{SessionPaths, StoreError, files, pending};

/// What a repair did to one file.
#[derive(Debug)]
pub struct FileRepair {
    pub path: PathBuf,
    pub kept: usize,
    /// Line numbers (1-based) that were moved out, with the reason.
    pub quarantined: Vec<(usize, String)>,
    pub quarantine_file: Option<PathBuf>,
    pub header_added: bool,
}

/// What a repair did: to the active log, and to the archive if there is one.
#[derive(Debug)]
pub struct RepairReport {
    pub log: Option<FileRepair>,
    pub archive: Option<FileRepair>,
}

impl RepairReport {
    /// The report as `memchat repair` prints it.
    pub fn describe(&self, name: &str) -> String {
        let mut out = String::new();
        let mut changed = false;
        for (file, what) in [
            (&self.log, name.to_string()),
            (&self.archive, format!("{name}'s archive")),
        ] {
            let Some(file) = file else { continue };
            match &file.quarantine_file {
                Some(path) => {
                    changed = true;
                    let bad = file.quarantined.len();
                    let lines = if bad == 1 { "line" } else { "lines" };
                    let _ = writeln!(
                        out,
                        "repaired {what}: kept {} records, moved {bad} bad {lines} to {}",
                        file.kept,
                        path.display()
                    );
                    for (line, reason) in &file.quarantined {
                        let _ = writeln!(out, "  line {line}: {reason}");
                    }
                }
                None if file.header_added => {
                    changed = true;
                    let _ = writeln!(
                        out,
                        "repaired {what}: added the missing header; kept {} records",
                        file.kept
                    );
                }
                None => {}
            }
        }
        if !changed {
            let records = self.log.as_ref().map_or(0, |f| f.kept);
            let archived = match &self.archive {
                Some(archive) => format!(" ({} archived)", archive.kept),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{name} is healthy: {records} records{archived}, nothing to repair"
            );
        }
        out
    }
}

/// Repairs the active log and the archive of session `name` in `dir`.
pub fn repair(dir: &Path, name: &str, lock_wait: Duration) -> Result<RepairReport, StoreError> {
    super::validate_session_name(name)?;
    files::check_dir(dir)?;
    pending::settle(dir, Some(name), lock_wait)?;
    let paths = SessionPaths::new(dir, name);
    if !paths.exists() {
        return Err(StoreError::NotFound(name.to_string()));
    }
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    Ok(RepairReport {
        log: repair_file(&paths, name, &paths.log, Kind::Log)?,
        archive: repair_file(&paths, name, &paths.archive, Kind::Archive)?,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `seq` must rise line by line; the header remembers the last one.
    Log,
    /// Records in the order they were archived (not always rising).
    Archive,
}

fn repair_file(
    paths: &SessionPaths,
    name: &str,
    path: &Path,
    kind: Kind,
) -> Result<Option<FileRepair>, StoreError> {
    let Some(file) = files::open_read(path)? else {
        return Ok(None);
    };
    let mut lines = Lines::new(BufReader::new(file), format::MAX_LINE_BYTES);
    let mut header: Option<Header> = None;
    let mut header_line: Option<Vec<u8>> = None;
    let mut kept_lines: Vec<u8> = Vec::new();
    let mut kept = 0usize;
    let mut bad_ranges = Vec::new();
    let mut quarantined = Vec::new();
    let mut last_seq = 0u64;
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
        let outcome = match format::parse_read_line(&line, header.is_none()) {
            Err(LineError::NotAHeader) => format::parse_read_line(&line, false),
            other => other,
        };
        let reason = match outcome {
            Ok(Record::Header(h)) => {
                header = Some(h);
                header_line = line.bytes;
                continue;
            }
            Ok(record) => match record.seq() {
                Some(seq) if kind == Kind::Log && seq <= last_seq => {
                    format!("seq {seq} does not rise")
                }
                seq => {
                    last_seq = last_seq.max(seq.unwrap_or(0));
                    kept += 1;
                    kept_lines.extend(line.bytes.unwrap_or_default());
                    kept_lines.push(b'\n');
                    continue;
                }
            },
            Err(LineError::UnsupportedVersion(v)) => {
                // Never rewrite a newer program's file.
                return Err(StoreError::Unsupported {
                    path: path.to_path_buf(),
                    reason: LineError::UnsupportedVersion(v).to_string(),
                });
            }
            Err(e) => e.to_string(),
        };
        quarantined.push((line.number, reason));
        bad_ranges.push((line.offset, line.len));
    }
    let header_added = header.is_none() && (kept > 0 || !bad_ranges.is_empty());
    let quarantine_file = if bad_ranges.is_empty() {
        None
    } else {
        let target = paths.quarantine(name);
        let mut source = files::open_read(path)?.ok_or_else(|| {
            StoreError::io(
                "cannot read",
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        files::copy_ranges_to_new(&mut source, path, &bad_ranges, &target, true)?;
        Some(target)
    };
    if quarantine_file.is_some() || header_added {
        let mut bytes = match (kind, header, header_line) {
            (Kind::Archive, Some(_), Some(raw)) => {
                let mut raw = raw;
                raw.push(b'\n');
                raw
            }
            (_, header, _) => {
                let mut header = header.unwrap_or_else(|| Header::new(name, format::now()));
                if kind == Kind::Log {
                    header.last_seq = Some(header.last_seq.unwrap_or(0).max(last_seq));
                }
                format::to_line(&Record::Header(header))
            }
        };
        bytes.extend(kept_lines);
        files::replace_atomically(path, &bytes)?;
    }
    Ok(Some(FileRepair {
        path: path.to_path_buf(),
        kept,
        quarantined,
        quarantine_file,
        header_added,
    }))
}
