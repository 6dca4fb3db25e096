//! `memchat migrate`: every session, with its archive and settings, copied
//! from a memory directory to PostgreSQL or back.
//!
//! The copy never changes or deletes the source. Each session is created in
//! the destination in one step (one transaction; one atomic rename of the
//! active log), then read back and compared with the source: the number of
//! messages and a SHA-256 of every record (which side of the archive it is
//! on, every field, the settings). A session already in the destination is
//! compared the same way: identical, it is left alone (so a re-run copies
//! only what is missing); different, it is left alone and reported. A copy
//! keeps when its session was last used (the log's modification time, the
//! row's `updated_at`), so `sessions` lists them in the same order and
//! `--continue` picks the same one on either side.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::PgStore;
use crate::memory::format::{self, Record, SessionSettings};
use crate::memory::session::{LogContents, create_session, read_archive, read_log};
use crate::memory::{self, SessionPaths, StoreError};
use crate::transfer;

/// One side of a copy.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    Dir(&'a Path),
    Pg(&'a PgStore),
}

impl Side<'_> {
    /// How messages name this side.
    pub fn shown(&self) -> String {
        match self {
            Side::Dir(dir) => dir.display().to_string(),
            Side::Pg(store) => store.shown().to_string(),
        }
    }

    fn names(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Side::Dir(dir) => {
                memory::files::check_dir(dir)?;
                memory::list_session_names(dir)
            }
            Side::Pg(store) => store.names(),
        }
    }

    /// The session, or `None` when there is none of that name.
    fn read(&self, name: &str, lock_wait: Duration) -> Result<Option<Conversation>, StoreError> {
        let (active, archived) = match self {
            Side::Dir(dir) => {
                memory::pending::settle(dir, Some(name), lock_wait)?;
                let paths = SessionPaths::new(dir, name);
                let active = match read_log(&paths, name) {
                    Ok(active) => active,
                    Err(StoreError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                (active, read_archive(&paths.archive)?.0)
            }
            Side::Pg(store) => match store.read(name) {
                Ok(active) => (active, store.read_archive(name)?),
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        Ok(Some(Conversation::new(&active, archived)))
    }

    /// When the session was last used, if that can be told, as both sides
    /// can hold it: a time before 1970 or after 9999 (a file's odd time) is
    /// carried as the nearest one they can, so the order of the sessions
    /// stays the same.
    fn last_used(&self, name: &str) -> Result<Option<SystemTime>, StoreError> {
        /// 1970-01-01T00:00:01Z.
        const FIRST: Duration = Duration::from_secs(1);
        let at = match self {
            Side::Dir(dir) => SessionPaths::new(dir, name).last_used(),
            Side::Pg(store) => store.last_used(name)?,
        };
        Ok(at.map(|at| {
            let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            std::time::UNIX_EPOCH + since.clamp(FIRST, crate::store::LATEST_LAST_USE)
        }))
    }

    /// Carries over when `from`'s session `name` was last used.
    fn carry_last_used(&self, from: Side<'_>, name: &str) -> Result<(), StoreError> {
        match from.last_used(name)? {
            Some(at) => self.set_last_used(name, at),
            None => Ok(()),
        }
    }

    /// Says that the session was last used at `at` (a copy just made).
    fn set_last_used(&self, name: &str, at: SystemTime) -> Result<(), StoreError> {
        match self {
            Side::Dir(dir) => memory::files::set_modified(&SessionPaths::new(dir, name).log, at),
            Side::Pg(store) => store.set_last_used(name, at),
        }
    }

    fn create(&self, name: &str, c: &Conversation, lock_wait: Duration) -> Result<(), StoreError> {
        match self {
            Side::Dir(dir) => {
                // The source's creation time, as the PostgreSQL side keeps it.
                create_session(
                    dir,
                    name,
                    &c.created_at,
                    &c.settings,
                    &c.archived,
                    &c.active,
                    lock_wait,
                )
            }
            Side::Pg(store) => {
                store.create_session(name, &c.created_at, &c.settings, &c.archived, &c.active)
            }
        }
    }
}

/// A whole session as both stores can create it.
#[derive(Debug, Clone)]
struct Conversation {
    created_at: String,
    settings: SessionSettings,
    /// Records in the archive (never one that is also active).
    archived: Vec<Record>,
    /// Records of the active history (system prompt, summary, messages).
    active: Vec<Record>,
}

impl Conversation {
    fn new(contents: &LogContents, archived: Vec<Record>) -> Conversation {
        let mut active = transfer::active_records(contents);
        // Superseded prompts and summaries belong to the archive.
        let stale: BTreeSet<Option<u64>> = contents.stale.iter().map(Record::seq).collect();
        active.retain(|r| !stale.contains(&r.seq()));
        let active_seqs: BTreeSet<Option<u64>> = active.iter().map(Record::seq).collect();
        // A crash between an archive append and the rewrite of the active
        // log leaves a record in both: it is still active.
        let mut archived: Vec<Record> = archived
            .into_iter()
            .chain(contents.stale.iter().cloned())
            .filter(|r| !active_seqs.contains(&r.seq()))
            .collect();
        archived.sort_by_key(Record::seq);
        archived.dedup_by_key(|r| r.seq());
        let clean = |records: &mut Vec<Record>| {
            for record in records.iter_mut() {
                if let Record::Message(m) = record {
                    m.late_tokens = None;
                }
            }
        };
        clean(&mut archived);
        clean(&mut active);
        Conversation {
            created_at: contents
                .header
                .as_ref()
                .map_or_else(format::now, |h| h.created_at.clone()),
            settings: contents.settings.clone(),
            archived,
            active,
        }
    }

    fn messages(&self) -> usize {
        self.archived
            .iter()
            .chain(&self.active)
            .filter(|r| matches!(r, Record::Message(_)))
            .count()
    }

    /// SHA-256 of every record, marked archived or active, and the settings.
    fn fingerprint(&self) -> String {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        for (mark, records) in [(b"A", &self.archived), (b"L", &self.active)] {
            for record in records {
                hash.update(mark);
                hash.update(&format::to_line(record));
            }
        }
        hash.update(
            serde_json::to_string(&self.settings)
                .unwrap_or_default()
                .as_bytes(),
        );
        hash.finish()
            .as_ref()
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
    }
}

/// What happened to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied and verified: its messages and fingerprint.
    Copied { messages: usize, sha256: String },
    /// Already in the destination, identical.
    Identical { messages: usize },
    /// Not copied: the reason (a different session of that name in the
    /// destination, a name the destination refuses, a store error).
    Failed(String),
}

/// The copy of every session, in name order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sessions: Vec<(String, Outcome)>,
}

impl Report {
    /// Whether every session is in the destination, identical.
    pub fn complete(&self) -> bool {
        self.sessions
            .iter()
            .all(|(_, o)| !matches!(o, Outcome::Failed(_)))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut copied, mut same, mut failed) = (0, 0, 0);
        for (name, outcome) in &self.sessions {
            match outcome {
                Outcome::Copied { messages, sha256 } => {
                    copied += 1;
                    let short = sha256.get(..16).unwrap_or(sha256);
                    writeln!(
                        f,
                        "copied  {name}: {}, verified (sha256 {short}…)",
                        messages_noun(*messages)
                    )?;
                }
                Outcome::Identical { messages } => {
                    same += 1;
                    writeln!(
                        f,
                        "same    {name}: already there, identical ({})",
                        messages_noun(*messages)
                    )?;
                }
                Outcome::Failed(reason) => {
                    failed += 1;
                    writeln!(f, "FAILED  {name}: {reason}")?;
                }
            }
        }
        write!(
            f,
            "{copied} copied, {same} already there, {failed} failed; the source is unchanged"
        )
    }
}

fn messages_noun(n: usize) -> String {
    if n == 1 {
        "1 message".to_string()
    } else {
        format!("{n} messages")
    }
}

/// Copies every session of `from` into `to`. A store that cannot be read
/// at all is an error; a session that cannot be copied is reported and the
/// others go on.
pub fn copy(from: Side<'_>, to: Side<'_>, lock_wait: Duration) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let existing: BTreeSet<String> = to.names()?.into_iter().collect();
    for name in from.names()? {
        let outcome = copy_one(from, to, &name, existing.contains(&name), lock_wait)
            .unwrap_or_else(|e| Outcome::Failed(e.to_string()));
        report.sessions.push((name, outcome));
    }
    Ok(report)
}

fn copy_one(
    from: Side<'_>,
    to: Side<'_>,
    name: &str,
    exists: bool,
    lock_wait: Duration,
) -> Result<Outcome, StoreError> {
    let Some(source) = from.read(name, lock_wait)? else {
        return Ok(Outcome::Failed("it went away during the copy".to_string()));
    };
    let wanted = source.fingerprint();
    if exists {
        let Some(there) = to.read(name, lock_wait)? else {
            return Ok(Outcome::Failed("it went away during the copy".to_string()));
        };
        return Ok(if there.fingerprint() == wanted {
            // A copy cut short before its time was carried gets it now,
            // where it can: the session is there, whole and verified, and a
            // destination that cannot take the time (read-only) keeps its
            // own, as before this was carried at all.
            let _ = to.carry_last_used(from, name);
            Outcome::Identical {
                messages: there.messages(),
            }
        } else {
            Outcome::Failed(format!(
                "{} already has a different session of this name ({} there, {} here); \
                 neither was changed (rename one, then run migrate again)",
                to.shown(),
                messages_noun(there.messages()),
                messages_noun(source.messages())
            ))
        });
    }
    to.create(name, &source, lock_wait)?;
    let Some(copied) = to.read(name, lock_wait)? else {
        return Ok(Outcome::Failed("the copy cannot be read back".to_string()));
    };
    if copied.messages() != source.messages() || copied.fingerprint() != wanted {
        return Ok(Outcome::Failed(format!(
            "the copy differs from the source after writing ({} there, {} here); the \
             source is unchanged",
            messages_noun(copied.messages()),
            messages_noun(source.messages())
        )));
    }
    to.carry_last_used(from, name)?;
    Ok(Outcome::Copied {
        messages: copied.messages(),
        sha256: wanted,
    })
}
