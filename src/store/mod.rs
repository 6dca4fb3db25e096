//! The store boundary: the one interface the engine, the management commands
//! and the REPL use to keep conversations, whatever holds them.
//!
//! Two implementations stand behind it: [`FileStore`] (the memory directory
//! of JSONL logs, the embedded default; `memory` owns its files) and the
//! PostgreSQL store. Nothing above this module knows which one it has. The
//! traits speak in the records of [`crate::memory::format`] (header, message,
//! summary, settings) and in whole operations (append, compact as one step,
//! list, read, create, rename, delete); they never leak a path or a query.
//!
//! # Why synchronous
//!
//! Every write here must be durable before the call returns (an fsync, or a
//! committed transaction), and the engine waits for it before it goes on:
//! the user's message is stored before the request goes out. So the calls
//! are synchronous, like the file store's fsync, and a store whose client is
//! asynchronous (PostgreSQL) runs its connection on its own thread and
//! answers over a channel. The alternative, async methods, would put boxed
//! futures on every call of the file store's hot path and async plumbing
//! into every management command, to win nothing: no two store calls of one
//! process ever need to run at once.
//!
//! # Turns
//!
//! A file session is locked for as long as it is open (a REPL holds it). A
//! shared server cannot work that way: a REPL left open on one machine would
//! lock the session out on every other. So the engine brackets each change
//! with [`SessionStore::begin_turn`] and [`SessionStore::end_turn`]; a store
//! that locks per turn takes its lock there and may reload what another
//! client added since. For the file store both are no-ops.

mod file;
pub mod index;

use std::time::SystemTime;

pub use file::FileStore;

use crate::memory::StoreError;
use crate::memory::format::{
    MessageRecord, Record, Role, SessionSettings, SummaryRecord, TokenCache, UsageRecord,
};
use crate::memory::session::LogContents;

/// One open session: its active history in memory, and every way to change
/// it durably. Obtained from [`Store::open_session`].
pub trait SessionStore: Send {
    /// The session's name.
    fn name(&self) -> &str;
    /// Whether this open started the session (nothing was stored under its
    /// name before), so the front-end can say where it lives.
    fn is_new(&self) -> bool;
    /// Warnings from opening (a torn write recovered), for the front-end.
    fn take_notices(&mut self) -> Vec<String>;

    /// The effective system prompt.
    fn system(&self) -> Option<&MessageRecord>;
    /// The running summary of what was archived.
    fn summary(&self) -> Option<&SummaryRecord>;
    /// User and assistant messages of the active history, oldest first.
    fn messages(&self) -> &[MessageRecord];
    /// For token counts the engine makes after a record was stored; they
    /// are persisted with the next change, never by a rewrite of their own.
    fn messages_mut(&mut self) -> &mut [MessageRecord];
    fn system_mut(&mut self) -> Option<&mut MessageRecord>;
    fn summary_mut(&mut self) -> Option<&mut SummaryRecord>;
    /// The highest `seq` the session has used (archive included).
    fn last_seq(&self) -> u64;
    /// The session's recorded settings (model, window, title...), latest wins.
    fn settings(&self) -> &SessionSettings;
    /// Sets the recorded settings to `wanted` (only fields that differ
    /// change). With `now` they are stored at once, otherwise with the next
    /// message, so a run that stores nothing changes nothing. Returns
    /// whether anything changed.
    fn set_settings(&mut self, wanted: &SessionSettings, now: bool) -> Result<bool, StoreError>;

    /// Stores a message durably (on disk or committed before this returns).
    /// A system message supersedes the old prompt, which goes to the archive.
    fn append(
        &mut self,
        role: Role,
        content: String,
        model: Option<String>,
        interrupted: bool,
        tokens: Option<TokenCache>,
    ) -> Result<&MessageRecord, StoreError> {
        let message = NewMessage {
            role,
            content,
            model,
            interrupted,
            truncated: false,
            tokens,
            usage: None,
        };
        self.append_message(message)
    }
    /// [`SessionStore::append`] with every field of a reply.
    fn append_message(&mut self, message: NewMessage) -> Result<&MessageRecord, StoreError>;

    /// Compaction as one step: the first `evict` messages and the old
    /// summary go to the archive, and `summary` becomes the one summary of
    /// the active history. After a failure nothing has changed.
    fn compact(
        &mut self,
        evict: usize,
        summary: String,
        method: &str,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError>;
    /// Moves the summary and every message to the archive (`/clear`,
    /// `--new`); the system prompt stays. Returns how many records moved.
    fn clear(&mut self) -> Result<usize, StoreError>;
    /// Moves the messages from index `from` on to the archive (`/undo`,
    /// `/retry`, `/edit last`). Returns how many moved.
    fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError>;
    /// The archived records, in `seq` order.
    fn read_archive(&self) -> Result<Vec<Record>, StoreError>;

    /// Before a change: a store shared between machines takes the
    /// session's lock here and reloads what others stored since. The file
    /// store holds its lock while open, so this does nothing there.
    fn begin_turn(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// After the change (reply stored, compaction done, or an error).
    fn end_turn(&mut self) {}
    /// The next write is the turn's last: a store that locks per turn may
    /// release the lock with it (PostgreSQL: in the same round trip, once
    /// the write is committed) instead of at [`SessionStore::end_turn`].
    fn end_turn_with_next_write(&mut self) {}
    /// Before a command that only shows the session (`/history`,
    /// `/tokens`): a store shared between machines reads what others
    /// stored since, if anything; failing that, the copy held is shown. The
    /// file store holds its lock while open: nobody else writes.
    fn refresh(&mut self) {}
}

/// What a store's error says when another client wrote to the session
/// while this one could not (its connection lost mid-turn): the session as
/// this client holds it is out of date, and the front-end must not advise
/// `/retry`, which would answer the other client's newest message.
pub const WRITTEN_MEANWHILE: &str = "another memchat wrote to the session";

/// A message to store: everything but what the store assigns (`seq`, time).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: Role,
    pub content: String,
    pub model: Option<String>,
    /// The reply was stopped before it ended (Ctrl-C, a signal, an error).
    pub interrupted: bool,
    /// The reply was cut at the reply cap or by the server.
    pub truncated: bool,
    pub tokens: Option<TokenCache>,
    pub usage: Option<UsageRecord>,
}

/// Everything a session holds, read without locking or changing it.
#[derive(Debug, Clone, Default)]
pub struct SessionContents {
    /// The active history (header, settings, system prompt, summary, messages).
    pub active: LogContents,
    /// The archived records, in `seq` order.
    pub archived: Vec<Record>,
    /// When the session was last written.
    pub last_used: Option<SystemTime>,
}

/// What a search looks for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The query's terms ([`crate::terms::query_terms`]): a message matches
    /// when it holds any of them; ranking favours more, and rarer, ones.
    pub terms: Vec<String>,
    /// One session only, or every session.
    pub session: Option<String>,
    pub scope: Scope,
    /// At most this many hits.
    pub limit: usize,
}

/// Which messages a search may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every message ever stored: active and archived, any role.
    Everything,
    /// Recall: the archived user and assistant messages whose `seq` the
    /// running summary covers (what compaction folded away; not what
    /// `/clear` put aside before it).
    Recall { covers: [u64; 2] },
}

/// One message found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub session: String,
    pub seq: u64,
    pub role: Role,
    pub at: String,
    pub content: String,
    /// In the archive, not the active history.
    pub archived: bool,
    /// The store's relevance, higher is better (BM25 on files,
    /// `ts_rank_cd` on PostgreSQL); comparable within one search only.
    pub score: f64,
}

/// How common each query term is where recall searched: the relevance
/// floor weighs a matched term by its rarity (a word in every message says
/// nothing about any of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TermStats {
    /// How many messages the counts are out of.
    pub messages: u64,
    /// For each query term, in order, how many of those messages hold it.
    pub holding: Vec<u64>,
}

/// What a search found, and anything the user should know about how.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// For recall: how common each term is (`None` for a plain search).
    pub stats: Option<TermStats>,
    /// A rebuilt index, a session that could not be read.
    pub notices: Vec<String>,
}

/// A collection of sessions: the memory directory, or a PostgreSQL database.
pub trait Store: Send + Sync {
    /// Where the conversations live, for messages (a path, or a URL with
    /// its password masked).
    fn location(&self) -> String;
    /// Opens (creating if needed) a session for chatting.
    fn open_session(&self, name: &str) -> Result<Box<dyn SessionStore>, StoreError>;
    /// The names of every session, sorted.
    fn list_sessions(&self) -> Result<Vec<String>, StoreError>;
    /// When `name` was last written, without reading it (`--continue`).
    fn last_used(&self, name: &str) -> Result<Option<SystemTime>, StoreError>;
    /// The session used most recently, for `--continue`: the one whose
    /// [`Store::last_used`] is the latest (the first by name among equals).
    fn most_recent(&self) -> Result<Option<String>, StoreError>;
    /// Whether a session named `name` holds anything.
    fn exists(&self, name: &str) -> Result<bool, StoreError>;
    /// Reads a whole session (active and archive) while others may chat in it.
    /// [`StoreError::NotFound`] when there is none.
    fn read_session(&self, name: &str, with_archive: bool) -> Result<SessionContents, StoreError>;
    /// Creates a session from records (import); refuses an existing name.
    fn create_session(
        &self,
        name: &str,
        settings: &SessionSettings,
        archived: &[Record],
        active: &[Record],
    ) -> Result<(), StoreError>;
    /// Renames a session with its archive, as one step.
    fn rename_session(&self, from: &str, to: &str) -> Result<(), StoreError>;
    /// Deletes a session with its archive. Returns what was removed, for
    /// the user ("3 files").
    fn delete_session(&self, name: &str) -> Result<String, StoreError>;
    /// Repairs a damaged session, keeping every good record; returns the
    /// report as `memchat repair` prints it.
    fn repair(&self, name: &str) -> Result<String, StoreError>;
    /// The messages best matching `query`, best first.
    fn search(&self, query: &SearchQuery) -> Result<Found, StoreError>;
}

/// The latest time a session's last use may be and still be held by both
/// stores and shown by `sessions`: 9999-12-31T23:59:59Z (a file's
/// modification time may be later; the time formatter stops there).
pub const LATEST_LAST_USE: std::time::Duration = std::time::Duration::from_secs(253_402_300_799);

/// [`Store::most_recent`] by asking [`Store::last_used`] of every session:
/// what a directory does (a `stat` each).
pub fn most_recent_by_scan(store: &dyn Store) -> Result<Option<String>, StoreError> {
    let mut best: Option<(SystemTime, String)> = None;
    for name in store.list_sessions()? {
        if let Some(modified) = store.last_used(&name)?
            && best.as_ref().is_none_or(|(t, _)| modified > *t)
        {
            best = Some((modified, name));
        }
    }
    Ok(best.map(|(_, name)| name))
}
