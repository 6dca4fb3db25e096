//! Reading an active log: parsing its lines into a [`LogContents`] (the
//! header, the settings in force, the system prompt, the summary and the
//! messages), telling a torn last line (a crash mid-append, recovered by the
//! next writer) from corruption (refused with file and line), and moving
//! late token counts into the records they count. Reading never locks or
//! changes a file; `session.rs` does that.

use std::io::BufRead;
use std::path::Path;

use super::format::{
    self, Header, LateTokens, LineError, MessageRecord, Record, Role, SessionSettings,
    SummaryRecord, TokenCache,
};
use super::lines::Lines;
use super::{SessionPaths, StoreError, files};

/// A read-only view of a session's active log, as parsed.
#[derive(Debug, Clone, Default)]
pub struct LogContents {
    pub header: Option<Header>,
    /// The session's settings in force: every `settings` record folded,
    /// latest wins field by field.
    pub settings: SessionSettings,
    /// When the latest `settings` record was written.
    pub settings_at: Option<String>,
    /// The effective system prompt: the newest system message.
    pub system: Option<MessageRecord>,
    pub summary: Option<SummaryRecord>,
    /// User and assistant messages, oldest first.
    pub messages: Vec<MessageRecord>,
    /// Records superseded in the active log (older system prompts or
    /// summaries); archived at the next rewrite.
    pub stale: Vec<Record>,
    pub last_seq: u64,
    /// A final line that was cut short by a crash: its byte offset and length.
    pub torn: Option<(u64, u64)>,
    /// The final line parsed but lacked its `\n`.
    pub missing_newline: bool,
}

impl LogContents {
    /// Moves counts carried by a later record into the records they count.
    fn apply_late_tokens(&mut self, late: &LateTokens) {
        if let Some(system) = &mut self.system {
            late.apply(system.seq, &mut system.tokens);
        }
        if let Some(summary) = &mut self.summary {
            late.apply(summary.seq, &mut summary.tokens);
        }
        for &seq in late.counts.keys() {
            // Messages rise by `seq` (the parser refuses otherwise).
            if let Ok(i) = self.messages.binary_search_by_key(&seq, |m| m.seq) {
                late.apply(seq, &mut self.messages[i].tokens);
            }
        }
    }

    /// `seq` and the encoding of every count the records hold.
    pub fn counts(&self) -> impl Iterator<Item = (u64, &TokenCache)> {
        let system = self.system.iter().map(|m| (m.seq, m.tokens.as_ref()));
        let summary = self.summary.iter().map(|s| (s.seq, s.tokens.as_ref()));
        let messages = self.messages.iter().map(|m| (m.seq, m.tokens.as_ref()));
        system
            .chain(summary)
            .chain(messages)
            .filter_map(|(seq, tokens)| tokens.map(|t| (seq, t)))
    }
}

/// Parses an active log. `path` and `session` only name things in errors.
pub fn parse_log(bytes: &[u8], path: &Path, session: &str) -> Result<LogContents, StoreError> {
    parse_log_from(bytes, path, session)
}

/// Parses an active log from a reader, holding at most
/// [`format::MAX_LINE_BYTES`] of any one line.
pub fn parse_log_from(
    reader: impl BufRead,
    path: &Path,
    session: &str,
) -> Result<LogContents, StoreError> {
    let mut out = LogContents::default();
    let mut last_seen_seq = 0u64;
    let mut lines = Lines::new(reader, format::MAX_LINE_BYTES);
    let read_error = |e| StoreError::io("cannot read", path, e);
    while let Some(line) = lines.next_line().map_err(read_error)? {
        let line_no = line.number;
        let line_start = line.offset;
        let terminated = line.terminated;
        let is_last = line.is_last;
        if line
            .bytes
            .as_ref()
            .is_some_and(|b| b.iter().all(u8::is_ascii_whitespace))
        {
            if !terminated {
                out.torn = Some((line_start, line.len));
            }
            continue;
        }
        let first = out.header.is_none();
        let parsed = format::parse_read_line(&line, first);
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
                out.torn = Some((line_start, line.len));
                continue;
            }
            Err(LineError::TooLong(_)) if is_last && !terminated => {
                out.torn = Some((line_start, line.len));
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
            Record::Settings(record) => {
                out.settings.merge(&record.settings);
                out.settings_at = Some(record.at);
            }
            Record::Summary(summary) => {
                out.last_seq = out.last_seq.max(summary.seq);
                if let Some(old) = out.summary.replace(summary) {
                    out.stale.push(Record::Summary(old));
                }
            }
            Record::Message(mut message) => {
                if let Some(late) = message.late_tokens.take() {
                    out.apply_late_tokens(&late);
                }
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

/// Reads a session's active log without locking or changing it (for `show`,
/// `sessions`, `export` while another process chats). A torn last line is
/// ignored here; the next writer recovers it.
pub fn read_log(paths: &SessionPaths, name: &str) -> Result<LogContents, StoreError> {
    match files::open_read(&paths.log)? {
        Some(file) => parse_log_from(std::io::BufReader::new(file), &paths.log, name),
        None => Err(StoreError::NotFound(name.to_string())),
    }
}
