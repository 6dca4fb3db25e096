//! One open session: the exclusive lock, loading (with torn-write recovery),
//! durable appends, and the atomic rewrite that moves records to the archive.
//!
//! Invariants kept here: every append is one `write_all` plus `sync_data`; a
//! rewrite appends to the archive and fsyncs it *before* the active log is
//! replaced, so a crash in between leaves duplicates (dropped by `seq` on
//! read), never a loss; `seq` rises strictly over the session's whole life.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use super::files;
use super::format::{
    self, Header, LineError, MessageRecord, Record, Role, SummaryRecord, TokenCache,
};
use super::{SessionPaths, StoreError};

/// A read-only view of a session's active log, as parsed.
#[derive(Debug, Clone, Default)]
pub struct LogContents {
    pub header: Option<Header>,
    /// The effective system prompt: the newest system message.
    pub system: Option<MessageRecord>,
    pub summary: Option<SummaryRecord>,
    /// User and assistant messages, oldest first.
    pub messages: Vec<MessageRecord>,
    /// Records superseded in the active log (older system prompts or
    /// summaries); archived at the next rewrite.
    pub stale: Vec<Record>,
    pub last_seq: u64,
    /// A final line that was cut short by a crash: its byte offset and bytes.
    pub torn: Option<(u64, Vec<u8>)>,
    /// The final line parsed but lacked its `\n`.
    pub missing_newline: bool,
}

/// Parses an active log. `path` and `session` only name things in errors.
pub fn parse_log(bytes: &[u8], path: &Path, session: &str) -> Result<LogContents, StoreError> {
    let mut out = LogContents::default();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    let mut last_seen_seq = 0u64;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let line_start = offset;
        offset += line.len() + usize::from(terminated);
        let is_last = offset >= bytes.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            if !terminated {
                out.torn = Some((line_start as u64, line.to_vec()));
            }
            continue;
        }
        let first = out.header.is_none();
        let parsed = format::parse_line(line, first);
        let record = match parsed {
            Ok(record) => record,
            Err(LineError::UnsupportedVersion(v)) => {
                return Err(StoreError::Unsupported {
                    path: path.to_path_buf(),
                    reason: LineError::UnsupportedVersion(v).to_string(),
                });
            }
            Err(LineError::Json(_) | LineError::NotUtf8) if is_last => {
                // A crash mid-append leaves a partial last line: a torn write,
                // not corruption. The caller keeps a copy and truncates it.
                out.torn = Some((line_start as u64, line.to_vec()));
                continue;
            }
            Err(reason) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason: reason.to_string(),
                    session: session.to_string(),
                });
            }
        };
        if !terminated {
            out.missing_newline = true;
        }
        if let Some(seq) = record.seq() {
            if seq <= last_seen_seq {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason: format!(
                        "seq {seq} does not rise (the line before has {last_seen_seq})"
                    ),
                    session: session.to_string(),
                });
            }
            last_seen_seq = seq;
        }
        match record {
            Record::Header(header) => {
                out.last_seq = out.last_seq.max(header.last_seq.unwrap_or(0));
                out.header = Some(header);
            }
            Record::Summary(summary) => {
                out.last_seq = out.last_seq.max(summary.seq);
                if let Some(old) = out.summary.replace(summary) {
                    out.stale.push(Record::Summary(old));
                }
            }
            Record::Message(message) => {
                out.last_seq = out.last_seq.max(message.seq);
                if message.role == Role::System {
                    if let Some(old) = out.system.replace(message) {
                        out.stale.push(Record::Message(old));
                    }
                } else {
                    out.messages.push(message);
                }
            }
        }
    }
    Ok(out)
}

/// An open, locked session.
#[derive(Debug)]
pub struct Session {
    name: String,
    paths: SessionPaths,
    log: File,
    _lock: File,
    contents: LogContents,
    /// Warnings from opening (a torn write recovered), for the front-end.
    notices: Vec<String>,
}

impl Session {
    /// Opens (creating if needed) the session `name` in `dir`, holding its
    /// lock. A torn final line is copied to a quarantine file and truncated.
    pub fn open(dir: &Path, name: &str, lock_wait: Duration) -> Result<Session, StoreError> {
        files::create_private_dir(dir)?;
        let paths = SessionPaths::new(dir, name);
        let lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
        files::remove_stale_temp_files(dir, &format!("{name}.jsonl"));
        let bytes = match std::fs::read(&paths.log) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io("cannot read", &paths.log, e)),
        };
        let mut contents = parse_log(&bytes, &paths.log, name)?;
        let mut notices = Vec::new();
        let (mut log, created) = files::open_append(&paths.log)?;
        if let Some((offset, torn)) = contents.torn.take() {
            let quarantine = paths.quarantine(name);
            files::write_new_private(&quarantine, &torn)?;
            log.set_len(offset)
                .and_then(|()| log.sync_all())
                .map_err(|e| StoreError::io("cannot truncate the torn line of", &paths.log, e))?;
            notices.push(format!(
                "{}: the last line was cut short by an earlier crash; it was moved to {} and \
                 the session continues from the line before",
                paths.log.display(),
                quarantine.display()
            ));
        }
        if contents.missing_newline {
            // The record is whole, only its terminator was lost: complete it.
            files::append_durably(&mut log, &paths.log, b"\n")?;
            contents.missing_newline = false;
        }
        if contents.header.is_none() {
            let header = Header::new(name, format::now());
            files::append_durably(
                &mut log,
                &paths.log,
                &format::to_line(&Record::Header(header.clone())),
            )?;
            contents.header = Some(header);
        }
        if created {
            files::sync_dir(dir)?;
        }
        let mut session = Session {
            name: name.to_string(),
            paths,
            log,
            _lock: lock,
            contents,
            notices,
        };
        if !session.contents.stale.is_empty() {
            session.rewrite(Vec::new())?;
        }
        Ok(session)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn paths(&self) -> &SessionPaths {
        &self.paths
    }
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
    pub fn system(&self) -> Option<&MessageRecord> {
        self.contents.system.as_ref()
    }
    pub fn summary(&self) -> Option<&SummaryRecord> {
        self.contents.summary.as_ref()
    }
    /// User and assistant messages of the active log, oldest first.
    pub fn messages(&self) -> &[MessageRecord] {
        &self.contents.messages
    }
    pub fn messages_mut(&mut self) -> &mut [MessageRecord] {
        &mut self.contents.messages
    }
    pub fn system_mut(&mut self) -> Option<&mut MessageRecord> {
        self.contents.system.as_mut()
    }
    pub fn summary_mut(&mut self) -> Option<&mut SummaryRecord> {
        self.contents.summary.as_mut()
    }
    pub fn last_seq(&self) -> u64 {
        self.contents.last_seq
    }

    /// Appends a message durably (written and fsynced before this returns).
    pub fn append(
        &mut self,
        role: Role,
        content: String,
        model: Option<String>,
        interrupted: bool,
        tokens: Option<TokenCache>,
    ) -> Result<&MessageRecord, StoreError> {
        self.append_with_usage(role, content, model, interrupted, false, tokens, None)
    }

    /// [`Session::append`] for a reply, with the server's usage report and
    /// whether memchat stopped it at the reply cap.
    #[allow(clippy::too_many_arguments)]
    pub fn append_with_usage(
        &mut self,
        role: Role,
        content: String,
        model: Option<String>,
        interrupted: bool,
        truncated: bool,
        tokens: Option<TokenCache>,
        usage: Option<format::UsageRecord>,
    ) -> Result<&MessageRecord, StoreError> {
        let record = MessageRecord {
            seq: self.contents.last_seq + 1,
            role,
            content,
            at: format::now(),
            model,
            interrupted,
            truncated,
            tokens,
            usage,
        };
        let line = format::to_line(&Record::Message(record.clone()));
        files::append_durably(&mut self.log, &self.paths.log, &line)?;
        self.contents.last_seq = record.seq;
        if role == Role::System {
            // A new system prompt supersedes the old one: archive it now so the
            // active log holds one.
            let old = self.contents.system.replace(record);
            if let Some(old) = old {
                self.rewrite(vec![Record::Message(old)])?;
            }
            return self
                .contents
                .system
                .as_ref()
                .ok_or_else(|| unreachable_state(&self.paths.log));
        }
        self.contents.messages.push(record);
        self.contents
            .messages
            .last()
            .ok_or_else(|| unreachable_state(&self.paths.log))
    }

    /// Compaction: the first `evict` messages and the old summary go to the
    /// archive; `summary` becomes the one summary of the active log.
    pub fn compact(
        &mut self,
        evict: usize,
        summary: String,
        method: &str,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError> {
        let evict = evict.min(self.contents.messages.len());
        let evicted: Vec<MessageRecord> = self.contents.messages[..evict].to_vec();
        let first_covered = self
            .contents
            .summary
            .as_ref()
            .map(|s| s.covers[0])
            .or_else(|| evicted.first().map(|m| m.seq));
        let last_covered = evicted
            .last()
            .map(|m| m.seq)
            .or_else(|| self.contents.summary.as_ref().map(|s| s.covers[1]));
        let (Some(first), Some(last)) = (first_covered, last_covered) else {
            return Ok(());
        };
        let new_summary = SummaryRecord {
            seq: self.contents.last_seq + 1,
            content: summary,
            covers: [first, last],
            at: format::now(),
            method: method.to_string(),
            tokens,
        };
        let mut archived: Vec<Record> = Vec::new();
        if let Some(old) = &self.contents.summary {
            archived.push(Record::Summary(old.clone()));
        }
        archived.extend(evicted.into_iter().map(Record::Message));
        let previous = self.contents.clone();
        self.contents.messages.drain(..evict);
        self.contents.summary = Some(new_summary);
        self.contents.last_seq += 1;
        self.rewrite_or_restore(archived, previous)
    }

    /// Moves the summary and every message to the archive (`/clear`, `--new`).
    /// The system prompt stays.
    pub fn clear(&mut self) -> Result<usize, StoreError> {
        let mut archived: Vec<Record> = Vec::new();
        if let Some(old) = &self.contents.summary {
            archived.push(Record::Summary(old.clone()));
        }
        archived.extend(self.contents.messages.iter().cloned().map(Record::Message));
        let moved = archived.len();
        if moved == 0 {
            return Ok(0);
        }
        let previous = self.contents.clone();
        self.contents.summary = None;
        self.contents.messages.clear();
        self.rewrite_or_restore(archived, previous)?;
        Ok(moved)
    }

    /// Moves the messages from index `from` on to the archive (`/undo`, `/retry`).
    pub fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError> {
        let from = from.min(self.contents.messages.len());
        let archived: Vec<Record> = self.contents.messages[from..]
            .iter()
            .cloned()
            .map(Record::Message)
            .collect();
        if archived.is_empty() {
            return Ok(0);
        }
        let moved = archived.len();
        let previous = self.contents.clone();
        self.contents.messages.truncate(from);
        self.rewrite_or_restore(archived, previous)?;
        Ok(moved)
    }

    /// Rewrites the active log so cached token counts are persisted.
    pub fn persist_token_counts(&mut self) -> Result<(), StoreError> {
        self.rewrite(Vec::new())
    }

    fn rewrite_or_restore(
        &mut self,
        archived: Vec<Record>,
        previous: LogContents,
    ) -> Result<(), StoreError> {
        let result = self.rewrite(archived);
        if result.is_err() {
            self.contents = previous;
        }
        result
    }

    /// Appends `archived` (plus stale records) to the archive durably, then
    /// replaces the active log atomically with the in-memory state.
    fn rewrite(&mut self, mut archived: Vec<Record>) -> Result<(), StoreError> {
        archived.append(&mut self.contents.stale);
        archived.sort_by_key(|r| r.seq());
        if !archived.is_empty() {
            append_to_archive(&self.paths, &self.name, &archived)?;
        }
        let mut header = self
            .contents
            .header
            .clone()
            .unwrap_or_else(|| Header::new(&self.name, format::now()));
        header.last_seq = Some(self.contents.last_seq);
        let mut records: Vec<Record> = Vec::new();
        records.extend(self.contents.system.iter().cloned().map(Record::Message));
        records.extend(self.contents.summary.iter().cloned().map(Record::Summary));
        records.extend(self.contents.messages.iter().cloned().map(Record::Message));
        records.sort_by_key(|r| r.seq());
        files::replace_atomically(&self.paths.log, &format::log_bytes(&header, &records))?;
        self.contents.header = Some(header);
        // The old handle points at the replaced inode: reopen.
        let (log, _) = files::open_append(&self.paths.log)?;
        self.log = log;
        Ok(())
    }
}

fn unreachable_state(path: &Path) -> StoreError {
    StoreError::io(
        "internal error: lost the record just written to",
        path,
        std::io::Error::other("bug"),
    )
}

/// Appends records to a session's archive and fsyncs it.
fn append_to_archive(
    paths: &SessionPaths,
    name: &str,
    records: &[Record],
) -> Result<(), StoreError> {
    let (mut file, created) = files::open_append(&paths.archive)?;
    let mut bytes = Vec::new();
    let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
    if empty {
        bytes.extend(format::to_line(&Record::Header(Header::new(
            name,
            format::now(),
        ))));
    } else {
        // A crash mid-append may have left a torn last line; start ours on a
        // fresh line so it stays readable.
        bytes.extend(archive_line_break(&paths.archive));
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

fn archive_line_break(path: &Path) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8; 1];
    let ends_with_newline = File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut last)
        })
        .map(|()| last[0] == b'\n')
        .unwrap_or(true);
    if ends_with_newline {
        Vec::new()
    } else {
        b"\n".to_vec()
    }
}

/// Reads an archive, tolerating torn lines and dropping duplicates by `seq`
/// (left by a crash between the archive append and the active rewrite).
/// Returns the records in `seq` order and the number of unreadable lines.
pub fn read_archive(path: &Path) -> Result<(Vec<Record>, usize), StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(StoreError::io("cannot read", path, e)),
    };
    let mut records = Vec::new();
    let mut bad = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match format::parse_line(line, i == 0) {
            Ok(Record::Header(_)) => {}
            Ok(record) => records.push(record),
            Err(LineError::UnsupportedVersion(v)) => {
                return Err(StoreError::Unsupported {
                    path: path.to_path_buf(),
                    reason: LineError::UnsupportedVersion(v).to_string(),
                });
            }
            Err(_) => bad += 1,
        }
    }
    records.sort_by_key(|r| r.seq());
    records.dedup_by_key(|r| r.seq());
    Ok((records, bad))
}

/// Reads a session's active log without locking or changing it (for `show`,
/// `sessions`, `export` while another process chats). A torn last line is
/// ignored here; the next writer recovers it.
pub fn read_log(paths: &SessionPaths, name: &str) -> Result<LogContents, StoreError> {
    let bytes = match std::fs::read(&paths.log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(name.to_string()));
        }
        Err(e) => return Err(StoreError::io("cannot read", &paths.log, e)),
    };
    parse_log(&bytes, &paths.log, name)
}

/// Creates a new session from records (import): the active log holds the
/// newest system prompt, the summary and the messages; older system prompts
/// go to the archive. Refuses to overwrite an existing session.
pub fn create_session(
    dir: &Path,
    name: &str,
    archived: &[Record],
    active: &[Record],
    lock_wait: Duration,
) -> Result<(), StoreError> {
    files::create_private_dir(dir)?;
    let paths = SessionPaths::new(dir, name);
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    if paths.log.exists() || paths.archive.exists() {
        return Err(StoreError::Exists(name.to_string()));
    }
    let last_seq = archived
        .iter()
        .chain(active)
        .filter_map(Record::seq)
        .max()
        .unwrap_or(0);
    if !archived.is_empty() {
        append_to_archive(&paths, name, archived)?;
    }
    let mut header = Header::new(name, format::now());
    header.last_seq = Some(last_seq);
    files::replace_atomically(&paths.log, &format::log_bytes(&header, active))
}
