//! The store boundary's traits for the PostgreSQL store: [`PgStore`] is a
//! [`Store`], [`PgSession`] a [`SessionStore`]. Each method is the store's
//! own operation; the turn lock is taken in `begin_turn` (see `session.rs`).

use std::time::SystemTime;

use super::{PgSession, PgStore};
use crate::memory::StoreError;
use crate::memory::format::{MessageRecord, Record, SessionSettings, SummaryRecord, TokenCache};
use crate::store::{Found, NewMessage, SearchQuery, SessionContents, SessionStore, Store};

/// The store a `postgres://` setting names, connecting in the background
/// (and loading the session `first` names with the schema check).
pub fn open_store(
    url: &str,
    lock_wait: std::time::Duration,
    first: Option<super::Prefetch>,
) -> Result<Box<dyn Store>, StoreError> {
    Ok(Box::new(PgStore::open_for(url, lock_wait, first)?))
}

impl SessionStore for PgSession {
    fn name(&self) -> &str {
        PgSession::name(self)
    }
    fn is_new(&self) -> bool {
        PgSession::is_new(self)
    }
    fn take_notices(&mut self) -> Vec<String> {
        PgSession::take_notices(self)
    }
    fn system(&self) -> Option<&MessageRecord> {
        PgSession::system(self)
    }
    fn summary(&self) -> Option<&SummaryRecord> {
        PgSession::summary(self)
    }
    fn messages(&self) -> &[MessageRecord] {
        PgSession::messages(self)
    }
    fn messages_mut(&mut self) -> &mut [MessageRecord] {
        PgSession::messages_mut(self)
    }
    fn system_mut(&mut self) -> Option<&mut MessageRecord> {
        PgSession::system_mut(self)
    }
    fn summary_mut(&mut self) -> Option<&mut SummaryRecord> {
        PgSession::summary_mut(self)
    }
    fn last_seq(&self) -> u64 {
        PgSession::last_seq(self)
    }
    fn settings(&self) -> &SessionSettings {
        PgSession::settings(self)
    }
    fn set_settings(&mut self, wanted: &SessionSettings, now: bool) -> Result<bool, StoreError> {
        PgSession::set_settings(self, wanted, now)
    }
    fn append_message(&mut self, m: NewMessage) -> Result<&MessageRecord, StoreError> {
        self.append_with_usage(
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
        PgSession::compact(self, evict, summary, method, tokens)
    }
    fn clear(&mut self) -> Result<usize, StoreError> {
        PgSession::clear(self)
    }
    fn archive_tail(&mut self, from: usize) -> Result<usize, StoreError> {
        PgSession::archive_tail(self, from)
    }
    fn read_archive(&self) -> Result<Vec<Record>, StoreError> {
        PgSession::read_archive(self)
    }
    fn begin_turn(&mut self) -> Result<(), StoreError> {
        PgSession::begin_turn(self).map(|_| ())
    }
    fn end_turn(&mut self) {
        // A lost connection has released the lock already.
        let _ = PgSession::end_turn(self);
    }
    fn end_turn_with_next_write(&mut self) {
        PgSession::end_turn_with_next_write(self);
    }
    fn refresh(&mut self) {
        PgSession::refresh(self);
    }
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.shown().to_string()
    }
    fn open_session(&self, name: &str) -> Result<Box<dyn SessionStore>, StoreError> {
        Ok(Box::new(PgStore::open_session(self, name)?))
    }
    fn list_sessions(&self) -> Result<Vec<String>, StoreError> {
        self.names()
    }
    fn last_used(&self, name: &str) -> Result<Option<SystemTime>, StoreError> {
        PgStore::last_used(self, name)
    }
    fn most_recent(&self) -> Result<Option<String>, StoreError> {
        PgStore::most_recent(self)
    }
    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(PgStore::last_used(self, name)?.is_some())
    }
    fn read_session(&self, name: &str, with_archive: bool) -> Result<SessionContents, StoreError> {
        let active = self.read(name)?;
        let archived = if with_archive {
            self.read_archive(name)?
        } else {
            Vec::new()
        };
        Ok(SessionContents {
            active,
            archived,
            last_used: PgStore::last_used(self, name)?,
        })
    }
    fn create_session(
        &self,
        name: &str,
        settings: &SessionSettings,
        archived: &[Record],
        active: &[Record],
    ) -> Result<(), StoreError> {
        PgStore::create_session(
            self,
            name,
            &crate::memory::format::now(),
            settings,
            archived,
            active,
        )
    }
    fn rename_session(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.rename(from, to)
    }
    fn delete_session(&self, name: &str) -> Result<String, StoreError> {
        self.delete(name)?;
        Ok("its rows".to_string())
    }
    fn search(&self, query: &SearchQuery) -> Result<Found, StoreError> {
        PgStore::search(self, query)
    }
    fn repair(&self, name: &str) -> Result<String, StoreError> {
        Err(StoreError::Database {
            target: self.shown().to_string(),
            reason: format!(
                "repair is for the file store: PostgreSQL keeps session {name:?} in \
                 transactions, with no line that can be torn or damaged"
            ),
        })
    }
}
