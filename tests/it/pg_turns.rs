//! The PostgreSQL store's short paths for a turn, against a real server:
//! a write made in this client's turn is one statement (the revision check
//! and the records together, all or nothing); an ended turn's lock is
//! released without a call after it; a one-shot takes the turn lock in its
//! connection's first round trip (after reading its prompt), and still
//! waits for (and then refuses) a session another client is using; so does
//! `--continue`, on the one connection that found which session that is.

use memchat::memory::format::{Role, SessionSettings};

use crate::pg_store::{TestDb, admin_query};
use crate::support::{CountingProxy, Sandbox, text, wait_until};

fn titled(title: &str) -> SessionSettings {
    SessionSettings {
        title: Some(title.to_string()),
        ..SessionSettings::default()
    }
}

#[test]
fn a_write_in_a_turn_checks_the_revision_and_stores_all_or_nothing() {
    let Some(db) = TestDb::new("a_write_in_a_turn_checks_the_revision") else {
        return;
    };
    let store = db.store();
    let mut session = store.open_session("s").unwrap();
    session.begin_turn().unwrap();
    session.set_settings(&titled("kept"), false).unwrap();
    session
        .append(Role::User, "first".into(), None, false, None)
        .unwrap();
    let title = "SELECT coalesce(settings->>'title', '-') FROM memchat_sessions WHERE name = 's'";
    assert_eq!(
        db.query(title),
        ["kept"],
        "the settings went with the message"
    );

    // The revision moved by something other than this client (memchat
    // never does that under another's lock; a hand-made UPDATE can): the
    // write is refused whole, settings included.
    db.sql("UPDATE memchat_sessions SET revision = revision + 1");
    session
        .set_settings(&titled("never stored"), false)
        .unwrap();
    let error = session
        .append(Role::Assistant, "never stored".into(), None, false, None)
        .unwrap_err();
    assert!(
        error.to_string().contains("changed by another memchat"),
        "{error}"
    );
    assert_eq!(
        db.query("SELECT content FROM memchat_records ORDER BY seq"),
        ["first"]
    );
    assert_eq!(db.query(title), ["kept"]);
    assert_eq!(
        db.query("SELECT revision::text FROM memchat_sessions WHERE name = 's'"),
        ["2"],
        "one write and the UPDATE: the refused write bumped nothing"
    );
    session.end_turn().unwrap();

    // The session deleted during a turn: the write inserts nothing.
    let mut gone = store.open_session("t").unwrap();
    gone.begin_turn().unwrap();
    db.sql("DELETE FROM memchat_sessions WHERE name = 't'");
    let error = gone
        .append(Role::User, "to nowhere".into(), None, false, None)
        .unwrap_err();
    assert!(
        error.to_string().contains("changed by another memchat"),
        "{error}"
    );
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_records"),
        ["1"]
    );
}

#[test]
fn an_ended_turn_is_released_while_the_client_sits_idle() {
    let Some(db) = TestDb::new("an_ended_turn_is_released_while_idle") else {
        return;
    };
    let store = db.store();
    let mut session = store.open_session("s").unwrap();
    session.begin_turn().unwrap();
    session
        .append(Role::User, "hello".into(), None, false, None)
        .unwrap();
    assert_eq!(db.locks_held(), "1");
    session.end_turn().unwrap();
    // No call follows (a REPL waiting for its user): the connection sends
    // the release by itself.
    wait_until("the ended turn's lock to be released", || {
        db.locks_held() == "0"
    });
    // The session is still open and usable.
    session.begin_turn().unwrap();
    session
        .append(Role::Assistant, "hi".into(), None, false, None)
        .unwrap();
    session.end_turn().unwrap();
    assert_eq!(
        db.query("SELECT content FROM memchat_records ORDER BY seq"),
        ["hello", "hi"]
    );
}

/// The engine says when a write is the turn's last (the reply, when no
/// compaction can follow): the lock is released with that write, in its
/// round trip, once it is committed; nothing is left to release after it.
/// A write that is not a plain append leaves the release to `end_turn`.
#[test]
fn the_turns_last_write_releases_the_lock_with_it() {
    let Some(db) = TestDb::new("the_turns_last_write_releases") else {
        return;
    };
    let store = db.store();
    let mut session = store.open_session("s").unwrap();
    session.begin_turn().unwrap();
    session
        .append(Role::User, "hello".into(), None, false, None)
        .unwrap();
    assert_eq!(db.locks_held(), "1", "held through the turn");
    session.end_turn_with_next_write();
    session
        .append(Role::Assistant, "hi".into(), None, false, None)
        .unwrap();
    // At once: no call, no grace period.
    assert_eq!(db.locks_held(), "0", "released with the reply");
    assert_eq!(
        db.query("SELECT content FROM memchat_records ORDER BY seq"),
        ["hello", "hi"],
        "the reply is stored (its commit precedes the release by the protocol's order: \
         write.rs)"
    );
    // Ending the turn then has nothing left to do; the next turn locks
    // again as usual.
    session.end_turn().unwrap();
    session.begin_turn().unwrap();
    assert_eq!(db.locks_held(), "1");
    // The last write is not a plain append (a compaction): the lock stays
    // until the turn ends.
    session.end_turn_with_next_write();
    session
        .compact(2, "a summary".into(), "test", None)
        .unwrap();
    assert_eq!(db.locks_held(), "1");
    session.end_turn().unwrap();
    wait_until("the ended turn's lock to be released", || {
        db.locks_held() == "0"
    });
}

#[test]
fn a_one_shot_locks_with_its_first_round_trip_and_waits_for_a_session_in_use() {
    let Some(db) = TestDb::new("a_one_shot_locks_with_its_first_round_trip") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_LOCK_WAIT", "1"),
    ];
    let one_shot = |prompt: &str| sandbox.run(&["--mock", "-s", "s", prompt], &env, None);
    let out = one_shot("first");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Another client in its turn: the one-shot waits the lock wait, then
    // fails clearly and stores nothing.
    let store = db.store();
    let mut held = store.open_session("s").unwrap();
    held.begin_turn().unwrap();
    let out = one_shot("second, while another client holds the turn");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("in use by another memchat"), "{stderr}");
    held.end_turn().unwrap();
    drop(held);

    let out = one_shot("third");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        db.query("SELECT content FROM memchat_records WHERE role = 'user' ORDER BY seq"),
        ["first", "third"]
    );
    // Each process's lock went with its connection, and so did this
    // client's once released.
    wait_until("every turn lock to be released", || db.locks_held() == "0");
    // With stdin piped in (read before the store is opened) the same.
    let out = sandbox.run(
        &["--mock", "-s", "s", "fourth, with"],
        &env,
        Some(b"an attachment on stdin"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_records WHERE role = 'user'"),
        ["3"]
    );
}

#[test]
fn continue_finds_locks_and_loads_the_most_recent_session_on_one_connection() {
    let Some(db) = TestDb::new("continue_finds_locks_and_loads") else {
        return;
    };
    let (proxy, url) = CountingProxy::in_front_of(&db.url);
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", url.as_str()), ("MEMCHAT_LOCK_WAIT", "1")];
    let run = |args: &[&str]| sandbox.run(args, &env, None);
    for (session, prompt) in [("older", "one"), ("newer", "two"), ("oldest", "three")] {
        let out = run(&["--mock", "-s", session, prompt]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // The most recent is the one written last, whatever its name.
    db.sql(
        "UPDATE memchat_sessions SET updated_at = now() - interval '1 hour' WHERE name = 'oldest'",
    );
    let before = proxy.forwarded();
    let out = run(&["--mock", "-c", "four"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("continuing session \"newer\""),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        proxy.forwarded() - before,
        1,
        "one connection for --continue"
    );
    let newer = "SELECT content FROM memchat_records r JOIN memchat_sessions s \
                 ON s.id = r.session_id WHERE s.name = 'newer' AND role = 'user' ORDER BY seq";
    assert_eq!(db.query(newer), ["two", "four"]);

    // Another client in its turn on that session: `--continue` waits the
    // lock wait like `-s` does, then fails clearly and stores nothing.
    let store = db.store();
    let mut held = store.open_session("newer").unwrap();
    held.begin_turn().unwrap();
    let out = run(&["--mock", "-c", "five, while another client holds the turn"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("in use by another memchat"), "{stderr}");
    held.end_turn().unwrap();
    drop(held);
    assert_eq!(db.query(newer), ["two", "four"]);
    // The REPL and a script continue it the same way, on one connection.
    let before = proxy.forwarded();
    let out = sandbox.run(&["--mock", "-c"], &env, Some(b"six\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.forwarded() - before, 1, "one connection for a script");
    assert_eq!(db.query(newer), ["two", "four", "six"]);
    wait_until("every turn lock to be released", || db.locks_held() == "0");
}

/// A rename is not a use of the session: `--continue` then picks the one
/// written last on either store (PostgreSQL took the renamed one, whose
/// `updated_at` the rename moved; a renamed file keeps its time).
#[test]
fn continue_after_a_rename_picks_the_same_session_on_both_stores() {
    let Some(db) = TestDb::new("continue_after_a_rename") else {
        return;
    };
    let continued = |store: Option<&str>| {
        let sandbox = Sandbox::new();
        let env: Vec<(&str, &str)> = store.map(|u| ("MEMCHAT_STORE", u)).into_iter().collect();
        for args in [
            &["--mock", "-s", "a", "one"][..],
            &["--mock", "-s", "b", "two"],
            &["rename", "a", "z"],
        ] {
            // Apart in time, on any clock.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let out = sandbox.run(args, &env, None);
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        }
        let out = sandbox.run(&["--mock", "-c", "three"], &env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let on_files = continued(None);
    assert!(on_files.contains("continuing session \"b\""), "{on_files}");
    assert_eq!(continued(Some(&db.url)), on_files);
}

/// `delete s1` queued behind `rename s1 s2` (both waiting for a turn on s1
/// to end) finds no s1 once its turn comes, as on the file store: it
/// deleted s2, which it had found as s1 before the wait. A one-shot queued
/// the same way does not write under the new name.
#[test]
fn a_delete_queued_behind_a_rename_leaves_the_renamed_session_alone() {
    let Some(db) = TestDb::new("a_delete_queued_behind_a_rename") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_LOCK_WAIT", "30"),
    ];
    let out = sandbox.run(&["--mock", "-s", "s1", "keep me"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = db.store();
    let mut held = store.open_session("s1").unwrap();
    held.begin_turn().unwrap();
    let start = |args: &[&str]| {
        sandbox
            .command(args)
            .envs(env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let rename = start(&["rename", "s1", "s2"]);
    wait_until("the rename to wait", || db.locks_waited_for() == "1");
    let delete = start(&["delete", "s1", "--yes"]);
    wait_until("the delete to wait", || db.locks_waited_for() == "2");
    held.end_turn().unwrap();
    drop(held);
    let renamed = rename.wait_with_output().unwrap();
    assert!(renamed.status.success(), "{}", text(&renamed.stderr));
    let deleted = delete.wait_with_output().unwrap();
    assert!(!deleted.status.success());
    assert!(
        text(&deleted.stderr).contains("no session named \"s1\""),
        "{}",
        text(&deleted.stderr)
    );
    assert_eq!(
        db.query(
            "SELECT s.name || ': ' || r.content FROM memchat_records r \
                  JOIN memchat_sessions s ON s.id = r.session_id WHERE r.role = 'user'"
        ),
        ["s2: keep me"]
    );

    // A one-shot for s2 queued behind `rename s2 s3` is not taken under s3:
    // it fails, naming the new name, and stores nothing (it landed in s3).
    let mut held = store.open_session("s2").unwrap();
    held.begin_turn().unwrap();
    let rename = start(&["rename", "s2", "s3"]);
    wait_until("the rename to wait", || db.locks_waited_for() == "1");
    let one_shot = start(&["--mock", "-s", "s2", "for s2"]);
    wait_until("the one-shot to wait", || db.locks_waited_for() == "2");
    held.end_turn().unwrap();
    drop(held);
    let renamed = rename.wait_with_output().unwrap();
    assert!(renamed.status.success(), "{}", text(&renamed.stderr));
    let out = one_shot.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("was renamed to \"s3\""), "{stderr}");
    assert_eq!(
        db.query(
            "SELECT s.name || ': ' || r.content FROM memchat_records r \
                  JOIN memchat_sessions s ON s.id = r.session_id WHERE r.role = 'user'"
        ),
        ["s3: keep me"]
    );
    wait_until("every turn lock to be released", || db.locks_held() == "0");
}

#[test]
fn memchat_names_its_connection_without_a_startup_option_a_pooler_would_refuse() {
    let Some(db) = TestDb::new("memchat_names_its_connection") else {
        return;
    };
    // The test's URL names the connection itself; this one leaves it to
    // memchat, which sets it (and the server's keepalives) with its first
    // round trip: the startup message carries no `options`, which PgBouncer
    // refuses unless configured to ignore them.
    let url =
        crate::pg_store::with_param(&db.base, &format!("options=-csearch_path%3D{}", db.schema));
    let store = memchat::pg::PgStore::open(&url, std::time::Duration::from_secs(5)).unwrap();
    let mut session = store.open_session("s").unwrap();
    session.begin_turn().unwrap();
    // No other test leaves the name to memchat on this server.
    let named = admin_query(
        &db.base,
        "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'memchat' \
         AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
    );
    assert_eq!(named, ["1"], "memchat's connection, holding the turn lock");
    session.end_turn().unwrap();
}

#[test]
fn a_one_shot_refused_before_its_turn_leaves_no_session_and_no_lock() {
    let Some(db) = TestDb::new("a_one_shot_refused_before_its_turn") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_LOCK_WAIT", "1"),
    ];
    // stdin a file that is not UTF-8: refused before the store is opened.
    let bad = sandbox.dir.path().join("bad.txt");
    std::fs::write(&bad, b"\xff\n").unwrap();
    let mut command = sandbox.command(&["--mock", "-s", "badin", "hi"]);
    command.envs(env).stdin(std::fs::File::open(&bad).unwrap());
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let out = sandbox.run(&["--mock", "-s", "first", "hello"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        db.query("SELECT name FROM memchat_sessions ORDER BY name"),
        ["first"],
        "the refused one-shot created nothing"
    );

    // Tables of a newer memchat: refused, nothing written, nothing locked.
    db.sql("UPDATE memchat_schema SET version = version + 1");
    let out = sandbox.run(&["--mock", "-s", "newer", "hello"], &env, None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("newer"), "{}", text(&out.stderr));
    let out = sandbox.run(&["--mock", "-s", "first", "again"], &env, None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        db.query("SELECT name FROM memchat_sessions ORDER BY name"),
        ["first"]
    );
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_records"),
        ["2"]
    );
    wait_until("no lock left", || db.locks_held() == "0");
}

#[test]
fn a_session_of_an_earlier_version_with_a_dot_opens_on_postgres() {
    let Some(db) = TestDb::new("a_session_with_a_dot_opens_on_postgres") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [("MEMCHAT_STORE", db.url.as_str())];
    let out = sandbox.run(&["--mock", "-s", "first", "hello"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Only earlier versions made names with a dot; they still open.
    db.sql("INSERT INTO memchat_sessions (name, created_at) VALUES ('old.dot', '2025-01-01T00:00:00Z')");
    let out = sandbox.run(&["--mock", "-s", "old.dot", "hello there"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A new one may not have one.
    let out = sandbox.run(&["--mock", "-s", "new.dot", "hello"], &env, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a new session's name cannot contain '.'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        db.query("SELECT name FROM memchat_sessions ORDER BY name"),
        ["first", "old.dot"]
    );
}

/// A write on a revision another client has moved past is refused whole:
/// the revision check fails the transaction inside its single round trip,
/// so nothing of the write (the message, its settings, its counts) is kept.
#[test]
fn a_write_on_a_stale_revision_is_refused_and_leaves_nothing() {
    let Some(db) = TestDb::new("a_write_on_a_stale_revision_is_refused") else {
        return;
    };
    let store = db.store();
    let mut first = store.open_session("s").unwrap();
    first
        .append(Role::User, "from the first".into(), None, false, None)
        .unwrap();
    // The second client loads the session after that write...
    let other = db.store();
    let mut second = other.open_session("s").unwrap();
    // ...then the first writes again, and the second's view is stale.
    first
        .append(
            Role::Assistant,
            "reply to the first".into(),
            None,
            false,
            None,
        )
        .unwrap();
    let wanted = SessionSettings {
        title: Some("never stored".into()),
        ..SessionSettings::default()
    };
    second.set_settings(&wanted, false).unwrap();
    let error = second
        .append(Role::User, "from the second".into(), None, false, None)
        .unwrap_err();
    assert!(
        error.to_string().contains("changed") || error.to_string().contains("another"),
        "{error}"
    );
    let stored = db.store().read("s").unwrap();
    let said: Vec<&str> = stored.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(said, ["from the first", "reply to the first"]);
    assert_eq!(stored.settings.title, None);
    // Only the first client's two writes moved the revision.
    assert_eq!(
        db.query("SELECT revision::text FROM memchat_sessions WHERE name = 's'"),
        ["2"]
    );
}

/// A one-shot waiting for its turn while the session is deleted (by
/// another memchat, after the turn it waited behind) fails saying so, and
/// stores nothing: it used to say only "no session named". It does not
/// create the session again under the turn: what the run opened with it
/// (the system prompt, the settings) went with it, and another session may
/// have taken the name since. The next run creates it anew.
#[test]
fn a_one_shot_whose_session_is_deleted_while_it_waits_says_so() {
    let Some(db) = TestDb::new("a_one_shot_whose_session_is_deleted") else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_LOCK_WAIT", "30"),
    ];
    let out = sandbox.run(&["--mock", "-s", "s", "gone with the session"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = db.store();
    let mut held = store.open_session("s").unwrap();
    held.begin_turn().unwrap();
    let one_shot = sandbox
        .command(&["--mock", "-s", "s", "after the delete"])
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the one-shot to wait for the turn", || {
        db.locks_waited_for() == "1"
    });
    // The holder deletes the session, as `memchat delete` does under the
    // turn lock, and ends its turn.
    db.sql("DELETE FROM memchat_sessions WHERE name = 's'");
    held.end_turn().unwrap();
    let out = one_shot.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("session \"s\" was deleted by another memchat; nothing was stored"),
        "{stderr}"
    );
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_sessions"),
        ["0"]
    );
    wait_until("every turn lock to be released", || db.locks_held() == "0");
    // Run again, it starts the session anew.
    let out = sandbox.run(&["--mock", "-s", "s", "anew"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        db.query("SELECT content FROM memchat_records WHERE role = 'user'"),
        ["anew"]
    );

    // A client whose session is deleted between its turns (a REPL on
    // another machine) is told the same at its next turn.
    let mut idle = store.open_session("s").unwrap();
    db.sql("DELETE FROM memchat_sessions WHERE name = 's'");
    let error = idle.begin_turn().unwrap_err();
    assert!(error.to_string().contains("/session s"), "{error}");
    wait_until("the lock to be released", || db.locks_held() == "0");
}

/// Settings set by a client and not stored yet (a one-shot's `-m`, stored
/// with its message) survive the reload of a session another client wrote
/// to meanwhile: they used to be replaced by the reloaded ones, and the
/// message went in with the old model recorded.
#[test]
fn settings_not_stored_yet_survive_a_reload() {
    let Some(db) = TestDb::new("settings_not_stored_yet_survive") else {
        return;
    };
    let (one, other) = (db.store(), db.store());
    let mut writer = one.open_session("s").unwrap();
    writer.begin_turn().unwrap();
    writer.set_settings(&titled("old"), false).unwrap();
    writer
        .append(Role::User, "first".into(), None, false, None)
        .unwrap();
    writer.end_turn().unwrap();

    let mut late = other.open_session("s").unwrap();
    late.set_settings(&titled("new"), false).unwrap();
    // Another client writes first: the late one's copy is stale.
    writer.begin_turn().unwrap();
    writer
        .append(Role::Assistant, "reply".into(), None, false, None)
        .unwrap();
    writer.end_turn().unwrap();
    late.begin_turn().unwrap();
    assert_eq!(late.messages().len(), 2, "reloaded");
    assert_eq!(late.settings().title.as_deref(), Some("new"));
    late.append(Role::User, "second".into(), None, false, None)
        .unwrap();
    late.end_turn().unwrap();
    assert_eq!(
        db.query("SELECT settings->>'title' FROM memchat_sessions WHERE name = 's'"),
        ["new"]
    );
}

/// A rename onto a name whose row another transaction is changing (the
/// crossed `rename b a` mid-way) is refused at once from what is
/// committed, instead of waiting on that row (where two crossed renames
/// deadlocked). A rename or delete whose own row another transaction
/// holds waits at most the lock wait in all, and says how long.
#[test]
fn a_rename_onto_a_row_another_transaction_changes_is_refused_at_once() {
    let Some(db) = TestDb::new("a_rename_onto_a_row_another_changes") else {
        return;
    };
    let store = db.store();
    for name in ["a", "b"] {
        let mut s = store.open_session(name).unwrap();
        s.append(Role::User, format!("in {name}"), None, false, None)
            .unwrap();
    }
    let (release, holder) =
        db.hold_in_transaction("UPDATE memchat_sessions SET name = 'elsewhere' WHERE name = 'b'");
    let (done, finished) = std::sync::mpsc::channel();
    let renamer = std::thread::spawn(move || {
        let result = store.rename("a", "b");
        done.send(()).unwrap();
        result
    });
    // Answered while the other transaction is still open.
    let answered = finished.recv_timeout(std::time::Duration::from_secs(20));
    release.send(()).unwrap();
    holder.join().unwrap();
    let result = renamer.join().unwrap();
    assert!(
        answered.is_ok(),
        "the rename waited on the other transaction"
    );
    let error = result.unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(
        db.query("SELECT name FROM memchat_sessions ORDER BY name"),
        ["a", "b"]
    );

    let (release, holder) =
        db.hold_in_transaction("SELECT 1 FROM memchat_sessions WHERE name = 'a' FOR UPDATE");
    let sandbox = Sandbox::new();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_LOCK_WAIT", "1"),
    ];
    for args in [&["rename", "a", "c"][..], &["delete", "a", "--yes"]] {
        let out = sandbox.run(args, &env, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("waited 1s"), "{stderr}");
    }
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(
        db.query("SELECT name FROM memchat_sessions ORDER BY name"),
        ["a", "b"]
    );
}
