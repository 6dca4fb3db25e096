//! The PostgreSQL connection's faults, against a real server: a backend
//! killed mid-reply and mid-compaction (the turn taken up again), bad
//! credentials, a missing database, an unreachable server, no permission,
//! and a server that completes its start-up and then never answers.

use std::time::Duration;

use memchat::exit::{Exit, exit_for_error};
use memchat::memory::format::Role;
use memchat::pg::PgStore;

use crate::pg_store::{TestDb, WAIT, admin, admin_query, with_param};
use crate::support::wait_until;

/// The backend pid of a store's connection, found by what it waits on.
fn backend_waiting(db: &TestDb) -> String {
    let mut pid = String::new();
    wait_until("memchat's backend to wait on a lock", || {
        let found = admin_query(
            &db.base,
            &format!(
                "SELECT pid::text FROM pg_stat_activity WHERE application_name = '{}' \
                 AND wait_event_type = 'Lock'",
                db.schema
            ),
        );
        match found.first() {
            Some(p) => {
                pid = p.clone();
                true
            }
            None => false,
        }
    });
    pid
}

/// Ends this test's connections (the administrator's
/// `pg_terminate_backend`), waiting until their backends have exited: only
/// a backend's exit releases its turn lock.
fn kill_connections(db: &TestDb) {
    let killed = admin_query(
        &db.base,
        &format!(
            "SELECT pg_terminate_backend(pid, 10000)::text FROM pg_stat_activity \
             WHERE application_name = '{}'",
            db.schema
        ),
    );
    assert!(
        !killed.is_empty() && killed.iter().all(|k| k == "true"),
        "{killed:?}"
    );
}

/// The connection killed while the reply streams (an administrator, a
/// server's `idle_session_timeout`, a network drop): the turn's lock died
/// with it, but nobody wrote meanwhile, so the reply is stored on a new
/// connection under the lock taken again. If another client wrote in
/// between, the reply is refused whole, in one line, and what was
/// committed is kept.
#[test]
fn a_killed_connection_mid_reply_keeps_the_users_message_and_frees_the_session() {
    let Some(db) = TestDb::new("a_killed_connection_mid_reply") else {
        return;
    };
    let store = db.store();
    let mut s = store.open_session("s").unwrap();
    s.begin_turn().unwrap();
    s.append(
        Role::User,
        "committed before the request".into(),
        None,
        false,
        None,
    )
    .unwrap();
    kill_connections(&db);
    s.append(Role::Assistant, "the reply".into(), None, false, None)
        .unwrap_or_else(|e| panic!("the reply was not taken up again: {e}"));
    s.end_turn().unwrap();
    let contents = "SELECT content FROM memchat_records ORDER BY seq";
    assert_eq!(
        db.query(contents),
        ["committed before the request", "the reply"]
    );

    // Killed again mid-reply, and another client takes a turn before the
    // reply is written: it is refused, nothing interleaves.
    s.begin_turn().unwrap();
    s.append(Role::User, "second question".into(), None, false, None)
        .unwrap();
    kill_connections(&db);
    let other = PgStore::open(&db.url, Duration::from_secs(5)).unwrap();
    let mut t = other.open_session("s").unwrap();
    t.begin_turn().unwrap();
    assert_eq!(t.messages().len(), 3);
    // The other client's message holds the very text of the reply to
    // come, in its place (seq 4): it is not taken for it (red team).
    t.append(Role::User, "too late".into(), None, false, None)
        .unwrap();
    t.end_turn().unwrap();
    let error = s
        .append(Role::Assistant, "too late".into(), None, false, None)
        .unwrap_err();
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains("another memchat wrote to the session before this one could take it up"),
        "{text}"
    );
    assert_eq!(exit_for_error(&error.into()), Exit::Store);
    s.end_turn().unwrap();
    assert_eq!(
        db.query(contents),
        [
            "committed before the request",
            "the reply",
            "second question",
            "too late"
        ]
    );
    // Nothing is left locked: the next turn is taken at once.
    let mut again = store.open_session("s").unwrap_or_else(|e| panic!("{e}"));
    again.begin_turn().unwrap();
    again.end_turn().unwrap();
    drop(again);
    drop(s);
    wait_until("every turn lock to be released", || db.locks_held() == "0");
}

#[test]
fn a_killed_connection_mid_compaction_leaves_nothing_half_done_and_is_taken_up_again() {
    let Some(db) = TestDb::new("a_killed_connection_mid_compaction") else {
        return;
    };
    let store = db.store();
    let mut s = store.open_session("s").unwrap();
    for i in 0..4 {
        s.append(Role::User, format!("m{i}"), None, false, None)
            .unwrap();
    }
    // Another transaction holds the summary's seq (5) uncommitted, so the
    // compaction stops inside its transaction, after moving the messages
    // to the archive and before its insert can finish.
    let (release, holder) = db.hold_in_transaction(
        "INSERT INTO memchat_records \
         (session_id, seq, kind, content, at, covers_first, covers_last, method) \
         SELECT id, 5, 'summary', 'x', 'x', 1, 1, 'model' FROM memchat_sessions",
    );
    let compaction = std::thread::spawn(move || {
        let result = s.compact(2, "summary".into(), "model", None);
        (s, result)
    });
    let pid = backend_waiting(&db);
    admin(
        &db.base,
        &format!("SELECT pg_terminate_backend({pid}, 10000)"),
    )
    .unwrap();
    // The compaction takes its turn up again on a new connection (nobody
    // wrote meanwhile) and waits on the same row again; the killed one left
    // nothing: no summary, nothing archived.
    wait_until("the compaction to be tried again", || {
        backend_waiting(&db) != pid
    });
    let rows = "SELECT seq::text || kind || archived::text FROM memchat_records ORDER BY seq";
    assert_eq!(
        db.query(rows),
        [
            "1messagefalse",
            "2messagefalse",
            "3messagefalse",
            "4messagefalse"
        ]
    );
    assert_eq!(
        db.query("SELECT last_seq::text FROM memchat_sessions"),
        ["4"]
    );
    // Once the other transaction ends, the compaction is made whole, once.
    release.send(()).unwrap();
    holder.join().unwrap();
    let (_s, result) = compaction.join().unwrap();
    result.unwrap_or_else(|e| panic!("the compaction was not taken up again: {e}"));
    assert_eq!(
        db.query(rows),
        [
            "1messagetrue",
            "2messagetrue",
            "3messagefalse",
            "4messagefalse",
            "5summaryfalse"
        ]
    );
    assert_eq!(
        db.query("SELECT last_seq::text FROM memchat_sessions"),
        ["5"]
    );
}

fn open_error(url: &str) -> String {
    let store = PgStore::open(url, WAIT).unwrap();
    let error = store.open_session("s").unwrap_err();
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        !text.contains("topsecret"),
        "the password is masked: {text}"
    );
    assert_eq!(exit_for_error(&error.into()), Exit::Store, "{text}");
    text
}

#[test]
fn connection_failures_are_one_line_store_errors_without_the_password() {
    let Some(db) = TestDb::new("connection_failures_are_one_line") else {
        return;
    };
    let crate::pg_store::Server {
        host,
        port,
        user,
        dbname,
    } = db.server();

    let text = open_error(&format!(
        "postgres://nosuchrole_memchat:topsecret@{host}:{port}/{dbname}"
    ));
    assert!(
        text.contains("refused the credentials of user \"nosuchrole_memchat\""),
        "{text}"
    );
    assert!(text.contains("nosuchrole_memchat:***@"), "{text}");

    let text = open_error(&format!(
        "postgres://{user}:topsecret@{host}:{port}/memchat_no_such_db"
    ));
    assert!(
        text.contains("database \"memchat_no_such_db\" does not exist"),
        "{text}"
    );

    // This server has no TLS: `require` refuses it, `prefer` goes plain.
    let server = format!("postgres://{user}:topsecret@{host}:{port}/{dbname}");
    let ssl: String = admin_query(&db.base, "SHOW ssl").concat();
    if ssl == "off" {
        let text = open_error(&with_param(&server, "sslmode=require"));
        assert!(text.contains("TLS"), "{text}");
        let prefer = PgStore::open(&with_param(&server, "sslmode=prefer"), WAIT).unwrap();
        prefer.check().unwrap();
    }

    let text = open_error("postgres://u:topsecret@127.0.0.1:1/db?sslmode=disable");
    assert!(text.contains("cannot reach the server"), "{text}");

    // A role that may not create tables in the schema.
    let role = format!("{}_ro", db.schema);
    admin(
        &db.base,
        &format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {} TO {role}",
            db.schema
        ),
    )
    .unwrap();
    let text = open_error(&format!(
        "postgres://{role}:topsecret@{host}:{port}/{dbname}?options=-csearch_path%3D{}",
        db.schema
    ));
    admin(&db.base, &format!("DROP OWNED BY {role}; DROP ROLE {role}")).unwrap();
    assert!(text.contains("permission denied"), "{text}");
}

/// A server that completes the start-up (authentication, ReadyForQuery)
/// and then never answers: the connection's first round trip is bounded
/// like its start-up (`connect_timeout`), and the run fails in one line
/// instead of hanging for good with nothing said (red team).
#[test]
fn a_server_silent_after_its_start_up_is_given_up_on() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut length = [0u8; 4];
            if stream.read_exact(&mut length).is_err() {
                continue;
            }
            let mut startup = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
            if stream.read_exact(&mut startup).is_err() {
                continue;
            }
            // AuthenticationOk, then ReadyForQuery (idle); then silence.
            let _ = stream.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
            held.push(stream);
        }
    });
    let sandbox = crate::support::Sandbox::new();
    let url = format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=2");
    let mut child = sandbox
        .command(&["--mock", "-s", "s", "hello"])
        .env("MEMCHAT_STORE", &url)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("memchat still waits on a silent server after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = crate::support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("accepted the connection but did not answer within 2s"),
        "{stderr}"
    );
}

/// A reply that streamed whole and then could not be stored (here: the
/// session deleted by hand while it streamed): the error starts on a line
/// of its own, not after the reply's last word (red team), and the run
/// fails with the store's status.
#[test]
fn an_error_after_a_streamed_reply_starts_on_its_own_line() {
    use crate::support::{FakeServer, Reply, text, words};
    let Some(db) = TestDb::new("an_error_after_a_streamed_reply") else {
        return;
    };
    db.store().check().unwrap();
    let server = FakeServer::start(vec![Reply::slow(&words(20), Duration::from_millis(100))]);
    let sandbox = crate::support::Sandbox::new();
    let child = sandbox
        .command(&["--base-url", &server.url, "-s", "s", "question"])
        .env("MEMCHAT_STORE", &db.url)
        .env("OPENAI_API_KEY", "sk-test")
        .spawn()
        .unwrap();
    wait_until("the user's message to be stored", || {
        db.query("SELECT count(*)::text FROM memchat_records") == ["1"]
    });
    db.sql("DELETE FROM memchat_sessions WHERE name = 's'");
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(!stdout.is_empty() && stdout.ends_with('\n'), "{stdout:?}");
}

/// A connection lost in the middle of a turn, then a store-wide call on it
/// (recall's search, between the user's message and the reply): the call
/// does not connect again without the turn's lock, and the reply's write,
/// which takes the turn up again, waits for another client's turn like any
/// turn (it went on without the lock, beside that turn; red team).
#[test]
fn a_call_inside_a_turn_whose_connection_was_lost_does_not_reconnect_without_the_lock() {
    use memchat::store::{Scope, SearchQuery};
    let Some(db) = TestDb::new("a_call_inside_a_turn_whose_connection") else {
        return;
    };
    let store = db.store();
    let mut s = store.open_session("s").unwrap();
    s.begin_turn().unwrap();
    s.append(Role::User, "question".into(), None, false, None)
        .unwrap();
    kill_connections(&db);
    let query = SearchQuery {
        terms: vec!["question".into()],
        session: Some("s".into()),
        scope: Scope::Everything,
        limit: 5,
    };
    assert!(
        store.search(&query).is_err(),
        "no connection without the lock"
    );
    // Another client takes the turn the lost connection let go of.
    let other = PgStore::open(&db.url, WAIT).unwrap();
    let mut t = other.open_session("s").unwrap();
    t.begin_turn().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let replying = std::thread::spawn(move || {
        let result = s
            .append(Role::Assistant, "the reply".into(), None, false, None)
            .map(|_| ());
        done.send(()).unwrap();
        (s, result)
    });
    assert!(
        finished.recv_timeout(Duration::from_secs(1)).is_err(),
        "the reply was written while another client held the turn"
    );
    t.end_turn().unwrap();
    let (mut s, result) = replying.join().unwrap();
    result.unwrap_or_else(|e| panic!("the turn was not taken up again: {e}"));
    s.end_turn().unwrap();
    assert_eq!(
        db.query("SELECT content FROM memchat_records ORDER BY seq"),
        ["question", "the reply"]
    );
    // Between turns, a store-wide call connects again as before.
    kill_connections(&db);
    assert!(store.search(&query).is_ok());
}

/// A turn whose reload fails (here: settings another program wrote that
/// memchat cannot read) takes no turn: its lock is let go at once, and the
/// store still connects again between turns (the lock was kept, and the
/// connection believed itself in a turn for good; review).
#[test]
fn a_turn_whose_reload_fails_keeps_no_lock() {
    let Some(db) = TestDb::new("a_turn_whose_reload_fails") else {
        return;
    };
    let store = db.store();
    let mut s = store.open_session("s").unwrap();
    s.begin_turn().unwrap();
    s.append(Role::User, "hello".into(), None, false, None)
        .unwrap();
    s.end_turn().unwrap();
    db.sql("UPDATE memchat_sessions SET settings = '{\"model\": 5}', revision = revision + 1");
    assert!(s.begin_turn().is_err());
    let locks = || db.locks_held();
    wait_until("the failed turn's lock to be let go", || locks() == "0");
    db.sql("UPDATE memchat_sessions SET settings = NULL");
    kill_connections(&db);
    assert!(
        store.names().is_ok(),
        "connects again: no turn is under way"
    );
}
