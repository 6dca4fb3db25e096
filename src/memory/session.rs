//! One open session: the exclusive lock, loading (with torn-write recovery),
//! durable appends, and the atomic rewrite that moves records to the archive.
//!
//! Invariants kept here: every append is one `write_all` plus `sync_data`; a
//! rewrite appends to the archive and fsyncs it *before* the active log is
//! replaced, so a crash in between leaves duplicates (dropped by `seq` on
//! read), never a loss; `seq` rises strictly over the session's whole life,
//! continuing from the archive when the active log has lost track (emptied,
//! deleted). Lines are read with a bounded memory cost (`lines.rs`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use super::format::{
    self, Header, LateTokens, MessageRecord, Record, Role, SessionSettings, SettingsRecord,
    SummaryRecord, TokenCache,
};
use super::{SessionPaths, StoreError, archive, files, pending};

pub use super::archive::read_archive;
pub use super::log::{LogContents, parse_log, parse_log_from, read_log};

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
    /// The session held nothing before this open: it starts here.
    is_new: bool,
    /// For each record of the active log whose count is on disk (in its own
    /// `tokens` or carried late), the count's encoding. A count the engine
    /// made since is carried by the next append (see [`Session::late_tokens`]).
    persisted_counts: BTreeMap<u64, String>,
    /// Settings in force (in `contents.settings`) not yet on disk: written
    /// with the next append or rewrite.
    unwritten_settings: SessionSettings,
    /// The header of an empty log (new, or left empty by a run that stored
    /// nothing) is written with the first record, in the same write and
    /// `fdatasync`: a header alone holds nothing of the user's, and an empty
    /// log loads as a new session.
    header_unwritten: bool,
}

impl Session {
    /// Opens (creating if needed) the session `name` in `dir`, holding its
    /// lock. A torn final line is copied to a quarantine file and truncated;
    /// a rename or delete a crash interrupted is finished first.
    pub fn open(dir: &Path, name: &str, lock_wait: Duration) -> Result<Session, StoreError> {
        super::check_session_name(dir, name)?;
        let mut notices = files::prepare_dir(dir)?;
        notices.extend(pending::settle(dir, Some(name), lock_wait)?);
        let paths = SessionPaths::new(dir, name);
        let lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
        files::remove_stale_temp_files(dir, &format!("{name}.jsonl"));
        files::remove_stale_temp_files(dir, &format!("{name}.archive.jsonl"));
        let had_archive = paths.archive.symlink_metadata().is_ok();
        let mut contents = match files::open_read(&paths.log)? {
            Some(file) => parse_log_from(std::io::BufReader::new(file), &paths.log, name)?,
            None => LogContents::default(),
        };
        let is_new = !had_archive
            && contents.header.is_none()
            && contents.system.is_none()
            && contents.summary.is_none()
            && contents.messages.is_empty();
        let header_knows_last_seq = contents
            .header
            .as_ref()
            .is_some_and(|h| h.last_seq.is_some());
        if had_archive && !header_knows_last_seq {
            // The active log was emptied, deleted, or never rewritten since
            // its creation: only the archive knows how far `seq` got.
            contents.last_seq = contents.last_seq.max(archive::max_seq(&paths.archive)?);
        }
        let (mut log, created) = files::open_append(&paths.log)?;
        if let Some((offset, len)) = contents.torn.take() {
            let quarantine = paths.quarantine(name);
            let mut source = files::open_read(&paths.log)?.ok_or_else(|| {
                StoreError::io(
                    "cannot read",
                    &paths.log,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?;
            files::copy_ranges_to_new(
                &mut source,
                &paths.log,
                &[(offset, len)],
                &quarantine,
                false,
            )?;
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
        let mut header_unwritten = false;
        if contents.header.is_none() {
            let mut header = Header::new(name, format::now());
            if contents.last_seq > 0 {
                header.last_seq = Some(contents.last_seq);
            }
            // An empty log (new, or created by a run that stored nothing)
            // gets its header with its first record.
            let empty = created || log.metadata().is_ok_and(|m| m.len() == 0);
            if empty {
                header_unwritten = true;
            } else {
                files::append_durably(
                    &mut log,
                    &paths.log,
                    &format::to_line(&Record::Header(header.clone())),
                )?;
            }
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
            is_new,
            persisted_counts: BTreeMap::new(),
            unwritten_settings: SessionSettings::default(),
            header_unwritten,
        };
        session.note_counts_persisted();
        if !session.contents.stale.is_empty() {
            session.rewrite(Vec::new())?;
        }
        Ok(session)
    }

    /// Whether this open started the session (nothing was stored under its
    /// name before), so the front-end can say where it lives.
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// The `seq` the next record gets; refused, never wrapped, past
    /// [`format::MAX_SEQ`].
    fn next_seq(&self) -> Result<u64, StoreError> {
        self.contents
            .last_seq
            .checked_add(1)
            .filter(|&seq| seq <= format::MAX_SEQ)
            .ok_or_else(|| StoreError::Refused {
                path: self.paths.log.clone(),
                reason: format!(
                    "seq has reached its maximum ({}); no record can be added",
                    format::MAX_SEQ
                ),
            })
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
    /// The session's recorded settings (model, window), latest wins.
    pub fn settings(&self) -> &SessionSettings {
        &self.contents.settings
    }

    /// Sets the session's settings to `wanted` (only the fields that differ
    /// from those in force change). With `now`, they are written at once
    /// (`/model`); otherwise with the next message appended, so a run that
    /// stores nothing (`--print-config`, a refused message, `/history`)
    /// leaves the log as it was. Returns whether anything changed.
    pub fn set_settings(
        &mut self,
        wanted: &SessionSettings,
        now: bool,
    ) -> Result<bool, StoreError> {
        let changes = wanted.changes_from(&self.contents.settings);
        if !changes.is_empty() {
            self.contents.settings.merge(&changes);
            self.contents.settings_at = Some(format::now());
            self.unwritten_settings.merge(&changes);
        }
        if now {
            self.write_settings(None)?;
        }
        Ok(!changes.is_empty())
    }

    /// Writes the settings not yet on disk, durably, followed by `then` (a
    /// message line) in the same write: one appended `settings` line, or, in
    /// a version 1 log (which an older memchat must not misread), a rewrite
    /// that makes it version 2 before `then` is appended.
    fn write_settings(&mut self, then: Option<&[u8]>) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        if !self.unwritten_settings.is_empty() {
            let is_current = self
                .contents
                .header
                .as_ref()
                .is_some_and(|h| h.version == format::FORMAT_VERSION);
            if is_current {
                bytes = format::to_line(&Record::Settings(SettingsRecord {
                    at: self
                        .contents
                        .settings_at
                        .clone()
                        .unwrap_or_else(format::now),
                    settings: self.unwritten_settings.clone(),
                }));
            } else {
                // The rewrite writes the settings in force and clears the
                // unwritten ones.
                self.rewrite(Vec::new())?;
            }
        }
        bytes.extend_from_slice(then.unwrap_or_default());
        if !bytes.is_empty() {
            if self.header_unwritten
                && let Some(header) = &self.contents.header
            {
                let mut with_header = format::to_line(&Record::Header(header.clone()));
                with_header.extend_from_slice(&bytes);
                bytes = with_header;
            }
            let appended = files::append_durably(&mut self.log, &self.paths.log, &bytes);
            if self.header_unwritten {
                // A failed write is cut back (the file stays empty); a failed
                // sync leaves the bytes, header included, in the file.
                self.header_unwritten = self.log.metadata().is_ok_and(|m| m.len() == 0);
            }
            appended?;
        }
        self.unwritten_settings = SessionSettings::default();
        Ok(())
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
        let mut record = MessageRecord {
            seq: self.next_seq()?,
            role,
            content,
            at: format::now(),
            model,
            interrupted,
            truncated,
            tokens,
            usage,
            late_tokens: self.late_tokens(),
        };
        let line = format::to_line(&Record::Message(record.clone()));
        if line.len() > format::MAX_LINE_BYTES {
            // Never write a line memchat would refuse to read back.
            return Err(StoreError::TooLarge {
                path: self.paths.log.clone(),
                len: line.len(),
            });
        }
        self.write_settings(Some(&line))?;
        self.contents.last_seq = record.seq;
        if let Some(late) = record.late_tokens.take() {
            for seq in late.counts.into_keys() {
                self.persisted_counts.insert(seq, late.encoding.clone());
            }
        }
        if let Some(tokens) = &record.tokens {
            self.persisted_counts
                .insert(record.seq, tokens.encoding.clone());
        }
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
            seq: self.next_seq()?,
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
        self.contents.last_seq = new_summary.seq;
        self.contents.summary = Some(new_summary);
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

    /// The counts the records hold in memory but not on disk (the engine
    /// counted them after they were written), for the next append to carry:
    /// the log stays append-only. One encoding per carrier; a count in
    /// another (the model changed mid-run) waits for a later append.
    fn late_tokens(&self) -> Option<LateTokens> {
        let mut late: Option<LateTokens> = None;
        for (seq, tokens) in self.contents.counts() {
            if self.persisted_counts.get(&seq) == Some(&tokens.encoding) {
                continue;
            }
            let late = late.get_or_insert_with(|| LateTokens {
                encoding: tokens.encoding.clone(),
                counts: BTreeMap::new(),
            });
            if late.encoding == tokens.encoding {
                late.counts.insert(seq, tokens.count);
            }
        }
        late
    }

    /// After a load or a rewrite: every count in memory is on disk.
    fn note_counts_persisted(&mut self) {
        self.persisted_counts = self
            .contents
            .counts()
            .map(|(seq, tokens)| (seq, tokens.encoding.clone()))
            .collect();
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
            archive::append(&self.paths, &self.name, &archived)?;
        }
        let mut header = self
            .contents
            .header
            .clone()
            .unwrap_or_else(|| Header::new(&self.name, format::now()));
        header.last_seq = Some(self.contents.last_seq);
        // What this program writes is its own version (a version 1 log
        // becomes version 2 here; its records are valid in both).
        header.version = format::FORMAT_VERSION;
        let mut records: Vec<Record> = Vec::new();
        records.extend(settings_record(
            &self.contents.settings,
            self.contents.settings_at.as_deref(),
        ));
        records.extend(self.contents.system.iter().cloned().map(Record::Message));
        records.extend(self.contents.summary.iter().cloned().map(Record::Summary));
        records.extend(self.contents.messages.iter().cloned().map(Record::Message));
        // Stable: the settings record (no `seq`) stays first.
        records.sort_by_key(|r| r.seq());
        files::replace_atomically(&self.paths.log, &format::log_bytes(&header, &records))?;
        self.header_unwritten = false;
        self.contents.header = Some(header);
        self.unwritten_settings = SessionSettings::default();
        self.note_counts_persisted();
        // The old handle points at the replaced inode: reopen.
        let (log, _) = files::open_append(&self.paths.log)?;
        self.log = log;
        Ok(())
    }
}

/// The settings in force as one record (none when nothing is set): what a
/// rewrite or a new session writes right after the header.
fn settings_record(settings: &SessionSettings, at: Option<&str>) -> Option<Record> {
    (!settings.is_empty()).then(|| {
        Record::Settings(SettingsRecord {
            at: at.map_or_else(format::now, str::to_string),
            settings: settings.clone(),
        })
    })
}

fn unreachable_state(path: &Path) -> StoreError {
    StoreError::io(
        "internal error: lost the record just written to",
        path,
        std::io::Error::other("bug"),
    )
}

/// Creates a new session from records (import): the active log holds the
/// session's settings, the newest system prompt, the summary and the
/// messages; older system prompts go to the archive. Refuses to overwrite an
/// existing session.
pub fn create_session(
    dir: &Path,
    name: &str,
    created_at: &str,
    settings: &SessionSettings,
    archived: &[Record],
    active: &[Record],
    lock_wait: Duration,
) -> Result<(), StoreError> {
    super::validate_new_session_name(name)?;
    files::prepare_dir(dir)?;
    pending::settle(dir, Some(name), lock_wait)?;
    let paths = SessionPaths::new(dir, name);
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    if paths.exists() {
        return Err(StoreError::Exists(name.to_string()));
    }
    let last_seq = archived
        .iter()
        .chain(active)
        .filter_map(Record::seq)
        .max()
        .unwrap_or(0);
    if !archived.is_empty() {
        archive::append(&paths, name, archived)?;
    }
    let mut header = Header::new(name, created_at.to_string());
    header.last_seq = Some(last_seq);
    let settings = settings_record(settings, None);
    let records: Vec<&Record> = settings.iter().chain(active).collect();
    files::replace_atomically(
        &paths.log,
        &format::log_bytes(&header, records.iter().copied()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, late: &str) -> String {
        format!(
            r#"{{"type":"message","seq":{seq},"role":"user","content":"m{seq}","at":"x"{late}}}"#
        )
    }

    #[test]
    fn a_new_log_gets_its_header_with_its_first_record_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.jsonl");
        let wait = Duration::from_secs(1);
        // Opened and left (or killed) before anything was said: the file
        // exists, empty, and opens again as a new session.
        for _ in 0..2 {
            let session = Session::open(dir.path(), "s", wait).unwrap();
            assert!(session.is_new());
            drop(session);
            assert_eq!(std::fs::read(&log).unwrap(), b"");
        }
        let mut session = Session::open(dir.path(), "s", wait).unwrap();
        assert!(session.is_new());
        session
            .append(Role::User, "first".into(), None, false, None)
            .unwrap();
        session
            .append(Role::Assistant, "reply".into(), None, false, None)
            .unwrap();
        drop(session);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with(r#"{"type":"header""#), "{text}");
        let session = Session::open(dir.path(), "s", wait).unwrap();
        assert!(!session.is_new());
        let said: Vec<&str> = session
            .messages()
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(said, ["first", "reply"]);
        assert_eq!(session.last_seq(), 2);
    }

    #[test]
    fn late_counts_are_applied_on_load_and_folded_by_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.jsonl");
        let lines = [
            r#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"x"}"#
                .to_string(),
            message(1, ""),
            message(2, ""),
            message(
                3,
                r#","late_tokens":{"encoding":"o200k_base","counts":{"1":5,"3":99}}"#,
            ),
            message(
                4,
                r#","late_tokens":{"encoding":"cl100k_base","counts":{"2":6}}"#,
            ),
        ];
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();

        let mut session = Session::open(dir.path(), "s", Duration::from_secs(1)).unwrap();
        let counts: Vec<Option<(&str, u32)>> = session
            .messages()
            .iter()
            .map(|m| m.tokens.as_ref().map(|t| (t.encoding.as_str(), t.count)))
            .collect();
        // Seq 1 by its carrier; seq 2 in another encoding, which the sizing
        // of an o200k_base model does not trust; a carrier never counts
        // itself.
        assert_eq!(
            counts,
            [
                Some(("o200k_base", 5)),
                Some(("cl100k_base", 6)),
                None,
                None
            ]
        );
        assert!(session.messages().iter().all(|m| m.late_tokens.is_none()));

        // What the log holds is not carried again.
        session
            .append(Role::Assistant, "m5".into(), None, false, None)
            .unwrap();
        let appended = std::fs::read_to_string(&log).unwrap();
        assert!(
            !appended.lines().last().unwrap().contains("late_tokens"),
            "{appended}"
        );

        session.archive_tail(4).unwrap();
        let rewritten = std::fs::read_to_string(&log).unwrap();
        assert!(!rewritten.contains("late_tokens"), "{rewritten}");
        let first = rewritten.lines().nth(1).unwrap();
        assert!(
            first.contains(r#""tokens":{"encoding":"o200k_base","count":5}"#),
            "{first}"
        );
        let reloaded = read_log(session.paths(), "s").unwrap();
        assert_eq!(
            reloaded.messages[0].tokens.as_ref().map(|t| t.count),
            Some(5)
        );
        assert_eq!(
            reloaded.messages[1]
                .tokens
                .as_ref()
                .map(|t| t.encoding.as_str()),
            Some("cl100k_base")
        );
    }

    #[test]
    fn settings_fold_latest_wins_and_a_rewrite_writes_one_record_after_a_v2_header() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.jsonl");
        let lines = [
            r#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"x"}"#
                .to_string(),
            r#"{"type":"settings","at":"a","model":"llama3","context_limit":8192}"#.to_string(),
            message(1, ""),
            r#"{"type":"settings","at":"b","model":"gpt-4o"}"#.to_string(),
            message(2, ""),
        ];
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let mut session = Session::open(dir.path(), "s", Duration::from_secs(1)).unwrap();
        let wanted = SessionSettings {
            model: Some("gpt-4o".into()),
            context_limit: Some(8192),
            title: None,
            role: None,
        };
        assert_eq!(session.settings(), &wanted, "latest wins, field by field");
        assert!(
            !session.set_settings(&wanted, true).unwrap(),
            "nothing changed"
        );

        // A change to a version 1 log rewrites it as version 2.
        let next = SessionSettings {
            model: Some("gpt-4.1".into()),
            ..wanted.clone()
        };
        assert!(session.set_settings(&next, true).unwrap());
        let text = std::fs::read_to_string(&log).unwrap();
        let rewritten: Vec<&str> = text.lines().collect();
        assert!(rewritten[0].contains(r#""version":2"#), "{text}");
        assert_eq!(
            rewritten[1],
            r#"{"type":"settings","at":"b","model":"gpt-4.1","context_limit":8192}"#.replace(
                r#""at":"b""#,
                &format!(
                    r#""at":"{}""#,
                    session.contents.settings_at.clone().unwrap()
                )
            ),
        );
        assert_eq!(text.matches(r#""type":"settings""#).count(), 1, "{text}");

        // Version 2: a change is one appended line; a rewrite folds it.
        let last = SessionSettings {
            model: Some("o3".into()),
            context_limit: None,
            title: None,
            role: None,
        };
        assert!(session.set_settings(&last, true).unwrap());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with(r#"{"type":"settings""#)
                && text.lines().last().unwrap().ends_with(r#""model":"o3"}"#),
            "{text}"
        );
        session.archive_tail(1).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches(r#""type":"settings""#).count(), 1, "{text}");
        let reloaded = read_log(session.paths(), "s").unwrap();
        assert_eq!(reloaded.settings.model.as_deref(), Some("o3"));
        assert_eq!(reloaded.settings.context_limit, Some(8192));
        let (archived, _) = read_archive(&session.paths().archive).unwrap();
        assert!(archived.iter().all(|r| !matches!(r, Record::Settings(_))));
    }
}
