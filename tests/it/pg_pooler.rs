//! memchat through PgBouncer in session mode, the pooler the README
//! recommends for one-shots: with PgBouncer's default settings (which
//! refuse a startup message carrying `options`), and with a pooler that
//! does not reset its server connections between clients, where a turn lock
//! left to the end of the connection would stay held for every other
//! client. Needs the `pgbouncer` program (installed by `.ci/postgres.sh`);
//! without it the tests say SKIPPED (and fail under `CI=true`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pg_server::is_root;
use crate::pg_store::{TestDb, admin, advisory_locks};
use crate::support::{Sandbox, skip_without, text, wait_until};

fn pgbouncer_program() -> Option<PathBuf> {
    [
        "/usr/sbin/pgbouncer",
        "/usr/bin/pgbouncer",
        "/usr/local/bin/pgbouncer",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A PgBouncer of the test's own, in front of the test server, logging in
/// as a role whose default `search_path` is the test's schema (a pooler
/// passes no `options`). Stopped, and the role dropped, on drop.
struct Pooler {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
    role: String,
    dbname: String,
    base: String,
}

impl Pooler {
    fn start(test: &str, db: &TestDb, reset_query: &str) -> Option<Pooler> {
        let Some(program) = pgbouncer_program() else {
            skip_without(test, "pgbouncer is not installed");
            return None;
        };
        let crate::pg_store::Server {
            host,
            port: server_port,
            dbname,
            ..
        } = db.server();
        let role = format!("{}_pooled", db.schema);
        admin(
            &db.base,
            &format!(
                "CREATE ROLE {role} LOGIN; GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}; \
                 ALTER ROLE {role} SET search_path = {schema}",
                schema = db.schema
            ),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ini = dir.path().join("pgbouncer.ini");
        // PgBouncer's defaults but for what a test needs: its own port, no
        // socket, no password (the test server trusts), and the reset query.
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{dbname} = host={host} port={server_port} dbname={dbname} \
                 user={role}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = any\npool_mode = session\n\
                 server_reset_query = {reset_query}\nlogfile = {log}\n",
                log = dir.path().join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        let mut command = Command::new(&program);
        if is_root() {
            // PgBouncer will not run as root.
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pooler = Pooler {
            child,
            _dir: dir,
            port,
            role,
            dbname,
            base: db.base.clone(),
        };
        wait_until("pgbouncer to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(pooler)
    }

    /// memchat's URL through this pooler.
    fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}?sslmode=disable",
            self.role, self.port, self.dbname
        )
    }

    /// The advisory locks the pooler's server connections hold.
    fn locks(&self) -> String {
        advisory_locks(&self.base, &format!("usename = '{}'", self.role))
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = admin(
            &self.base,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{r}'; \
                 DROP OWNED BY {r}; DROP ROLE IF EXISTS {r}",
                r = self.role
            ),
        );
    }
}

#[test]
fn one_shots_work_through_pgbouncer_with_its_default_settings() {
    let test = "pg_pooler::one_shots_work_through_pgbouncer";
    let Some(db) = TestDb::new(test) else {
        return;
    };
    let Some(pooler) = Pooler::start(test, &db, "DISCARD ALL") else {
        return;
    };
    let url = pooler.url();
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", url.as_str()), ("MEMCHAT_LOCK_WAIT", "2")];
    for prompt in ["first", "second", "third"] {
        let out = sandbox.run(&["--mock", "-s", "s", prompt], &env, None);
        assert!(out.status.success(), "{prompt}: {}", text(&out.stderr));
    }
    let out = sandbox.run(&["show", "s"], &env, None);
    let shown = text(&out.stdout);
    for prompt in ["first", "second", "third"] {
        assert!(shown.contains(prompt), "{shown}");
    }
    assert_eq!(pooler.locks(), "0");
}

#[test]
fn a_pooler_that_keeps_its_server_connections_as_they_are_gets_no_lock_with_them() {
    let test = "pg_pooler::a_pooler_that_keeps_its_server_connections";
    let Some(db) = TestDb::new(test) else {
        return;
    };
    // No reset between clients: whatever a client leaves on its server
    // connection stays there for the next one.
    let Some(pooler) = Pooler::start(test, &db, "") else {
        return;
    };
    let url = pooler.url();
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", url.as_str()), ("MEMCHAT_LOCK_WAIT", "1")];
    let out = sandbox.run(&["--mock", "-s", "s", "through the pooler"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The one-shot released its turn lock before it closed its connection:
    // the server connection the pooler keeps holds nothing.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pooler.locks(), "0");
    // And a client that does not go through the pooler can take the turn.
    let out = sandbox.run(
        &["--mock", "-s", "s", "directly"],
        &[
            ("MEMCHAT_STORE", db.url.as_str()),
            ("MEMCHAT_LOCK_WAIT", "1"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_lock_taken_with_the_first_round_trip_is_released_if_no_session_takes_it() {
    let test = "pg_pooler::a_lock_taken_with_the_first_round_trip";
    let Some(db) = TestDb::new(test) else {
        return;
    };
    let Some(pooler) = Pooler::start(test, &db, "") else {
        return;
    };
    let url = pooler.url();
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", url.as_str())];
    let out = sandbox.run(&["--mock", "-s", "s", "make it"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wait = Duration::from_secs(2);
    let first = || memchat::pg::Prefetch {
        session: Some("s".to_string()),
        lock: true,
    };
    // Another call came first: the lock goes once it has run.
    let store = memchat::pg::PgStore::open_for(&url, wait, Some(first())).unwrap();
    store.check().unwrap();
    wait_until("the unused lock to be released", || pooler.locks() == "0");
    drop(store);
    // Nothing came at all: the lock goes as the connection closes.
    let store = memchat::pg::PgStore::open_for(&url, wait, Some(first())).unwrap();
    drop(store);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pooler.locks(), "0");
}
