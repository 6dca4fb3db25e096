//! The PostgreSQL store against servers of the test's own: a throwaway
//! cluster (the installed `initdb`/`pg_ctl`, run as the `postgres` user when
//! the tests run as root) that a test can stop and start, that checks
//! passwords (scram-sha-256), or that speaks TLS with a certificate made for
//! the test (the `openssl` command). Each test makes its own cluster in a
//! temporary directory on a free port and removes it at the end. Without
//! `initdb` these tests say that they skipped; under CI (`CI=true`, where
//! `.ci/postgres.sh` installs the server's programs) they fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pg_server::{Auth, Cluster, run};
use crate::support::{Sandbox, SilentServer, skip_without, text};

/// A certificate authority and a server certificate it signed for
/// `localhost`, made with the `openssl` command; and a second, unrelated CA.
struct Certificates {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
    /// Self-signed for localhost, as PostgreSQL's documentation makes one
    /// (`openssl req -x509`: marked as an authority).
    self_signed_crt: PathBuf,
    self_signed_key: PathBuf,
}

impl Certificates {
    fn make(test: &str) -> Option<Certificates> {
        if Command::new("openssl").arg("version").output().is_err() {
            skip_without(test, "the openssl command is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let mut c = Command::new("openssl");
            c.args(args).current_dir(dir.path());
            run(c, &format!("openssl {args:?}"));
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (key, crt, name) in [
            ("ca.key", "ca.crt", "memchat test CA"),
            ("other.key", "other.crt", "another CA"),
        ] {
            let subject = format!("/CN={name}");
            let mut args = vec![
                "req", "-x509", "-days", "2", "-subj", &subject, "-keyout", key, "-out", crt,
            ];
            args.extend(ec);
            openssl(&args);
        }
        let mut args = vec![
            "req",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ];
        args.extend(ec);
        openssl(&args);
        std::fs::write(p("ext"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.crt",
        ]);
        let mut args = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            "self.key",
            "-out",
            "self.crt",
        ];
        args.extend(ec);
        openssl(&args);
        Some(Certificates {
            ca: p("ca.crt"),
            other_ca: p("other.crt"),
            server_crt: p("server.crt"),
            server_key: p("server.key"),
            self_signed_crt: p("self.crt"),
            self_signed_key: p("self.key"),
            _dir: dir,
        })
    }
}

fn one_shot(sandbox: &Sandbox, url: &str, prompt: &str) -> std::process::Output {
    sandbox.run(
        &["--mock", "-s", "work", prompt],
        &[("MEMCHAT_STORE", url)],
        None,
    )
}

fn user_messages(url: &str) -> Vec<String> {
    let store = memchat::pg::PgStore::open(url, std::time::Duration::from_secs(5)).unwrap();
    let contents = memchat::store::Store::read_session(&store, "work", true).unwrap();
    contents
        .active
        .messages
        .iter()
        .filter(|m| m.role == memchat::memory::format::Role::User)
        .map(|m| m.content.clone())
        .collect()
}

#[test]
fn a_server_stopped_and_started_fails_one_turn_clearly_and_loses_nothing() {
    let test = "pg_cluster::a_server_stopped_and_started";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let sandbox = Sandbox::new();
    let url = cluster.url(None, "127.0.0.1", "?sslmode=disable");
    let out = one_shot(&sandbox, &url, "first, while the server runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    cluster.stop();
    let out = one_shot(&sandbox, &url, "second, while it is down");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the store-error exit: {}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    cluster.pg_ctl(&["start", "-w", "-t", "60"]);
    let out = one_shot(&sandbox, &url, "third, after the restart");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        user_messages(&url),
        ["first, while the server runs", "third, after the restart"],
        "what was committed survived the stop; the refused turn stored nothing"
    );
}

/// A server on this machine is usually reached through its Unix-domain
/// socket (`postgres:///db`, libpq's default). TLS does not exist there, so
/// `sslmode` is ignored as libpq ignores it (the default `prefer` failed
/// with "not a host name TLS can check"); a URL without a host takes
/// `PGHOST`, as libpq does.
#[test]
fn a_unix_domain_socket_is_reached_whatever_the_sslmode() {
    let test = "pg_cluster::a_unix_domain_socket";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let sandbox = Sandbox::new();
    let dir = cluster.socket_dir().display().to_string();
    let port = cluster.port();
    let encoded = dir.replace('/', "%2F");
    let urls = [
        format!("postgres://postgres@{encoded}:{port}/postgres"),
        format!("postgres:///postgres?user=postgres&host={dir}&port={port}&sslmode=prefer"),
        format!("postgres:///postgres?user=postgres&host={dir}&port={port}&sslmode=verify-full"),
        // The socket first in a list with a TCP host: it is tried without
        // TLS (the TCP host, with `require`, would fail on this server).
        format!(
            "postgres:///postgres?user=postgres&host={dir},127.0.0.1&port={port}&sslmode=require"
        ),
    ];
    for (i, url) in urls.iter().enumerate() {
        let out = one_shot(&sandbox, url, &format!("over the socket {i}"));
        assert!(out.status.success(), "{url}: {}", text(&out.stderr));
    }
    let out = sandbox.run(
        &["--mock", "-s", "work", "over PGHOST"],
        &[
            (
                "MEMCHAT_STORE",
                &format!("postgres:///postgres?user=postgres&port={port}"),
            ),
            ("PGHOST", &dir),
        ],
        None,
    );
    assert!(out.status.success(), "PGHOST: {}", text(&out.stderr));
    assert_eq!(
        user_messages(&urls[0]),
        [
            "over the socket 0",
            "over the socket 1",
            "over the socket 2",
            "over the socket 3",
            "over PGHOST"
        ]
    );
}

#[test]
fn a_wrong_password_is_a_one_line_error_that_never_shows_it() {
    let test = "pg_cluster::a_wrong_password";
    let Some(cluster) = Cluster::start(test, Auth::Password("right-horse-battery"), None) else {
        return;
    };
    let sandbox = Sandbox::new();
    let wrong = cluster.url(Some("wrong-staple-42"), "127.0.0.1", "?sslmode=disable");
    let out = one_shot(&sandbox, &wrong, "hello");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("refused the credentials of user \"postgres\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-staple-42"),
        "the password is never shown: {stderr}"
    );
    assert!(stderr.contains("postgres:***@"), "{stderr}");
    let right = cluster.url(Some("right-horse-battery"), "127.0.0.1", "?sslmode=disable");
    let out = one_shot(&sandbox, &right, "hello");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("right-horse-battery"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tls_is_verified_against_the_given_authority_and_host_name() {
    let test = "pg_cluster::tls_is_verified";
    let Some(certs) = Certificates::make(test) else {
        return;
    };
    let Some(cluster) = Cluster::start(
        test,
        Auth::Trust,
        Some((&certs.server_crt, &certs.server_key)),
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    let root = |ca: &Path| format!("&sslrootcert={}", ca.display());
    // verify-full: the CA that signed it, and the name it was made for.
    let good = cluster.url(
        None,
        "localhost",
        &format!("?sslmode=verify-full{}", root(&certs.ca)),
    );
    let out = one_shot(&sandbox, &good, "over TLS, checked");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // require: encrypted, the certificate not checked (libpq's meaning).
    let out = one_shot(
        &sandbox,
        &cluster.url(None, "127.0.0.1", "?sslmode=require"),
        "over TLS",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Another authority, and a name the certificate does not hold: refused.
    for (url, why) in [
        (
            cluster.url(
                None,
                "localhost",
                &format!("?sslmode=verify-full{}", root(&certs.other_ca)),
            ),
            "another CA",
        ),
        (
            cluster.url(
                None,
                "127.0.0.1",
                &format!("?sslmode=verify-full{}", root(&certs.ca)),
            ),
            "another host name",
        ),
    ] {
        let out = one_shot(&sandbox, &url, "must not be sent");
        assert_eq!(out.status.code(), Some(3), "{why}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{why}: one line: {stderr}");
        assert!(
            stderr.to_lowercase().contains("certificate"),
            "{why}: {stderr}"
        );
    }
    // verify-ca: the authority is checked, the name is not.
    let out = one_shot(
        &sandbox,
        &cluster.url(
            None,
            "127.0.0.1",
            &format!("?sslmode=verify-ca{}", root(&certs.ca)),
        ),
        "over TLS, CA checked",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        user_messages(&good).len(),
        3,
        "the refused connections stored nothing"
    );
}

/// A server whose certificate is self-signed, as PostgreSQL's documented
/// recipe makes one (marked as an authority), named itself in
/// `sslrootcert`: trusted under verify-full and verify-ca as libpq trusts
/// it (webpki refused it: `CaUsedAsEndEntity`; red team), its host name
/// still checked under verify-full.
#[test]
fn a_self_signed_server_certificate_named_in_sslrootcert_is_trusted() {
    let test = "pg_cluster::a_self_signed_server_certificate";
    let Some(certs) = Certificates::make(test) else {
        return;
    };
    let Some(cluster) = Cluster::start(
        test,
        Auth::Trust,
        Some((&certs.self_signed_crt, &certs.self_signed_key)),
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    let pinned = format!("&sslrootcert={}", certs.self_signed_crt.display());
    for (host, mode) in [("localhost", "verify-full"), ("127.0.0.1", "verify-ca")] {
        let url = cluster.url(None, host, &format!("?sslmode={mode}{pinned}"));
        let out = one_shot(&sandbox, &url, "over TLS, pinned");
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
    }
    for (url, why) in [
        (
            cluster.url(None, "127.0.0.1", &format!("?sslmode=verify-full{pinned}")),
            "a name it does not hold",
        ),
        (
            cluster.url(
                None,
                "localhost",
                &format!("?sslmode=verify-full&sslrootcert={}", certs.ca.display()),
            ),
            "another root",
        ),
    ] {
        let out = one_shot(&sandbox, &url, "must not be sent");
        assert_eq!(out.status.code(), Some(3), "{why}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).to_lowercase().contains("certificate"),
            "{why}: {}",
            text(&out.stderr)
        );
    }
}

/// A REPL keeps its store open across a server's restart. A turn tried
/// while the server is down fails clearly, and so does the next one (the
/// connection is tried again each time, not given up on); once the server
/// is back, the next turn connects again, with everything committed kept.
#[test]
fn a_store_kept_open_connects_again_once_a_stopped_server_is_back() {
    use memchat::memory::format::Role;
    let test = "pg_cluster::a_store_kept_open_connects_again";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let url = cluster.url(None, "127.0.0.1", "?sslmode=disable&connect_timeout=2");
    let store = memchat::pg::PgStore::open(&url, std::time::Duration::from_secs(1)).unwrap();
    let mut session = store.open_session("work").unwrap();
    session.begin_turn().unwrap();
    session
        .append(Role::User, "before the stop".into(), None, false, None)
        .unwrap();
    session.end_turn().unwrap();
    let fails_clearly = |result: Result<(), memchat::memory::StoreError>, attempt: &str| {
        let error = result.err().map(|e| e.to_string());
        let error = error.unwrap_or_else(|| panic!("the {attempt} turn while down began"));
        assert!(!error.contains('\n'), "one line: {error}");
        assert!(
            error.contains("cannot reach the server") || error.contains("lost"),
            "{attempt} attempt: {error}"
        );
    };
    // Down for one turn: the connection is lost, and the attempt to
    // connect again fails; the turn after the start connects.
    cluster.stop();
    fails_clearly(session.begin_turn().map(drop), "only");
    cluster.pg_ctl(&["start", "-w", "-t", "60"]);
    session
        .begin_turn()
        .unwrap_or_else(|e| panic!("after the first restart: {e}"));
    session.end_turn().unwrap();
    // Down for several calls: each tries again, and fails the same way.
    cluster.stop();
    for attempt in ["first", "second"] {
        fails_clearly(session.begin_turn().map(drop), attempt);
        fails_clearly(store.open_session("other").map(drop), attempt);
    }
    cluster.pg_ctl(&["start", "-w", "-t", "60"]);
    session
        .begin_turn()
        .unwrap_or_else(|e| panic!("after the restart: {e}"));
    assert_eq!(session.messages().len(), 1);
    assert_eq!(session.messages()[0].content, "before the stop");
    session
        .append(Role::User, "after the restart".into(), None, false, None)
        .unwrap();
    session.end_turn().unwrap();
}

/// A move to the archive (here `/clear` of 400 messages) leaves the rows'
/// old versions in the active-records index until a vacuum, and every load
/// of the session would visit each of them. memchat reads the moved range
/// once through that index right after the commit, which marks them, so
/// the next load's index scan returns only the active records. On a server
/// of its own: a transaction of another test, open meanwhile, would keep
/// the old versions visible and unmarkable.
#[test]
fn a_move_to_the_archive_leaves_nothing_for_the_next_load_to_visit() {
    use memchat::memory::format::Role;
    let test = "pg_cluster::a_move_to_the_archive_leaves_nothing";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let url = cluster.url(None, "127.0.0.1", "?sslmode=disable");
    let store = memchat::pg::PgStore::open(&url, std::time::Duration::from_secs(5)).unwrap();
    let mut session = store.open_session("long").unwrap();
    for i in 0..400 {
        session
            .append(Role::User, format!("message {i}"), None, false, None)
            .unwrap();
    }
    let live_entries = |sql: &str| -> usize {
        let plan = crate::pg_store::admin_query(&url, sql).join("\n");
        let line = plan
            .lines()
            .find(|l| l.contains("Bitmap Index Scan on memchat_records_active"))
            .unwrap_or_else(|| panic!("no bitmap scan of the active index:\n{plan}"));
        let rows = line.rsplit("rows=").next().unwrap();
        rows.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The load's statement, as a bitmap scan (the kind that never marks
    // entries itself): how many index entries it returns.
    let load = "SET enable_indexscan = off; EXPLAIN ANALYZE SELECT seq, content \
                FROM memchat_records WHERE session_id = \
                (SELECT id FROM memchat_sessions WHERE name = 'long') AND NOT archived \
                ORDER BY seq";
    assert_eq!(live_entries(load), 400);
    assert_eq!(session.clear().unwrap(), 400);
    // A call on the same connection, queued behind the marking read that
    // the move sent without waiting.
    assert!(store.open_session("other").is_ok());
    assert_eq!(
        live_entries(load),
        0,
        "the moved rows' entries were left for every later load to visit"
    );
    drop(session);
    let contents = memchat::store::Store::read_session(&store, "long", true).unwrap();
    assert_eq!(
        contents.archived.len(),
        400,
        "every moved message is in the archive"
    );
    assert!(contents.active.messages.is_empty());
}

/// A host list whose first host accepts connections and never answers (a
/// failed primary behind a balancer that still accepts): the attempt on it
/// ends after the connect timeout, and the next host is tried. tokio-postgres
/// alone waits on such a host forever, so the second was never reached.
#[test]
fn a_silent_first_host_of_a_list_passes_the_turn_to_the_next() {
    let test = "pg_cluster::a_silent_first_host_of_a_list";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let silent = SilentServer::start();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?sslmode=disable&connect_timeout=1",
        silent.port,
        cluster.port()
    );
    let sandbox = Sandbox::new();
    let out = one_shot(&sandbox, &url, "reached through the second host");
    let accepted = silent.finish();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(accepted, 1, "the silent host was tried once");
    assert_eq!(user_messages(&url), ["reached through the second host"]);
}

/// A REPL on a server of the test's own that answered one turn, then went
/// silent: stopped, with a listener that never answers on its port.
struct SilentRepl {
    cluster: Cluster,
    silent: SilentServer,
    p: rexpect::session::PtySession,
    _sandbox: Sandbox,
}

fn repl_facing_a_silent_server(test: &str) -> Option<SilentRepl> {
    let cluster = Cluster::start(test, Auth::Trust, None)?;
    // Far longer than the test waits for anything (rexpect: 15 s).
    let url = cluster.url(None, "127.0.0.1", "?sslmode=disable&connect_timeout=120");
    let sandbox = Sandbox::new();
    let mut p = crate::support::pty(&sandbox, &["--mock", "-s", "work"], |command| {
        command.env("MEMCHAT_STORE", &url);
    });
    crate::support::editing_on(&mut p, "work");
    p.send_line("before the stop").unwrap();
    p.exp_string("You said: \"before the stop\"").unwrap();
    crate::support::editing_on(&mut p, "work");
    cluster.stop();
    let silent = SilentServer::start_on(cluster.port());
    Some(SilentRepl {
        cluster,
        silent,
        p,
        _sandbox: sandbox,
    })
}

/// A REPL whose server went silent: the next turn's attempt to connect
/// again would wait out the whole connect timeout, with memchat blocked on
/// it. Ctrl-C ends the attempt: the turn fails in one line, and the chat
/// goes on.
#[test]
fn ctrl_c_ends_a_turn_waiting_on_a_silent_server() {
    let test = "pg_cluster::ctrl_c_ends_a_turn_waiting_on_a_silent_server";
    let Some(SilentRepl {
        cluster: _cluster,
        silent,
        mut p,
        ..
    }) = repl_facing_a_silent_server(test)
    else {
        return;
    };
    p.send_line("while it is silent").unwrap();
    silent.wait_for(1);
    // The spinner says what the turn waits on: not the model yet.
    p.exp_string("waiting for the store").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted while connecting to the server")
        .unwrap();
    crate::support::editing_on(&mut p, "work");
    // SIGTERM while a command (no turn, nothing to save) waits on the
    // silent server: memchat ends at once, as at the prompt (it used to
    // wait for the main thread, which held stdout while it waited).
    p.send_line("/sessions").unwrap();
    silent.wait_for(2);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .unwrap();
    p.exp_string("SIGTERM received; exiting").unwrap();
    crate::support::exits_with(&mut p, 143);
    assert_eq!(silent.finish(), 2);
}

/// SIGTERM during a message turn that waits on a silent server: the attempt
/// ends, the turn fails in one line, and memchat says that it exits, then
/// exits 143 (it exited without a word).
#[test]
fn sigterm_in_a_turn_waiting_on_a_silent_server_says_so_and_exits_143() {
    let test = "pg_cluster::sigterm_in_a_turn_waiting_on_a_silent_server";
    let Some(SilentRepl {
        cluster: _cluster,
        silent,
        mut p,
        ..
    }) = repl_facing_a_silent_server(test)
    else {
        return;
    };
    p.send_line("while it is silent").unwrap();
    silent.wait_for(1);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .unwrap();
    p.exp_string("interrupted while connecting to the server")
        .unwrap();
    p.exp_string("SIGTERM received; exiting").unwrap();
    crate::support::exits_with(&mut p, 143);
    assert_eq!(silent.finish(), 1);
}

/// Script mode (stdin piped), a line waiting on a silent server: SIGINT
/// ends the attempt, and memchat exits 130 as for any interrupted script,
/// with the reason shown (it exited 3, a store error).
#[test]
fn a_script_interrupted_while_connecting_exits_130() {
    use std::io::Write;
    let test = "pg_cluster::a_script_interrupted_while_connecting";
    let Some(cluster) = Cluster::start(test, Auth::Trust, None) else {
        return;
    };
    let url = cluster.url(None, "127.0.0.1", "?sslmode=disable&connect_timeout=120");
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&["--mock", "-s", "work"]);
    command
        .env("MEMCHAT_STORE", &url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "before the stop").unwrap();
    crate::support::wait_until("the first line is answered and stored", || {
        stored_messages(&url) == 2
    });
    cluster.stop();
    let silent = SilentServer::start_on(cluster.port());
    writeln!(stdin, "while it is silent").unwrap();
    silent.wait_for(1);
    crate::support::send_signal(child.id(), "INT");
    crate::support::wait_until("memchat ends", || child.try_wait().unwrap().is_some());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("interrupted while connecting to the server"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(silent.finish(), 1);
}

/// How many active messages session `work` holds.
fn stored_messages(url: &str) -> usize {
    let store = memchat::pg::PgStore::open(url, std::time::Duration::from_secs(5)).unwrap();
    memchat::store::Store::read_session(&store, "work", false)
        .map(|contents| contents.active.messages.len())
        .unwrap_or(0)
}
