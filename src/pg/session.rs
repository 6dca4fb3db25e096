//! One open session in PostgreSQL: the same operations as
//! [`crate::memory::Session`], each write one transaction.
//!
//! # The lock rule
//!
//! A session is locked per turn, not per process. [`PgSession::begin_turn`]
//! takes a session-level advisory lock on the session (waiting at most the
//! lock wait, then failing with the same "in use" error as the file store),
//! reloads the session if another client changed it since, and
//! [`PgSession::end_turn`] releases it, or the turn's last write does when
//! the engine says which it is ([`PgSession::end_turn_with_next_write`]:
//! the release follows that write's commit). Between turns nothing is held, so a
//! REPL left open on one machine never locks out another. The lock belongs
//! to the connection: a killed client's lock goes with its socket at once,
//! and a client whose machine vanished loses it within
//! [`super::conn::DEAD_CLIENT_SECS`] (the server's keepalives).
//!
//! Every write is all or nothing ([`super::write`]) and checks that the
//! session's `revision` is still the one this copy was loaded at, and bumps
//! it. A write outside a turn takes the same lock for itself
//! (`pg_advisory_xact_lock`, so it waits for another client's turn); a
//! write in this client's turn holds it already. A write from a stale copy
//! is refused and nothing of it is stored; the `(session, seq)` key refuses
//! a `seq` given twice whatever happens. Two clients therefore never
//! interleave, and neither loses a message.
//!
//! A one-shot may open its session in its turn: the connection's first
//! round trip took the lock with the load ([`super::Prefetch`]). An ended
//! turn's lock is released without the caller waiting
//! ([`super::conn::Link::release_later`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::conn::{Conn, DbError, Link};
use super::resume::write_resuming;
use super::rows::{self, COLUMNS};
use super::schema::LOCK_SPACE;
use super::write::{Change, is_plain_append};
use crate::memory::StoreError;
use crate::memory::format::{
    self, Header, MessageRecord, Record, Role, SessionSettings, SummaryRecord, TokenCache,
    UsageRecord,
};
use crate::memory::session::LogContents;
use tokio_postgres::types::Type;

pub use super::load::{Opened, create_lock_load, keep_lock, load, load_on};

/// The second key of a session's advisory lock (ids past 2^31 share keys,
/// which only makes two sessions wait for each other). SQL that takes the
/// lock by name computes the same ([`create_lock_load`]).
pub fn lock_key(id: i64) -> i32 {
    i32::try_from(id.rem_euclid(i64::from(i32::MAX))).unwrap_or(0)
}

/// A lock wait in milliseconds, as the server takes it: at least 1 (its
/// `lock_timeout = 0` means no limit at all).
pub fn millis(wait: Duration) -> u64 {
    // The server's `lock_timeout` holds at most i32::MAX ms (24.8 days): a
    // longer wait is that long (it refused the setting, and every turn).
    u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i32::MAX as u64)
}

/// A session as loaded: its row and its active records.
#[derive(Debug)]
pub struct Loaded {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_seq: u64,
    pub revision: i64,
    /// The settings in force and when they were set.
    pub settings: SessionSettings,
    pub settings_at: Option<String>,
    pub records: Vec<Record>,
}

/// The active records of a session, sorted into a [`LogContents`]: moved,
/// not copied (a long conversation's records are most of what is loaded).
pub fn contents_of(loaded: Loaded) -> LogContents {
    let mut contents = LogContents {
        header: Some(Header {
            last_seq: Some(loaded.last_seq),
            ..Header::new(&loaded.name, loaded.created_at)
        }),
        last_seq: loaded.last_seq,
        settings: loaded.settings,
        settings_at: loaded.settings_at,
        ..LogContents::default()
    };
    contents.messages.reserve(loaded.records.len());
    for record in loaded.records {
        contents.last_seq = contents.last_seq.max(record.seq().unwrap_or(0));
        match record {
            Record::Message(m) if m.role == Role::System => {
                if let Some(old) = contents.system.replace(m) {
                    contents.stale.push(Record::Message(old));
                }
            }
            Record::Message(m) => contents.messages.push(m),
            Record::Summary(s) => {
                if let Some(old) = contents.summary.replace(s) {
                    contents.stale.push(Record::Summary(old));
                }
            }
            Record::Header(_) | Record::Settings(_) => {}
        }
    }
    contents
}

/// What [`PgSession::begin_turn`] found.
enum Fresh {
    Same,
    Reloaded(Loaded),
    Gone,
}

/// The session's revision, or `None` if it is gone.
const REVISION: &str = "SELECT revision FROM memchat_sessions WHERE id = $1";

fn revision_of(
    row: Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    row?.map(|row| row.try_get(0)).transpose()
}

/// Takes the session's turn lock, waiting at most `wait_ms`, and reads the
/// session's revision under it: one round trip when the lock is free (the
/// two statements pipelined; the server reads the revision after taking
/// the lock).
pub(super) async fn lock_turn(
    link: &mut Link,
    id: i64,
    wait_ms: u64,
) -> Result<Option<i64>, DbError> {
    link.reconnect_if_closed().await;
    let (client, f) = link.client()?;
    let client = &*client;
    let key = lock_key(id);
    let try_lock = format!("SELECT pg_try_advisory_lock({LOCK_SPACE}, $1)");
    let (key_param, id_param) = ([(&key as _, Type::INT4)], [(&id as _, Type::INT8)]);
    let (got, current) = futures::join!(
        client.query_typed_one(&try_lock, &key_param),
        client.query_typed_opt(REVISION, &id_param),
    );
    let got: bool = got.and_then(|row| row.try_get(0)).map_err(|e| f.fail(e))?;
    if got {
        return revision_of(current).map_err(|e| f.fail(e));
    }
    client
        .batch_execute(&format!("SET lock_timeout = {wait_ms}"))
        .await
        .map_err(|e| f.fail(e))?;
    let lock = format!("SELECT pg_advisory_lock({LOCK_SPACE}, $1)");
    let waited = tokio::select! {
        waited = client.execute_typed(&lock, &key_param) => waited,
        // Ctrl-C (or SIGTERM) ends the wait: the main thread waits on this
        // one, and would otherwise sit out the whole lock wait, then store
        // the message the user gave up on. The server still waits for the
        // lock: its release is queued behind it (statements run in order),
        // so a lock granted after all is let go at once.
        () = crate::interrupt::next_signal() => {
            use futures::FutureExt as _;
            let _ = client.execute_typed(super::schema::UNLOCK, &[(&key, Type::INT4)]).now_or_never();
            let _ = client.batch_execute("RESET lock_timeout").now_or_never();
            return Err(DbError::Failed(
                "interrupted while waiting for another memchat's turn on the session to end"
                    .to_string(),
            ));
        }
    };
    let reset = client.batch_execute("RESET lock_timeout").await;
    match waited {
        Ok(_) => reset.map_err(|e| f.fail(e))?,
        Err(e) => {
            return Err(match f.fail(e) {
                DbError::Locked { .. } => DbError::Locked {
                    waited_secs: wait_ms / 1000,
                },
                other => other,
            });
        }
    }
    revision_of(client.query_typed_opt(REVISION, &[(&id, Type::INT8)]).await).map_err(|e| f.fail(e))
}

/// An open session.
#[derive(Debug)]
pub struct PgSession {
    conn: Arc<Conn>,
    id: i64,
    name: String,
    revision: i64,
    contents: LogContents,
    notices: Vec<String>,
    is_new: bool,
    lock_wait: Duration,
    /// Whether this client holds the turn lock.
    in_turn: bool,
    /// Whether the next write ends the turn (its lock released with it).
    release_with_write: bool,
    /// Counts already stored, by `seq`, with their encoding.
    persisted_counts: BTreeMap<u64, String>,
    /// Whether the settings in force are not stored yet (they go with the
    /// next write, as the file store's do).
    unwritten_settings: bool,
    /// The settings this client changed and has not stored yet: put again
    /// over the session as reloaded, when another client changed it first.
    unstored_settings: SessionSettings,
}

impl PgSession {
    /// The session as loaded; `in_turn` when its turn lock was taken with
    /// the load (a one-shot's first round trip, see [`super::Prefetch`]).
    pub(super) fn new(
        conn: Arc<Conn>,
        loaded: Loaded,
        is_new: bool,
        lock_wait: Duration,
        in_turn: bool,
    ) -> PgSession {
        let mut session = PgSession {
            conn,
            id: loaded.id,
            name: loaded.name.clone(),
            revision: loaded.revision,
            contents: contents_of(loaded),
            notices: Vec::new(),
            is_new,
            lock_wait,
            in_turn,
            release_with_write: false,
            persisted_counts: BTreeMap::new(),
            unwritten_settings: false,
            unstored_settings: SessionSettings::default(),
        };
        session.note_counts_persisted();
        session
    }

    pub fn is_new(&self) -> bool {
        self.is_new
    }
    pub fn name(&self) -> &str {
        &self.name
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
    /// The session's active records as a log's contents.
    pub fn contents(&self) -> &LogContents {
        &self.contents
    }
    /// The session's recorded settings (model, window, title), latest wins.
    pub fn settings(&self) -> &SessionSettings {
        &self.contents.settings
    }

    /// Sets the session's settings to `wanted` (only the fields that differ
    /// from those in force change). With `now`, they are stored at once
    /// (`/model`); otherwise with the next message, so a run that stores
    /// nothing leaves the session as it was. Returns whether anything
    /// changed.
    pub fn set_settings(
        &mut self,
        wanted: &SessionSettings,
        now: bool,
    ) -> Result<bool, StoreError> {
        let changes = wanted.changes_from(&self.contents.settings);
        if !changes.is_empty() {
            self.contents.settings.merge(&changes);
            self.contents.settings_at = Some(format::now());
            self.unwritten_settings = true;
            self.unstored_settings.merge(&changes);
        }
        if now && self.unwritten_settings {
            self.write(Change {
                last_seq: self.contents.last_seq,
                ..Change::default()
            })?;
        }
        Ok(!changes.is_empty())
    }

    /// The session's archive, oldest first.
    pub fn read_archive(&self) -> Result<Vec<Record>, StoreError> {
        let id = self.id;
        self.conn
            .call(move |link| {
                Box::pin(async move {
                    let (client, f) = link.client()?;
                    let rows = client
                        .query(
                            &format!(
                                "SELECT {COLUMNS} FROM memchat_records \
                                 WHERE session_id = $1 AND archived ORDER BY seq"
                            ),
                            &[&id],
                        )
                        .await
                        .map_err(|e| f.fail(e))?;
                    rows.iter().map(rows::record_from_row).collect()
                })
            })
            .map_err(|e| self.fail(e))
    }

    /// Whether this client holds the session's turn lock.
    pub fn in_turn(&self) -> bool {
        self.in_turn
    }

    fn fail(&self, error: DbError) -> StoreError {
        error.into_store(&self.conn.shown, &self.name)
    }

    /// Starts a turn: takes the session's lock (waiting at most the lock
    /// wait) and reloads the session if another client changed it. Returns
    /// whether it was reloaded. Taking it twice is taking it once.
    pub fn begin_turn(&mut self) -> Result<bool, StoreError> {
        if self.in_turn {
            return Ok(false);
        }
        let (id, wait_ms, name) = (self.id, millis(self.lock_wait), self.name.clone());
        let revision = self.revision;
        let fresh = self
            .conn
            .call(move |link| {
                Box::pin(async move {
                    let current = lock_turn(link, id, wait_ms).await?;
                    link.took_turn(lock_key(id));
                    match current {
                        Some(current) if current == revision => Ok(Fresh::Same),
                        Some(_) => match load(link, Some(id), &name).await {
                            Ok(Some(loaded)) => Ok(Fresh::Reloaded(loaded)),
                            Ok(None) => Ok(Fresh::Gone),
                            Err(e) => {
                                // No turn is taken: the lock goes at once.
                                link.release_later(lock_key(id));
                                Err(e)
                            }
                        },
                        None => Ok(Fresh::Gone),
                    }
                })
            })
            .map_err(|e| self.fail(e))?;
        self.in_turn = true;
        match fresh {
            Fresh::Same => Ok(false),
            Fresh::Gone => {
                // Deleted by another memchat (while this client waited for
                // it, or between a REPL's turns). Not created again here:
                // what was opened with it (the system prompt, the settings,
                // the screen's history) went with it, and another session
                // may have taken its name since; a new run opens it anew.
                let _ = self.end_turn();
                Err(StoreError::Database {
                    target: self.conn.shown.clone(),
                    reason: format!(
                        "session {:?} was deleted by another memchat; nothing was stored (open \
                         it again, with a new run or `/session {}`, to start it anew)",
                        self.name, self.name
                    ),
                })
            }
            Fresh::Reloaded(loaded) if loaded.name != self.name => {
                // Renamed by another memchat while this client waited: the
                // turn is not taken under a name it was not asked for (a
                // one-shot for s1 landed in s2); the file store, whose
                // rename moves the file, opens a new s1 there instead.
                let _ = self.end_turn();
                Err(StoreError::Database {
                    target: self.conn.shown.clone(),
                    reason: format!(
                        "session {:?} was renamed to {:?} by another memchat; nothing was \
                         stored (open it by its new name to go on)",
                        self.name, loaded.name
                    ),
                })
            }
            Fresh::Reloaded(loaded) => {
                self.take_loaded(loaded);
                Ok(true)
            }
        }
    }

    /// Reads what other clients stored since this copy was loaded, outside
    /// a turn, without the lock (a read sees committed rows only): one
    /// round trip for the revision, and the load only when it moved. On any
    /// failure the copy stays as it is (a command that only shows it goes
    /// on with it).
    pub fn refresh(&mut self) {
        if self.in_turn {
            return;
        }
        let (id, revision, name) = (self.id, self.revision, self.name.clone());
        let fresh = self.conn.call(move |link| {
            Box::pin(async move {
                let current = {
                    let (client, f) = link.client()?;
                    revision_of(client.query_typed_opt(REVISION, &[(&id, Type::INT8)]).await)
                        .map_err(|e| f.fail(e))?
                };
                match current {
                    Some(current) if current != revision => load(link, Some(id), &name).await,
                    _ => Ok(None),
                }
            })
        });
        if let Ok(Some(loaded)) = fresh
            && loaded.name == self.name
        {
            self.take_loaded(loaded);
        }
    }

    /// Takes `loaded` as the session (another client changed it, or it was
    /// made anew), keeping the settings this client set and has not stored
    /// yet: they go with the next write, over what was loaded (`-m` on a
    /// one-shot that waited behind another client's turn is not lost).
    fn take_loaded(&mut self, loaded: Loaded) {
        self.id = loaded.id;
        self.name = loaded.name.clone();
        self.revision = loaded.revision;
        self.contents = contents_of(loaded);
        let changes = self.unstored_settings.changes_from(&self.contents.settings);
        self.unwritten_settings = !changes.is_empty();
        if self.unwritten_settings {
            self.contents.settings.merge(&changes);
            self.contents.settings_at = Some(format::now());
        }
        self.unstored_settings = changes;
        self.note_counts_persisted();
    }

    /// Ends a turn: releases the lock. Harmless outside a turn; a lost
    /// connection has released it already.
    ///
    /// The release is not waited for: the connection sends it within a few
    /// milliseconds, before this client's next statement, or as it closes
    /// ([`super::conn::Link::release_later`]). Nothing of the turn depends
    /// on it.
    pub fn end_turn(&mut self) -> Result<(), StoreError> {
        self.release_with_write = false;
        if !self.in_turn {
            return Ok(());
        }
        self.in_turn = false;
        let key = lock_key(self.id);
        self.conn
            .send(move |link| {
                link.release_later(key);
                Box::pin(std::future::ready(()))
            })
            .map_err(|e| self.fail(e))
    }

    /// The next write ends the turn: when it is a plain append (one
    /// statement), the lock's release is sent right behind it, in the same
    /// round trip, so that the turn ends with its last write and nothing is
    /// left to release (a one-shot then closes without another round trip).
    /// The release runs after the write's commit, never before: no other
    /// client can take the turn and read the session before it holds what
    /// this one wrote. Any other write leaves the release to
    /// [`PgSession::end_turn`].
    pub fn end_turn_with_next_write(&mut self) {
        self.release_with_write = self.in_turn;
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        self.contents
            .last_seq
            .checked_add(1)
            .filter(|&seq| seq <= format::MAX_SEQ)
            .ok_or_else(|| StoreError::Database {
                target: self.conn.shown.clone(),
                reason: format!(
                    "session {:?}: seq has reached its maximum ({}); no record can be added",
                    self.name,
                    format::MAX_SEQ
                ),
            })
    }

    /// Counts of stored records made since they were stored.
    fn pending_counts(&self) -> Vec<(u64, String, u32)> {
        self.contents
            .counts()
            .filter(|(seq, t)| self.persisted_counts.get(seq) != Some(&t.encoding))
            .map(|(seq, t)| (seq, t.encoding.clone(), t.count))
            .collect()
    }

    fn note_counts_persisted(&mut self) {
        self.persisted_counts = self
            .contents
            .counts()
            .map(|(seq, t)| (seq, t.encoding.clone()))
            .collect();
    }

    /// Stores `change` (filled in with the session's id, revision, pending
    /// counts and stale records) in one transaction.
    fn write(&mut self, mut change: Change) -> Result<(), StoreError> {
        change.id = self.id;
        change.revision = self.revision;
        change.wait_ms = millis(self.lock_wait);
        change.counts = self.pending_counts();
        change
            .archive
            .extend(self.contents.stale.iter().filter_map(Record::seq));
        if self.unwritten_settings {
            let json = serde_json::to_string(&self.contents.settings).map_err(|e| {
                self.fail(DbError::Failed(format!("cannot store the settings: {e}")))
            })?;
            change.settings = Some((json, self.contents.settings_at.clone()));
        }
        let in_turn = self.in_turn && is_plain_append(&change);
        let release =
            (std::mem::take(&mut self.release_with_write) && in_turn).then(|| lock_key(self.id));
        let had_turn = self.in_turn;
        let written = self
            .conn
            .call(move |link| Box::pin(write_resuming(link, change, in_turn, release, had_turn)));
        if release.is_some() {
            // Sent with the write, whatever became of it (a lost connection
            // has released the lock too).
            self.in_turn = false;
        }
        written.map_err(|e| self.fail(e))?;
        self.revision += 1;
        self.unwritten_settings = false;
        self.unstored_settings = SessionSettings::default();
        self.contents.stale.clear();
        self.note_counts_persisted();
        Ok(())
    }

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

    /// Appends a message, committed before this returns. A new system
    /// prompt moves the old one to the archive in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn append_with_usage(
        &mut self,
        role: Role,
        content: String,
        model: Option<String>,
        interrupted: bool,
        truncated: bool,
        tokens: Option<TokenCache>,
        usage: Option<UsageRecord>,
    ) -> Result<&MessageRecord, StoreError> {
        let record = MessageRecord {
            seq: self.next_seq()?,
            role,
            content,
            at: format::now(),
            model,
            interrupted,
            truncated,
            tokens,
            usage,
            late_tokens: None,
        };
        let len = format::to_line(&Record::Message(record.clone())).len();
        if len > format::MAX_LINE_BYTES {
            return Err(StoreError::Database {
                target: self.conn.shown.clone(),
                reason: format!(
                    "session {:?}: a record of {len} bytes is over the cap of {} bytes for one \
                     record; nothing was written",
                    self.name,
                    format::MAX_LINE_BYTES
                ),
            });
        }
        let mut change = Change {
            last_seq: record.seq,
            insert: vec![Record::Message(record.clone())],
            ..Change::default()
        };
        if role == Role::System
            && let Some(old) = &self.contents.system
        {
            change.archive.push(old.seq);
        }
        self.write(change)?;
        self.contents.last_seq = record.seq;
        let counted = record
            .tokens
            .as_ref()
            .map(|t| (record.seq, t.encoding.clone()));
        if role == Role::System {
            self.contents.system = Some(record);
        } else {
            self.contents.messages.push(record);
        }
        if let Some((seq, encoding)) = counted {
            self.persisted_counts.insert(seq, encoding);
        }
        let stored = if role == Role::System {
            self.contents.system.as_ref()
        } else {
            self.contents.messages.last()
        };
        stored.ok_or_else(|| StoreError::Database {
            target: self.conn.shown.clone(),
            reason: "internal error: lost the record just written".to_string(),
        })
    }

    /// Folds the first `evict` messages into a new summary: the old summary
    /// and those messages go to the archive, the new summary is stored, in
    /// one transaction.
    pub fn compact(
        &mut self,
        evict: usize,
        summary: String,
        method: &str,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError> {
        let evict = evict.min(self.contents.messages.len());
        let evicted = &self.contents.messages[..evict];
        let first = self
            .contents
            .summary
            .as_ref()
            .map(|s| s.covers[0])
            .or_else(|| evicted.first().map(|m| m.seq));
        let last = evicted
            .last()
            .map(|m| m.seq)
            .or_else(|| self.contents.summary.as_ref().map(|s| s.covers[1]));
        let (Some(first), Some(last)) = (first, last) else {
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
        let mut archive: Vec<u64> = self.contents.summary.iter().map(|s| s.seq).collect();
        archive.extend(evicted.iter().map(|m| m.seq));
        self.write(Change {
            last_seq: new_summary.seq,
            archive,
            insert: vec![Record::Summary(new_summary.clone())],
            ..Change::default()
        })?;
        self.contents.messages.drain(..evict);
        self.contents.last_seq = new_summary.seq;
        self.contents.summary = Some(new_summary);
        self.note_counts_persisted();
        Ok(())
    }

    /// Moves the summary and every message to the archive (`/clear`);
    /// returns how many records moved.
    pub fn clear(&mut self) -> Result<usize, StoreError> {
        let mut archive: Vec<u64> = self.contents.summary.iter().map(|s| s.seq).collect();
        archive.extend(self.contents.messages.iter().map(|m| m.seq));
        let moved = archive.len();
        if moved == 0 {
            return Ok(0);
        }
        self.write(Change {
            last_seq: self.contents.last_seq,
            archive,
            ..Change::default()
        })?;
        self.contents.summary = None;
        self.contents.messages.clear();
        Ok(moved)
    }

    /// Moves the messages from index `from` on to the archive (`/undo`,
    /// `/retry`); returns how many moved.
    pub fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError> {
        let from = from.min(self.contents.messages.len());
        let archive: Vec<u64> = self.contents.messages[from..]
            .iter()
            .map(|m| m.seq)
            .collect();
        if archive.is_empty() {
            return Ok(0);
        }
        let moved = archive.len();
        self.write(Change {
            last_seq: self.contents.last_seq,
            archive,
            ..Change::default()
        })?;
        self.contents.messages.truncate(from);
        Ok(moved)
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // A REPL that closes a session and opens another must not keep its
        // lock; at exit the connection releases it before it closes.
        let _ = self.end_turn();
    }
}
