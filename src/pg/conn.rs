//! One connection per process, on a thread of its own.
//!
//! The store is called synchronously (the file store is, and memchat's
//! runtime is single-threaded), while tokio-postgres is asynchronous. So the
//! connection lives on a dedicated thread with its own current-thread
//! runtime; a call sends it a job and waits for the answer, as a call to the
//! file store waits for an fsync. The thread starts connecting the moment
//! the store is opened, so the TCP, TLS and authentication round trips (and
//! the schema check) overlap with the rest of start-up.
//!
//! Every failure is a [`DbError`]: one line, never the password, and it
//! becomes a [`StoreError`] (exit status 3) at the store's boundary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::url::StoreUrl;
use super::{schema, tls};
use crate::memory::StoreError;

/// How long the server keeps a dead client's connection (and so its turn
/// lock): keepalive probes after 10 s of silence, every 5 s, 3 unanswered
/// ones end it; unacknowledged data ends it after 30 s. A killed process's
/// connection ends at once (its socket is closed by the kernel).
pub const DEAD_CLIENT_SECS: u64 = 30;
const SERVER_KEEPALIVES: &str = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
                                 -c tcp_keepalives_count=3 -c tcp_user_timeout=30000";

/// A failure of the database, as memchat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// Another client held the session's lock for the whole wait.
    Locked { waited_secs: u64 },
    /// Another client wrote to the session since it was loaded, or took the
    /// same `seq` (the unique key caught a lost race): nothing was written.
    Raced,
    /// Anything else, in one line.
    Failed(String),
}

impl DbError {
    /// The store error for `session` (or the store itself) at `target`.
    pub fn into_store(self, target: &str, session: &str) -> StoreError {
        match self {
            DbError::Locked { waited_secs } => StoreError::Locked {
                session: session.to_string(),
                waited_secs,
            },
            DbError::Raced => StoreError::Database {
                target: target.to_string(),
                reason: format!(
                    "session {session:?} was changed by another memchat at the same time; \
                     nothing of this step was written (run the command again)"
                ),
            },
            DbError::Failed(reason) => StoreError::Database {
                target: target.to_string(),
                reason,
            },
        }
    }
}

/// One line for a tokio-postgres error, by what the user can do about it.
pub fn describe(error: &tokio_postgres::Error, url: &StoreUrl) -> DbError {
    let user = url.config.get_user().unwrap_or("?");
    let dbname = url.config.get_dbname().unwrap_or(user);
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message();
        let reason = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            format!("the server refused the credentials of user {user:?}: {message}")
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            format!(
                "database {dbname:?} does not exist on the server (create it, e.g. `createdb \
                 {dbname}`, or fix the URL)"
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            format!(
                "permission denied: {message} (user {user:?} needs to create and write \
                 memchat's tables in this database)"
            )
        } else if *code == SqlState::INVALID_SCHEMA_NAME {
            format!(
                "{message}: the search_path names no schema user {user:?} may create memchat's tables in"
            )
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            return DbError::Locked { waited_secs: 0 };
        } else if *code == SqlState::UNIQUE_VIOLATION {
            return DbError::Raced;
        } else if [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
        {
            format!("the server ended the connection ({message}); what was committed is kept")
        } else {
            format!("{message} (SQLSTATE {})", code.code())
        };
        return DbError::Failed(super::url::mask(&reason));
    }
    if error.is_closed() {
        return DbError::Failed(
            "the connection to the server was lost; what was committed is kept".to_string(),
        );
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return DbError::Failed(format!(
                "cannot reach the server: {}",
                super::url::mask(&io.to_string())
            ));
        }
        cause = c.source();
    }
    let text = super::url::mask(&error.to_string());
    if text.contains("timeout") || text.contains("timed out") {
        let secs = url
            .config
            .get_connect_timeout()
            .map_or(0, Duration::as_secs);
        return DbError::Failed(format!("cannot reach the server: no answer within {secs}s"));
    }
    if text.contains("TLS") || text.contains("tls") {
        return DbError::Failed(format!("TLS: {text}"));
    }
    DbError::Failed(text)
}

/// Turns query errors into [`DbError`]s while the client is borrowed.
#[derive(Clone)]
pub struct Failer {
    url: Arc<StoreUrl>,
    ended: Arc<Mutex<Option<DbError>>>,
}

impl Failer {
    /// Describes an error of a query, preferring the reason the server gave
    /// for ending the connection.
    pub fn fail(&self, error: tokio_postgres::Error) -> DbError {
        if error.is_closed() {
            return lost(&self.ended);
        }
        describe(&error, &self.url)
    }
}

fn lost(ended: &Mutex<Option<DbError>>) -> DbError {
    let ended = ended.lock().ok().and_then(|e| e.clone());
    match ended {
        Some(DbError::Failed(reason)) => DbError::Failed(reason),
        _ => DbError::Failed(
            "the connection to the server was lost; what was committed is kept".to_string(),
        ),
    }
}

/// The connection as the thread holds it.
pub struct Link {
    url: Arc<StoreUrl>,
    state: Result<Client, DbError>,
    /// Why the connection task ended, when the server said (a terminated
    /// backend, a shutdown): the next failure reports it.
    ended: Arc<Mutex<Option<DbError>>>,
}

impl Link {
    /// The client and what describes its errors, or why there is no
    /// client. A connection that closed reports why, once known.
    pub fn client(&mut self) -> Result<(&mut Client, Failer), DbError> {
        let failer = Failer {
            url: self.url.clone(),
            ended: self.ended.clone(),
        };
        match &mut self.state {
            Ok(client) if client.is_closed() => Err(lost(&self.ended)),
            Ok(client) => Ok((client, failer)),
            Err(e) => Err(e.clone()),
        }
    }

    /// Connects again if the connection was lost (between turns: a server
    /// restart, an idle connection dropped by a proxy). Never mid-turn: the
    /// turn's lock died with the old connection.
    pub async fn reconnect_if_closed(&mut self) {
        if self.state.as_ref().is_ok_and(Client::is_closed) {
            self.connect().await;
        }
    }

    async fn connect(&mut self) {
        self.state = self.try_connect().await;
    }

    async fn try_connect(&mut self) -> Result<Client, DbError> {
        let mut config = self.url.config.clone();
        let options = match config.get_options() {
            Some(own) => format!("{own} {SERVER_KEEPALIVES}"),
            None => SERVER_KEEPALIVES.to_string(),
        };
        config.options(options);
        let ended = Arc::new(Mutex::new(None));
        self.ended = ended.clone();
        let url = self.url.clone();
        let on_end = move |result: Result<(), tokio_postgres::Error>| {
            if let Err(e) = result
                && let Ok(mut slot) = ended.lock()
            {
                *slot = Some(describe(&e, &url));
            }
        };
        let connector = tls::connector(self.url.ssl, &self.url.roots).map_err(DbError::Failed)?;
        let mut client = match connector {
            None => {
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| describe(&e, &self.url))?;
                tokio::spawn(async move { on_end(connection.await) });
                client
            }
            Some(connector) => {
                let (client, connection) = config
                    .connect(connector)
                    .await
                    .map_err(|e| describe(&e, &self.url))?;
                tokio::spawn(async move { on_end(connection.await) });
                client
            }
        };
        schema::ensure(&mut client).await.map_err(|e| match e {
            schema::SchemaError::Db(e) => describe(&e, &self.url),
            schema::SchemaError::Newer(reason) => DbError::Failed(reason),
        })?;
        Ok(client)
    }
}

type Job = Box<dyn for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, ()> + Send>;

fn job<F>(f: F) -> Job
where
    F: for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, ()> + Send + 'static,
{
    Box::new(f)
}

/// The handle the store holds: sends jobs to the connection's thread.
#[derive(Debug)]
pub struct Conn {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// The URL, password masked, for errors.
    pub shown: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("url", &self.url).finish()
    }
}

impl Conn {
    /// Starts the connection's thread, which connects at once; calls wait
    /// for it.
    pub fn open(url: StoreUrl) -> Result<Conn, StoreError> {
        let shown = url.shown.clone();
        let failed = |reason: String| StoreError::Database {
            target: shown.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start the connection's runtime: {e}")))?;
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("memchat-pg".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut link = Link {
                        url: Arc::new(url),
                        state: Err(DbError::Failed("not connected yet".to_string())),
                        ended: Arc::new(Mutex::new(None)),
                    };
                    link.connect().await;
                    while let Some(job) = queue.recv().await {
                        job(&mut link).await;
                    }
                    // Dropping the client sends Terminate: the server ends
                    // the backend (and any lock it held) at once.
                });
            })
            .map_err(|e| failed(format!("cannot start the connection's thread: {e}")))?;
        Ok(Conn {
            jobs,
            shown: shown.clone(),
        })
    }

    /// Runs `f` on the connection's thread and waits for its result.
    pub fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, Result<T, DbError>> + Send + 'static,
    {
        let stopped = || DbError::Failed("the connection's thread has stopped".to_string());
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(job(move |link| {
                Box::pin(async move {
                    let _ = done.send(f(link).await);
                })
            }))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// [`Conn::call`] with the error as a store error for `session`.
    pub fn run<T, F>(&self, session: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, Result<T, DbError>> + Send + 'static,
    {
        self.call(f).map_err(|e| e.into_store(&self.shown, session))
    }
}
