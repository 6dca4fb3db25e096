//! [`FileStore`]: the store as a memory directory of JSONL logs, the embedded
//! default. The files themselves (names, locks, crash-safe writes, repair)
//! belong to [`crate::memory`]; this is only its face at the boundary.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::index::SearchIndex;
use super::{Found, NewMessage, Scope, SearchQuery, SessionContents, SessionStore, Store};
use crate::memory::format::{MessageRecord, Record, SessionSettings, SummaryRecord, TokenCache};
use crate::memory::session::{create_session, read_archive, read_log};
use crate::memory::{self, Session, SessionPaths, StoreError};

/// A memory directory. Opening a session locks it for as long as it is
/// open; reading commands take no lock.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// How long to wait for a session's lock (another process chatting);
    /// also how long a reader waits to finish a rename or delete that a
    /// crash interrupted (it needs the sessions' locks): one number.
    lock_wait: Duration,
}

impl FileStore {
    pub fn new(dir: &Path, lock_wait: Duration) -> FileStore {
        FileStore {
            dir: dir.to_path_buf(),
            lock_wait,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Before reading: refuses a memory directory that is not the user's
    /// own, and finishes an interrupted rename or delete, so a reader never
    /// sees a session split between two names.
    /// The directory does not exist yet (nothing was ever stored): listing
    /// and searching find nothing. Any other failure to look at it (no
    /// permission, a file in its place) is for [`Self::ready_to_read`] to
    /// report, not an empty store.
    fn is_absent(&self) -> bool {
        matches!(self.dir.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    fn ready_to_read(&self, name: Option<&str>) -> Result<(), StoreError> {
        memory::files::check_dir(&self.dir)?;
        memory::pending::settle(&self.dir, name, self.lock_wait)?;
        Ok(())
    }
}

impl Store for FileStore {
    fn location(&self) -> String {
        std::path::absolute(&self.dir)
            .unwrap_or_else(|_| self.dir.clone())
            .display()
            .to_string()
    }

    fn open_session(&self, name: &str) -> Result<Box<dyn SessionStore>, StoreError> {
        Ok(Box::new(Session::open(&self.dir, name, self.lock_wait)?))
    }

    fn list_sessions(&self) -> Result<Vec<String>, StoreError> {
        if self.is_absent() {
            return Ok(Vec::new());
        }
        self.ready_to_read(None)?;
        memory::list_session_names(&self.dir)
    }

    fn last_used(&self, name: &str) -> Result<Option<SystemTime>, StoreError> {
        Ok(SessionPaths::new(&self.dir, name).last_used())
    }

    fn most_recent(&self) -> Result<Option<String>, StoreError> {
        super::most_recent_by_scan(self)
    }

    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        self.ready_to_read(Some(name))?;
        Ok(SessionPaths::new(&self.dir, name).exists())
    }

    fn read_session(&self, name: &str, with_archive: bool) -> Result<SessionContents, StoreError> {
        self.ready_to_read(Some(name))?;
        let paths = SessionPaths::new(&self.dir, name);
        let active = read_log(&paths, name)?;
        let archived = if with_archive {
            read_archive(&paths.archive)?.0
        } else {
            Vec::new()
        };
        Ok(SessionContents {
            active,
            archived,
            last_used: self.last_used(name)?,
        })
    }

    fn create_session(
        &self,
        name: &str,
        settings: &SessionSettings,
        archived: &[Record],
        active: &[Record],
    ) -> Result<(), StoreError> {
        let created_at = crate::memory::format::now();
        create_session(
            &self.dir,
            name,
            &created_at,
            settings,
            archived,
            active,
            self.lock_wait,
        )
    }

    fn rename_session(&self, from: &str, to: &str) -> Result<(), StoreError> {
        memory::rename_session(&self.dir, from, to, self.lock_wait)
    }

    fn delete_session(&self, name: &str) -> Result<String, StoreError> {
        let removed = memory::delete_session(&self.dir, name, self.lock_wait)?;
        let files = if removed.len() == 1 { "file" } else { "files" };
        Ok(format!("{} {files}", removed.len()))
    }

    fn repair(&self, name: &str) -> Result<String, StoreError> {
        Ok(memory::repair::repair(&self.dir, name, self.lock_wait)?.describe(name))
    }

    fn search(&self, query: &SearchQuery) -> Result<Found, StoreError> {
        if self.is_absent() {
            return Ok(Found::default());
        }
        self.ready_to_read(query.session.as_deref())?;
        let names = match &query.session {
            Some(name) => vec![name.clone()],
            None => memory::list_session_names(&self.dir)?,
        };
        let mut notices = Vec::new();
        let hits = with_index(&self.dir, &mut notices, |index, notices| {
            if query.session.is_none() {
                index.keep_only(&names)?;
            }
            for name in &names {
                let paths = SessionPaths::new(&self.dir, name);
                let mut synced = index.sync_archive(name, &paths);
                if synced.is_ok() && query.scope == Scope::Everything {
                    synced = index.sync_log(name, &paths);
                }
                match synced {
                    Ok(()) => {}
                    Err(e) if SearchIndex::damaged(&e) => return Err(e),
                    // One unreadable session does not hide the others.
                    Err(e) => notices.push(format!("search: session {name:?} skipped: {e}")),
                }
            }
            match query.scope {
                Scope::Everything => Ok((index.query(query)?, None)),
                Scope::Recall { .. } => {
                    let stats = index.term_stats(&query.terms)?;
                    let rare =
                        crate::terms::rare_terms(&query.terms, &stats.holding, stats.messages);
                    let hits = if rare.is_empty() {
                        Vec::new()
                    } else {
                        index.query(&SearchQuery {
                            terms: rare,
                            ..query.clone()
                        })?
                    };
                    Ok((hits, Some(stats)))
                }
            }
        })?;
        let (hits, stats) = hits;
        Ok(Found {
            hits,
            stats,
            notices,
        })
    }
}

/// Runs `work` on the directory's index; when the index turns out to be
/// damaged, removes it and runs `work` once more on a new one.
fn with_index<T>(
    dir: &Path,
    notices: &mut Vec<String>,
    mut work: impl FnMut(&mut SearchIndex, &mut Vec<String>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut index = SearchIndex::open(dir)?;
    notices.append(&mut index.notices);
    match work(&mut index, notices) {
        Err(e) if SearchIndex::damaged(&e) => {
            drop(index);
            SearchIndex::remove(dir)?;
            let mut index = SearchIndex::open(dir)?;
            notices.push(format!(
                "the search index was damaged ({e}); it was removed and rebuilt from the logs"
            ));
            work(&mut index, notices)
        }
        other => other,
    }
}

/// After messages moved to `session`'s archive: the index takes them in
/// now, so a later search or recall finds them without reading the archive.
/// Best effort: a failure here leaves the index behind, and the next search
/// catches up from the archive, which is the truth.
fn index_archive(session: &Session) {
    let paths = session.paths();
    let dir = paths.dir.clone();
    let _ = with_index(&dir, &mut Vec::new(), |index, _| {
        index.sync_archive(Session::name(session), paths)
    });
}

impl SessionStore for Session {
    fn name(&self) -> &str {
        Session::name(self)
    }
    fn is_new(&self) -> bool {
        Session::is_new(self)
    }
    fn take_notices(&mut self) -> Vec<String> {
        Session::take_notices(self)
    }
    fn system(&self) -> Option<&MessageRecord> {
        Session::system(self)
    }
    fn summary(&self) -> Option<&SummaryRecord> {
        Session::summary(self)
    }
    fn messages(&self) -> &[MessageRecord] {
        Session::messages(self)
    }
    fn messages_mut(&mut self) -> &mut [MessageRecord] {
        Session::messages_mut(self)
    }
    fn system_mut(&mut self) -> Option<&mut MessageRecord> {
        Session::system_mut(self)
    }
    fn summary_mut(&mut self) -> Option<&mut SummaryRecord> {
        Session::summary_mut(self)
    }
    fn last_seq(&self) -> u64 {
        Session::last_seq(self)
    }
    fn settings(&self) -> &SessionSettings {
        Session::settings(self)
    }
    fn set_settings(&mut self, wanted: &SessionSettings, now: bool) -> Result<bool, StoreError> {
        Session::set_settings(self, wanted, now)
    }
    fn append_message(&mut self, m: NewMessage) -> Result<&MessageRecord, StoreError> {
        Session::append_with_usage(
            self,
            m.role,
            m.content,
            m.model,
            m.interrupted,
            m.truncated,
            m.tokens,
            m.usage,
        )
    }
    fn compact(
        &mut self,
        evict: usize,
        summary: String,
        method: &str,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError> {
        Session::compact(self, evict, summary, method, tokens)?;
        index_archive(self);
        Ok(())
    }
    fn clear(&mut self) -> Result<usize, StoreError> {
        let moved = Session::clear(self)?;
        index_archive(self);
        Ok(moved)
    }
    fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError> {
        let moved = Session::archive_tail(self, from)?;
        index_archive(self);
        Ok(moved)
    }
    fn read_archive(&self) -> Result<Vec<Record>, StoreError> {
        Ok(read_archive(&self.paths().archive)?.0)
    }
}
