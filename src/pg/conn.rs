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
//! Every failure is a [`DbError`] (`errors.rs`): one line, never the
//! password, and it becomes a [`StoreError`] (exit status 3) at the
//! store's boundary.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use tokio_postgres::{Client, NoTls};

pub use super::errors::{DbError, Failer, describe};
use super::errors::{describe_for, lost};
use super::session::{self, Loaded};
use super::url::{CONNECT_TIMEOUT, StoreUrl};
use super::{schema, tls};
use crate::memory::StoreError;

/// How long the server keeps a dead client's connection (and so its turn
/// lock): keepalive probes after 10 s of silence, every 5 s, 3 unanswered
/// ones end it; unacknowledged data ends it after 30 s. A killed process's
/// connection ends at once (its socket is closed by the kernel).
pub const DEAD_CLIENT_SECS: u64 = 30;

/// The server's side of that, set with the connection's first round trip
/// (pipelined, so it costs no round trip of its own). Not as `options` in
/// the startup message: PgBouncer refuses a startup message with `options`
/// unless told to ignore them, and a pooler would apply them with a round
/// trip of its own.
const SERVER_KEEPALIVES: &str = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
                                 SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000";

/// How long an ended turn's lock may stay held in case another job comes
/// (the release then goes just ahead of that job's statements): an idle
/// REPL releases it after this long.
const RELEASE_GRACE: Duration = Duration::from_millis(5);

/// The longest the end of a process waits for its connection to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The connection as the thread holds it.
pub struct Link {
    url: Arc<StoreUrl>,
    state: Result<Client, DbError>,
    /// Why the connection task ended, when the server said (a terminated
    /// backend, a shutdown): the next failure reports it.
    ended: Arc<Mutex<Option<DbError>>>,
    /// Turn locks ended but not released yet (their second keys), see
    /// [`Link::release_later`].
    releases: Vec<i32>,
    /// The turn lock this connection holds (its second key), kept when the
    /// connection is lost: a store-wide call does not connect again in the
    /// middle of a turn ([`Link::in_turn`]); the turn's own write does,
    /// taking the lock again (`resume.rs`).
    turn: Option<i32>,
    /// The task that drives the connection, awaited when the process ends
    /// so that the server gets a Terminate, not a reset connection.
    task: Option<tokio::task::JoinHandle<()>>,
    /// The session loaded with the schema check, for the first job.
    prefetched: Option<Prefetched>,
    /// The most recent session (`None`: there is none), when the first
    /// round trip was asked for it.
    recent: Option<Option<String>>,
    /// Whether `prefetched` outlives the job under way.
    keep_prefetched: bool,
    /// Whether a call has come since the connection's thread started: a
    /// failed connection is tried again at every call but the first (which
    /// reports the failure of the attempt made at start-up).
    called: bool,
}

impl Link {
    /// The client and what describes its errors, or why there is no
    /// client. A connection that closed reports why, once known.
    pub fn client(&mut self) -> Result<(&mut Client, Failer), DbError> {
        let failer = self.failer();
        match &mut self.state {
            Ok(client) if client.is_closed() => Err(lost(&self.ended)),
            Ok(client) => Ok((client, failer)),
            Err(e) => Err(e.clone()),
        }
    }

    /// Whether the connection still answers (after a failed statement:
    /// was it the statement, or the connection?). One round trip.
    pub async fn alive(&mut self) -> bool {
        match self.client() {
            Ok((client, _)) => client.batch_execute("").await.is_ok(),
            Err(_) => false,
        }
    }

    /// What describes this connection's errors.
    fn failer(&self) -> Failer {
        Failer {
            url: self.url.clone(),
            ended: self.ended.clone(),
        }
    }

    /// A failed schema check, in one line.
    fn schema_error(&self, error: schema::SchemaError) -> DbError {
        match error {
            schema::SchemaError::Db(e) => describe(&e, &self.url),
            schema::SchemaError::Newer(reason) => DbError::Failed(reason),
        }
    }

    /// The settings' and the schema check's answers from a first round
    /// trip: the tables upgraded first when they are older. Returns whether
    /// they were current (what else that round trip read counts only then).
    async fn settle_schema(
        &self,
        client: &mut Client,
        set: Result<(), tokio_postgres::Error>,
        answer: Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
    ) -> Result<bool, DbError> {
        set.map_err(|e| describe(&e, &self.url))?;
        match schema::judge(answer).map_err(|e| self.schema_error(e))? {
            schema::Verdict::Current => Ok(true),
            schema::Verdict::Migrate => {
                schema::migrate(client)
                    .await
                    .map_err(|e| self.schema_error(e))?;
                Ok(false)
            }
        }
    }

    /// Ends a turn lock (second key `key`) soon: released within
    /// `RELEASE_GRACE`, or before the next job, or when the connection
    /// closes, whichever comes first. The turn's caller does not wait for
    /// the round trip (a REPL shows its prompt again at once).
    pub fn release_later(&mut self, key: i32) {
        self.ended_turn(key);
        self.releases.push(key);
    }

    /// This connection took the turn lock of second key `key`.
    pub fn took_turn(&mut self, key: i32) {
        self.turn = Some(key);
    }

    /// The turn lock of second key `key` is released (or on its way).
    pub fn ended_turn(&mut self, key: i32) {
        if self.turn == Some(key) {
            self.turn = None;
        }
    }

    /// Whether a turn is under way on this connection (or was, on the one
    /// that was lost).
    pub fn in_turn(&self) -> bool {
        self.turn.is_some()
    }

    /// Sends the release of the ended turn locks, without waiting for the
    /// server's answer: whatever is sent next on the connection queues
    /// behind it, so the server has released the lock before it runs the
    /// next statement (a REPL's next turn takes the lock again in the same
    /// round trip), and the connection task reads the answer and drops it.
    /// A lost connection has released the lock already.
    fn send_releases(&mut self) {
        let keys = std::mem::take(&mut self.releases);
        for &key in &keys {
            self.ended_turn(key);
        }
        if let Ok((client, _)) = self.client() {
            for key in keys {
                // The first poll encodes the statement and hands it to the
                // connection task; the answer is not awaited.
                let _ = client
                    .execute_typed(schema::UNLOCK, &[(&key, tokio_postgres::types::Type::INT4)])
                    .now_or_never();
            }
        }
    }

    /// Closes the connection the way the server expects: the ended turns'
    /// locks released, then Terminate and the end of the stream (the
    /// server ends the backend at once and logs nothing). The locks are
    /// released explicitly even though a backend's end releases them: a
    /// connection pooler keeps the server connection, and one that does not
    /// reset it for its next client would keep the lock with it.
    async fn close(mut self) {
        self.forget_prefetched();
        // Sent before Terminate, which the connection task sends only once
        // every answer has come: the release is done before the server (or
        // the pooler) sees the connection end.
        self.send_releases();
        self.state = Err(DbError::Failed("closed".to_string()));
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(CLOSE_WAIT, task).await;
        }
    }

    /// Connects again if the connection was lost (between turns: a server
    /// restart, an idle connection dropped by a proxy), or if the last
    /// attempt to connect failed: a server still down is tried again at
    /// every call, so a REPL left open recovers once it is back. Mid-turn
    /// only to take the turn up again (`resume.rs`): the turn's lock died
    /// with the old connection, and is taken again before anything is
    /// written.
    pub async fn reconnect_if_closed(&mut self) {
        let first_call = !std::mem::replace(&mut self.called, true);
        match &self.state {
            Ok(client) if client.is_closed() => self.connect().await,
            Ok(_) => {}
            // The failure of the attempt made as the process started: the
            // first call reports it rather than wait for a second attempt.
            Err(_) if first_call => {}
            Err(_) => self.connect().await,
        }
    }

    /// Connects again. A signal meanwhile (Ctrl-C) ends the attempt: the
    /// main thread waits on this one, blocked, and a silent server would
    /// otherwise hold it for the whole connect timeout. The call then fails
    /// like any failed attempt, before its statements (no lock is taken).
    async fn connect(&mut self) {
        self.state = tokio::select! {
            state = self.try_connect(None) => state,
            () = crate::interrupt::next_signal() => Err(DbError::Failed(
                "interrupted while connecting to the server".to_string(),
            )),
        };
    }

    /// Connects and checks the schema; with `prefetch`, loads that session
    /// in the same round trip as the check.
    async fn try_connect(&mut self, prefetch: Option<Prefetch>) -> Result<Client, DbError> {
        let config = &self.url.config;
        let settings = if self.url.name_it {
            format!("SET application_name = 'memchat'; {SERVER_KEEPALIVES}")
        } else {
            SERVER_KEEPALIVES.to_string()
        };
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
        // tokio-postgres bounds only a socket's connect by the connect
        // timeout: a server (or anything listening there) that accepts and
        // then never answers would hold memchat forever, and in a host list
        // tokio-postgres would never go on to the next host. So each host of
        // a list is an attempt of its own (`url::attempts`), and the whole
        // start-up of each (TLS, authentication) gets the timeout; a list
        // tokio-postgres walks itself (in a random order) gets it once per
        // host.
        let attempts = super::url::attempts(config);
        let hosts = if attempts.len() > 1 {
            1
        } else {
            config
                .get_hosts()
                .len()
                .max(config.get_hostaddrs().len())
                .max(1)
        };
        // Saturating: `connect_timeout` may be any number of seconds.
        let limit = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
            .saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX));
        // Why each host failed, named when there are several (libpq lists
        // them too: the reason that matters may not be the last one).
        let mut failures: Vec<(String, DbError)> = Vec::new();
        let mut connected = None;
        for attempt in &attempts {
            let outcome = match &connector {
                None => connect_within(attempt, NoTls, limit, on_end.clone()).await,
                Some(tls) => connect_within(attempt, tls.clone(), limit, on_end.clone()).await,
            };
            let failure = match outcome {
                Some(Ok(pair)) => {
                    connected = Some(pair);
                    break;
                }
                Some(Err(e)) => describe_for(&e, attempt),
                None => DbError::Failed(format!(
                    "cannot reach the server: no answer within {}s",
                    limit.as_secs()
                )),
            };
            failures.push((super::url::attempt_name(attempt), failure));
        }
        let Some((mut client, task)) = connected else {
            return Err(match failures.len() {
                0 => DbError::Failed("the URL names no host".to_string()),
                1 => failures.remove(0).1,
                _ => {
                    let each: Vec<String> = failures
                        .into_iter()
                        .map(|(host, failure)| match failure {
                            DbError::Failed(reason) => format!("{host}: {reason}"),
                            other => format!("{host}: {other:?}"),
                        })
                        .collect();
                    DbError::Failed(format!(
                        "no host of the list could be used: {}",
                        each.join("; ")
                    ))
                }
            });
        };
        self.task = Some(task);
        let Some(Prefetch { session, lock }) = prefetch else {
            // The settings and the schema check in one round trip.
            let (set, answer) = first_answer(
                limit,
                futures::future::join(
                    client.batch_execute(&settings),
                    client.query_typed_opt(schema::VERSION_QUERY, &[]),
                ),
            )
            .await?;
            self.settle_schema(&mut client, set, answer).await?;
            return Ok(client);
        };
        // The settings, the session's creation, lock and load (when asked
        // for), and the schema check in one round trip. The load counts only
        // if the tables were current (else it failed, or read tables about
        // to be upgraded).
        let Some(name) = session else {
            return self
                .prefetch_most_recent(client, &settings, lock, limit)
                .await;
        };
        let failer = self.failer();
        // A one-shot's session is created here too when it is new (as
        // opening it would): its turn needs no round trip of its own.
        let create = lock && crate::memory::validate_new_session_name(&name).is_ok();
        let (set, opened, answer) = first_answer(
            limit,
            futures::future::join3(
                client.batch_execute(&settings),
                session::create_lock_load(&client, &failer, &name, create, lock),
                client.query_typed_opt(schema::VERSION_QUERY, &[]),
            ),
        )
        .await?;
        let verdict = set
            .map_err(|e| describe(&e, &self.url))
            .and_then(|()| schema::judge(answer).map_err(|e| self.schema_error(e)));
        // The lock is kept only with the session it was taken for, loaded
        // from current tables.
        let current = matches!(verdict, Ok(schema::Verdict::Current));
        let keep = current && matches!(opened.loaded, Ok(Some(_)));
        let locked = session::keep_lock(&client, opened.locked, keep)
            .await
            .map_err(|e| describe(&e, &self.url))?;
        match verdict? {
            schema::Verdict::Current => {
                if let (true, Ok(Some(loaded))) = (locked, &opened.loaded) {
                    self.took_turn(session::lock_key(loaded.id));
                }
                self.prefetched = Some(Prefetched {
                    session: name,
                    loaded: opened.loaded,
                    // Without the tables yet the insert failed: the schema
                    // check creates them, and opening the session creates it.
                    created: matches!(opened.created, Ok(true)),
                    locked,
                    lock_wanted: lock,
                });
            }
            schema::Verdict::Migrate => {
                schema::migrate(&mut client)
                    .await
                    .map_err(|e| self.schema_error(e))?;
            }
        }
        Ok(client)
    }

    /// [`Link::try_connect`]'s first round trips for `--continue`: the
    /// settings, the schema check and which session is the most recent
    /// (kept for [`Link::take_most_recent`]), then that session locked
    /// (with `lock`) and loaded in a second round trip, as for a name.
    async fn prefetch_most_recent(
        &mut self,
        mut client: Client,
        settings: &str,
        lock: bool,
        limit: Duration,
    ) -> Result<Client, DbError> {
        let (set, answer, recent) = first_answer(
            limit,
            futures::future::join3(
                client.batch_execute(settings),
                client.query_typed_opt(schema::VERSION_QUERY, &[]),
                client.query_typed_opt(super::MOST_RECENT, &[]),
            ),
        )
        .await?;
        if !self.settle_schema(&mut client, set, answer).await? {
            // Read before the tables were made current: asked again.
            return Ok(client);
        }
        let recent: Option<String> = recent
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|e| describe(&e, &self.url))?;
        self.recent = Some(recent.clone());
        let Some(name) = recent else {
            return Ok(client);
        };
        let opened = session::create_lock_load(&client, &self.failer(), &name, false, lock).await;
        let keep = matches!(opened.loaded, Ok(Some(_)));
        let locked = session::keep_lock(&client, opened.locked, keep)
            .await
            .map_err(|e| describe(&e, &self.url))?;
        if let (true, Ok(Some(loaded))) = (locked, &opened.loaded) {
            self.took_turn(session::lock_key(loaded.id));
        }
        self.prefetched = Some(Prefetched {
            session: name,
            loaded: opened.loaded,
            created: false,
            locked,
            lock_wanted: lock,
        });
        Ok(client)
    }

    /// The most recent session as the connection's first round trip found
    /// it (`--continue`), once: the job that asks for it leaves what was
    /// loaded with it for the next job, which opens that session.
    pub fn take_most_recent(&mut self) -> Option<Option<String>> {
        let recent = self.recent.take();
        self.keep_prefetched = recent.is_some();
        recent
    }

    /// After each job: only the first job may use what the connection
    /// loaded with its schema check, or the second when the first asked
    /// which session that is.
    fn after_job(&mut self) {
        self.recent = None;
        if !std::mem::take(&mut self.keep_prefetched) {
            self.forget_prefetched();
        }
    }

    /// Drops what the first round trip loaded if nothing took it (the
    /// session was never opened: an error came first), releasing the turn
    /// lock it holds.
    fn forget_prefetched(&mut self) {
        if let Some(Prefetched {
            locked: true,
            loaded: Ok(Some(loaded)),
            ..
        }) = self.prefetched.take()
        {
            self.releases.push(session::lock_key(loaded.id));
        }
    }

    /// What the connection's first round trip loaded for session `name`,
    /// if that is the session asked for and nothing ran on the connection
    /// since ([`Conn::open`]'s `prefetch`).
    pub fn take_prefetched(&mut self, name: &str) -> Option<Prefetched> {
        match self.prefetched.take() {
            Some(p) if p.session == name => Some(p),
            // Another session: left for the end of the job, which releases
            // its lock ([`Link::forget_prefetched`]).
            other => {
                self.prefetched = other;
                None
            }
        }
    }
}

/// The connection's first round trip, bounded as its start-up is: a server
/// (or anything on its port) that completes the start-up and then never
/// answers would otherwise hold memchat for good, with nothing to say.
async fn first_answer<F: std::future::Future>(
    limit: Duration,
    round_trip: F,
) -> Result<F::Output, DbError> {
    tokio::time::timeout(limit, round_trip).await.map_err(|_| {
        DbError::Failed(format!(
            "the server accepted the connection but did not answer within {}s \
             (connect_timeout; a lock held on memchat's tables, as by another memchat \
             upgrading them, also holds it)",
            limit.as_secs()
        ))
    })
}

/// Connects with `attempt`'s configuration and starts the task that drives
/// the connection (its end reported to `on_end`), or `None` when the whole
/// start-up took longer than `limit`.
async fn connect_within<T>(
    attempt: &tokio_postgres::Config,
    tls: T,
    limit: Duration,
    on_end: impl FnOnce(Result<(), tokio_postgres::Error>) + Send + 'static,
) -> Option<Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let connected = tokio::time::timeout(limit, attempt.connect(tls))
        .await
        .ok()?;
    Some(connected.map(|(client, connection)| {
        (
            client,
            tokio::spawn(async move { on_end(connection.await) }),
        )
    }))
}

/// What a chat about to start asks the connection to do with its first
/// round trip (see [`Conn::open`]).
#[derive(Debug, Clone)]
pub struct Prefetch {
    /// The session it will open: loaded with the schema check; `None` for
    /// the most recently used one (`--continue`), found first.
    pub session: Option<String>,
    /// Whether its first turn starts at once (a one-shot with nothing left
    /// to read): the session is then created if new and its turn lock
    /// taken in the same round trip, before the load, and it opens in its
    /// turn.
    pub lock: bool,
}

/// What the first round trip found for [`Prefetch::session`].
#[derive(Debug)]
pub struct Prefetched {
    session: String,
    /// The session as [`session::load`] gives it.
    pub loaded: Result<Option<Loaded>, DbError>,
    /// Whether this round trip created it.
    pub created: bool,
    /// Whether this connection holds the session's turn lock.
    pub locked: bool,
    /// Whether the lock was asked for ([`Prefetch::lock`]): a session that
    /// did not exist is then locked as it is created.
    pub lock_wanted: bool,
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
    /// Why the connection's thread stopped before it could run any job.
    stopped: Arc<OnceLock<String>>,
    /// Says when the connection's thread has closed the connection.
    closed: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// The URL, password masked, for errors.
    pub shown: String,
}

impl Drop for Conn {
    /// Closes the connection and waits (at most `CLOSE_WAIT`) until it is
    /// closed, so that the process does not end with the connection open.
    fn drop(&mut self) {
        let (jobs, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.jobs, jobs));
        if let Some(closed) = self.closed.get_mut().ok().and_then(Option::take) {
            let _ = closed.recv_timeout(CLOSE_WAIT);
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("url", &self.url).finish()
    }
}

impl Conn {
    /// Starts the connection's thread, which connects at once; calls wait
    /// for it. With `prefetch`, the connection loads that session with its
    /// schema check (one round trip, with the turn lock when asked), for
    /// the first call to take ([`Link::take_prefetched`]): the session a
    /// chat is about to open is read while the rest of start-up runs.
    pub fn open(url: StoreUrl, prefetch: Option<Prefetch>) -> Result<Conn, StoreError> {
        let shown = url.shown.clone();
        let failed = |reason: String| StoreError::Database {
            target: shown.clone(),
            reason,
        };
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (closed_tx, closed) = std::sync::mpsc::sync_channel(1);
        let stopped = Arc::new(OnceLock::new());
        let thread_stopped = stopped.clone();
        std::thread::Builder::new()
            .name("memchat-pg".to_string())
            .spawn(move || {
                // Built here, not by the caller: the connection starts as
                // soon as the thread runs, and the caller goes on at once.
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        // Every call then fails with this reason.
                        let _ = thread_stopped
                            .set(format!("cannot start the connection's runtime: {e}"));
                        let _ = closed_tx.send(());
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut link = Link {
                        url: Arc::new(url),
                        state: Err(DbError::Failed("not connected yet".to_string())),
                        ended: Arc::new(Mutex::new(None)),
                        releases: Vec::new(),
                        turn: None,
                        task: None,
                        prefetched: None,
                        recent: None,
                        keep_prefetched: false,
                        called: false,
                    };
                    link.state = link.try_connect(prefetch).await;
                    loop {
                        let next = if link.releases.is_empty() {
                            queue.recv().await
                        } else {
                            tokio::select! {
                                next = queue.recv() => next,
                                () = tokio::time::sleep(RELEASE_GRACE) => {
                                    link.send_releases();
                                    continue;
                                }
                            }
                        };
                        let Some(job) = next else { break };
                        link.send_releases();
                        job(&mut link).await;
                        link.after_job();
                    }
                    // Every handle is gone: the process is ending.
                    link.close().await;
                });
                let _ = closed_tx.send(());
            })
            .map_err(|e| failed(format!("cannot start the connection's thread: {e}")))?;
        Ok(Conn {
            jobs,
            stopped,
            closed: Mutex::new(Some(closed)),
            shown: shown.clone(),
        })
    }

    /// The error of a call that found the connection's thread gone.
    fn stopped(&self) -> DbError {
        DbError::Failed(
            self.stopped
                .get()
                .cloned()
                .unwrap_or_else(|| "the connection's thread has stopped".to_string()),
        )
    }

    /// Runs `f` on the connection's thread and waits for its result.
    pub fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, Result<T, DbError>> + Send + 'static,
    {
        let stopped = || self.stopped();
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

    /// Runs `f` on the connection's thread without waiting for it, for a
    /// step whose answer nobody needs. Jobs run in the order they were
    /// sent, so a later [`Conn::call`] runs after it.
    pub fn send<F>(&self, f: F) -> Result<(), DbError>
    where
        F: for<'c> FnOnce(&'c mut Link) -> LocalBoxFuture<'c, ()> + Send + 'static,
    {
        self.jobs.send(job(f)).map_err(|_| self.stopped())
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
