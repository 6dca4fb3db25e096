//! The PostgreSQL store: the same sessions, records and guarantees as the
//! memory directory, in tables of a PostgreSQL database.
//!
//! `url.rs` reads the store URL (and masks its password); `tls.rs` is
//! rustls for `sslmode`; `conn.rs` the one connection per process, on its
//! own thread; `errors.rs` every error in one line; `load.rs` reading a
//! session (created and locked with it, for a one-shot); `schema.rs` the versioned
//! tables; `rows.rs` records to rows and back; `write.rs` how one change
//! is stored, all or nothing; `session.rs` one open
//! session and the lock rule; this file the store-wide operations
//! (list, read, import, rename, delete); `store_impl.rs` the store
//! boundary's traits ([`crate::store`]) for both.

pub mod conn;
pub mod copy;
pub mod errors;
pub mod load;
pub mod resume;
pub mod rows;
pub mod schema;
pub mod search;
pub mod session;
pub mod store_impl;
pub mod tls;
pub mod url;
pub mod write;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use conn::Prefetch;
use conn::{Conn, DbError, Link};
use rows::{COLUMNS, Columns};
use schema::LOCK_SPACE;
pub use session::PgSession;
use session::{contents_of, load, lock_key};

use crate::memory::format::{self, Record, SessionSettings};
use crate::memory::session::LogContents;
use crate::memory::{StoreError, validate_new_session_name, validate_session_name};

/// The most recently used session's name (as
/// [`crate::store::Store::most_recent`] orders them: the latest write, then
/// by name).
const MOST_RECENT: &str =
    "SELECT name FROM memchat_sessions ORDER BY updated_at DESC, name LIMIT 1";

/// A session as `memchat sessions` lists it.
#[derive(Debug, Clone)]
pub struct PgSessionInfo {
    pub name: String,
    /// The active records.
    pub contents: LogContents,
    /// Messages in the archive.
    pub archived: usize,
    pub last_used: SystemTime,
}

/// A PostgreSQL database holding memchat's sessions.
#[derive(Debug, Clone)]
pub struct PgStore {
    conn: Arc<Conn>,
    lock_wait: Duration,
}

impl PgStore {
    /// Parses the URL and starts connecting in the background; the first
    /// call waits for the connection (and the schema check).
    pub fn open(url: &str, lock_wait: Duration) -> Result<PgStore, StoreError> {
        PgStore::open_for(url, lock_wait, None)
    }

    /// [`PgStore::open`] for a chat about to open a session (`first`): the
    /// connection loads it with the schema check, in the same round trip
    /// (and takes its turn lock when asked), while the caller goes on
    /// starting up.
    pub fn open_for(
        url: &str,
        lock_wait: Duration,
        first: Option<Prefetch>,
    ) -> Result<PgStore, StoreError> {
        let parsed = url::parse(url).map_err(|reason| StoreError::Database {
            target: url::mask_url(url),
            reason,
        })?;
        Ok(PgStore {
            conn: Arc::new(Conn::open(parsed, first)?),
            lock_wait,
        })
    }

    /// The URL, password masked: what messages call this store.
    pub fn shown(&self) -> &str {
        &self.conn.shown
    }

    /// Runs a store-wide operation, connecting again first if the
    /// connection was lost, unless a turn is under way on it (recall's
    /// search inside a turn): a new connection would not hold the turn's
    /// lock, and the turn's next write would go on without it. The
    /// operation then fails; the turn's write takes the turn up again
    /// itself (`resume.rs`).
    fn run<T, F>(&self, session: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Link) -> futures::future::LocalBoxFuture<'c, Result<T, DbError>>
            + Send
            + 'static,
    {
        self.conn.run(session, move |link| {
            Box::pin(async move {
                if !link.in_turn() {
                    link.reconnect_if_closed().await;
                }
                f(link).await
            })
        })
    }

    /// Waits for the connection: an unreachable server, bad credentials or
    /// a newer schema are reported here.
    pub fn check(&self) -> Result<(), StoreError> {
        self.run("", |link| {
            Box::pin(async move {
                link.client()?;
                Ok(())
            })
        })
    }

    /// Opens a session, creating it when it does not exist.
    pub fn open_session(&self, name: &str) -> Result<PgSession, StoreError> {
        validate_session_name(name)?;
        let owned = name.to_string();
        let dotted = name.contains('.');
        let (loaded, created, locked) = self.run(name, move |link| {
            Box::pin(async move {
                let (loaded, created, locked, lock_wanted) = match link.take_prefetched(&owned) {
                    Some(p) => (p.loaded?, p.created, p.locked, p.lock_wanted),
                    None => (load(link, None, &owned).await?, false, false, false),
                };
                if let Some(loaded) = loaded {
                    return Ok((Some(loaded), created, locked));
                }
                if dotted {
                    // Only sessions of earlier versions have a dot.
                    return Ok((None, false, false));
                }
                // Created, locked when asked (its turn starts at once) and
                // loaded in one round trip.
                let (client, f) = link.client()?;
                let opened = session::create_lock_load(client, &f, &owned, true, lock_wanted).await;
                // The lock is kept only with the session, created (or found)
                // and loaded.
                let keep = opened.created.is_ok() && matches!(opened.loaded, Ok(Some(_)));
                let locked = session::keep_lock(client, opened.locked, keep)
                    .await
                    .map_err(|e| f.fail(e))?;
                let created = opened.created.map_err(|e| f.fail(e))?;
                let loaded = opened.loaded?;
                if let (true, Some(loaded)) = (locked, &loaded) {
                    link.took_turn(session::lock_key(loaded.id));
                }
                Ok((loaded, created, locked))
            })
        })?;
        let Some(loaded) = loaded else {
            if dotted {
                return Err(crate::memory::new_name_with_a_dot(name).into());
            }
            return Err(StoreError::NotFound(name.to_string()));
        };
        Ok(PgSession::new(
            self.conn.clone(),
            loaded,
            created,
            self.lock_wait,
            locked,
        ))
    }

    /// The names of all sessions, sorted.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        self.run("", |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let rows = client
                    .query("SELECT name FROM memchat_sessions ORDER BY name", &[])
                    .await
                    .map_err(|e| f.fail(e))?;
                rows.iter()
                    .map(|row| row.try_get(0).map_err(|e| f.fail(e)))
                    .collect()
            })
        })
    }

    /// Every session with its active records, most recently used first.
    pub fn infos(&self) -> Result<Vec<PgSessionInfo>, StoreError> {
        self.run("", |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let rows = client
                    .query(
                        "SELECT s.name, EXTRACT(EPOCH FROM s.updated_at)::float8, \
                         (SELECT count(*) FROM memchat_records r WHERE r.session_id = s.id \
                          AND r.archived AND r.kind = 'message') \
                         FROM memchat_sessions s ORDER BY s.updated_at DESC, s.name",
                        &[],
                    )
                    .await
                    .map_err(|e| f.fail(e))?;
                let mut infos = Vec::with_capacity(rows.len());
                for row in rows {
                    let name: String = row.try_get(0).map_err(|e| f.fail(e))?;
                    let epoch: f64 = row.try_get(1).map_err(|e| f.fail(e))?;
                    let archived: i64 = row.try_get(2).map_err(|e| f.fail(e))?;
                    let Some(loaded) = load(link, None, &name).await? else {
                        continue;
                    };
                    infos.push(PgSessionInfo {
                        name,
                        contents: contents_of(loaded),
                        archived: usize::try_from(archived).unwrap_or(0),
                        last_used: SystemTime::UNIX_EPOCH
                            + Duration::try_from_secs_f64(epoch).unwrap_or_default(),
                    });
                }
                Ok(infos)
            })
        })
    }

    /// The most recently used session, for `--continue`: one query (or
    /// none, when the connection's first round trip found it).
    pub fn most_recent(&self) -> Result<Option<String>, StoreError> {
        self.run("", |link| {
            Box::pin(async move {
                if let Some(recent) = link.take_most_recent() {
                    return Ok(recent);
                }
                let (client, f) = link.client()?;
                let row = client
                    .query_typed_opt(MOST_RECENT, &[])
                    .await
                    .map_err(|e| f.fail(e))?;
                row.map(|row| row.try_get(0).map_err(|e| f.fail(e)))
                    .transpose()
            })
        })
    }

    /// Says that `name` was last used at `at` (a copy `memchat migrate` just
    /// made: it keeps the source's time).
    pub fn set_last_used(&self, name: &str, at: SystemTime) -> Result<(), StoreError> {
        let owned = name.to_string();
        let epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.run(name, move |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                client
                    .execute(
                        "UPDATE memchat_sessions SET updated_at = to_timestamp($2) \
                         WHERE name = $1",
                        &[&owned, &epoch],
                    )
                    .await
                    .map_err(|e| f.fail(e))?;
                Ok(())
            })
        })
    }

    /// When `name` was last written, without reading it; `None` when there
    /// is no such session.
    pub fn last_used(&self, name: &str) -> Result<Option<SystemTime>, StoreError> {
        let owned = name.to_string();
        let epoch = self.run(name, move |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let row = client
                    .query_opt(
                        "SELECT EXTRACT(EPOCH FROM updated_at)::float8 FROM memchat_sessions \
                         WHERE name = $1",
                        &[&owned],
                    )
                    .await
                    .map_err(|e| f.fail(e))?;
                row.map(|row| row.try_get::<_, f64>(0).map_err(|e| f.fail(e)))
                    .transpose()
            })
        })?;
        Ok(epoch
            .map(|e| SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(e).unwrap_or_default()))
    }

    /// A session's active records, as a log's contents.
    pub fn read(&self, name: &str) -> Result<LogContents, StoreError> {
        let owned = name.to_string();
        let loaded = self.run(name, move |link| {
            Box::pin(async move { load(link, None, &owned).await })
        })?;
        loaded
            .map(contents_of)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// A session's archive, oldest first.
    pub fn read_archive(&self, name: &str) -> Result<Vec<Record>, StoreError> {
        let owned = name.to_string();
        let records = self.run(name, move |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let Some(id) = id_of(client, &f, &owned).await? else {
                    return Ok(None);
                };
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
                rows.iter()
                    .map(rows::record_from_row)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            })
        })?;
        records.ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// Creates a session from records (`import`, `migrate`): all of it in
    /// one transaction, or nothing. A session of that name is an error.
    pub fn create_session(
        &self,
        name: &str,
        created_at: &str,
        settings: &SessionSettings,
        archived: &[Record],
        active: &[Record],
    ) -> Result<(), StoreError> {
        validate_new_session_name(name)?;
        let last_seq = archived
            .iter()
            .chain(active)
            .filter_map(Record::seq)
            .max()
            .unwrap_or(0);
        let owned = name.to_string();
        let created_at = created_at.to_string();
        let settings = if settings.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(settings).map_err(|e| StoreError::Database {
                    target: self.shown().to_string(),
                    reason: format!("cannot store the settings: {e}"),
                })?,
            )
        };
        let settings_at = settings.as_ref().map(|_| format::now());
        if let Some(reason) = rows::unstorable(archived.iter().chain(active), settings.as_deref()) {
            return Err(StoreError::Database {
                target: self.shown().to_string(),
                reason: format!("session {name:?} cannot be copied: {reason}"),
            });
        }
        let archived = Columns::new(archived);
        let active = Columns::new(active);
        let created = self.run(name, move |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let tx = client.transaction().await.map_err(|e| f.fail(e))?;
                let row = tx
                    .query_opt(
                        "INSERT INTO memchat_sessions \
                         (name, created_at, last_seq, settings, settings_at) \
                         VALUES ($1, $2, $3, $4::text::jsonb, $5) \
                         ON CONFLICT (name) DO NOTHING RETURNING id",
                        &[
                            &owned,
                            &created_at,
                            &rows::seq_param(last_seq),
                            &settings,
                            &settings_at,
                        ],
                    )
                    .await
                    .map_err(|e| f.fail(e))?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let id: i64 = row.try_get(0).map_err(|e| f.fail(e))?;
                for (columns, is_archived) in [(&archived, true), (&active, false)] {
                    if columns.is_empty() {
                        continue;
                    }
                    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                        vec![&id, &is_archived];
                    params.extend(columns.params());
                    tx.execute(rows::INSERT, &params)
                        .await
                        .map_err(|e| f.fail(e))?;
                }
                tx.commit().await.map_err(|e| f.fail(e))?;
                Ok(true)
            })
        })?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Exists(name.to_string()))
        }
    }

    /// Renames a session (after any turn on it ends): one statement.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        validate_session_name(from)?;
        validate_new_session_name(to)?;
        let (from_owned, to_owned) = (from.to_string(), to.to_string());
        let wait_ms = self.wait_ms();
        let outcome = self.run(from, move |link| {
            Box::pin(async move {
                let Some(id) = locked_id(link, &from_owned, wait_ms).await? else {
                    return Ok(Outcome::NotFound);
                };
                let (client, f) = link.client()?;
                // Not a use of the session (`updated_at` stays): a renamed
                // file keeps its modification time too, and `--continue`
                // picks the same session on either store. A name taken as
                // of the statement's start is refused without touching the
                // unique index: crossed renames (`a b` and `b a` at once)
                // would otherwise each wait on the other's uncommitted row
                // and end in "deadlock detected" instead of "exists".
                let result = client
                    .execute(
                        "UPDATE memchat_sessions SET name = $2, revision = revision + 1 \
                         WHERE id = $1 AND NOT EXISTS \
                         (SELECT 1 FROM memchat_sessions WHERE name = $2)",
                        &[&id, &to_owned],
                    )
                    .await;
                let outcome = match result {
                    Ok(0) => Outcome::Exists,
                    Ok(_) => Outcome::Done,
                    Err(e) => match f.fail(e) {
                        DbError::Raced => Outcome::Exists,
                        other => {
                            let _ = client.batch_execute("ROLLBACK").await;
                            return Err(waited(other, wait_ms));
                        }
                    },
                };
                let end = match outcome {
                    Outcome::Done => "COMMIT",
                    _ => "ROLLBACK",
                };
                client.batch_execute(end).await.map_err(|e| f.fail(e))?;
                Ok(outcome)
            })
        })?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::NotFound => Err(StoreError::NotFound(from.to_string())),
            Outcome::Exists => Err(StoreError::Exists(to.to_string())),
        }
    }

    /// Deletes a session and its archive (after any turn on it ends).
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        validate_session_name(name)?;
        let owned = name.to_string();
        let wait_ms = self.wait_ms();
        let found = self.run(name, move |link| {
            Box::pin(async move {
                let Some(id) = locked_id(link, &owned, wait_ms).await? else {
                    return Ok(false);
                };
                let (client, f) = link.client()?;
                let deleted = client
                    .execute("DELETE FROM memchat_sessions WHERE id = $1", &[&id])
                    .await;
                if let Err(e) = deleted {
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(waited(f.fail(e), wait_ms));
                }
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| f.fail(e))?;
                Ok(true)
            })
        })?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound(name.to_string()))
        }
    }

    fn wait_ms(&self) -> u64 {
        session::millis(self.lock_wait)
    }
}

/// A change's wait for a row another transaction holds ran out: it says
/// how long the command waited in all (the lock's wait and the row's share
/// one deadline, see [`locked_id`]), not the server's "0s".
fn waited(error: DbError, wait_ms: u64) -> DbError {
    match error {
        DbError::Locked { .. } => DbError::Locked {
            waited_secs: wait_ms / 1000,
        },
        other => other,
    }
}

enum Outcome {
    Done,
    NotFound,
    Exists,
}

/// The id of session `name`, if there is one.
async fn id_of(
    client: &tokio_postgres::Client,
    f: &conn::Failer,
    name: &str,
) -> Result<Option<i64>, DbError> {
    let found = client
        .query_opt("SELECT id FROM memchat_sessions WHERE name = $1", &[&name])
        .await
        .map_err(|e| f.fail(e))?;
    found
        .map(|row| row.try_get(0).map_err(|e| f.fail(e)))
        .transpose()
}

/// Begins a transaction holding `name`'s lock (waiting for a turn on it to
/// end) and returns its id; `None` (and no transaction) when there is no
/// such session.
///
/// The session is found by name before the wait, and another client may
/// rename or delete it meanwhile (a rename queued ahead of this one): once
/// the lock is held, the name is checked again, and a session that is no
/// longer `name`'s is let go and `name` looked up afresh, within the same
/// overall wait. Else a `delete s1` queued behind `rename s1 s2` deleted s2.
async fn locked_id(link: &mut Link, name: &str, wait_ms: u64) -> Result<Option<i64>, DbError> {
    let (client, f) = link.client()?;
    let deadline = std::time::Instant::now() + Duration::from_millis(wait_ms);
    // Each pass follows a rename or delete by another client.
    for _ in 0..10 {
        let Some(id) = id_of(client, &f, name).await? else {
            return Ok(None);
        };
        let left_ms =
            session::millis(deadline.saturating_duration_since(std::time::Instant::now()));
        let locked = client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = {left_ms}; \
                 SELECT pg_advisory_xact_lock({LOCK_SPACE}, {})",
                lock_key(id)
            ))
            .await;
        if let Err(e) = locked {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(waited(f.fail(e), wait_ms));
        }
        // What is left of the wait bounds the change's own wait for the
        // row too (a transaction outside memchat may hold it): the whole
        // command waits at most the lock wait, not twice that.
        let left = format!(
            "{}ms",
            session::millis(deadline.saturating_duration_since(std::time::Instant::now()))
        );
        let still = client
            .query_opt(
                "SELECT set_config('lock_timeout', $3, true) FROM memchat_sessions \
                 WHERE id = $1 AND name = $2",
                &[&id, &name, &left],
            )
            .await;
        match still {
            Ok(Some(_)) => return Ok(Some(id)),
            Ok(None) => {
                // Renamed or deleted while this client waited.
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| f.fail(e))?;
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(f.fail(e));
            }
        }
    }
    Err(DbError::Failed(format!(
        "session {name:?} was renamed or deleted again and again while this client waited \
         for it; nothing was changed"
    )))
}
