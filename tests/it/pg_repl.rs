//! The chat on a PostgreSQL store while another client uses the session:
//! what a user is told, and what the commands leave (a pty for the REPL).

use crate::pg_store::TestDb;
use crate::support::{Sandbox, editing_on, pty};

/// A REPL on session `s` of `db` with a lock wait of `lock_wait` seconds,
/// its first turn ("first") answered and the editor ready again.
fn repl_after_a_turn(
    db: &TestDb,
    sandbox: &Sandbox,
    lock_wait: &str,
) -> rexpect::session::PtySession {
    let mut p = pty(sandbox, &["--mock", "-s", "s"], |command| {
        command
            .env("MEMCHAT_STORE", &db.url)
            .env("MEMCHAT_LOCK_WAIT", lock_wait);
    });
    editing_on(&mut p, "s");
    p.send_line("first").unwrap();
    p.exp_string("You said: \"first\"").unwrap();
    editing_on(&mut p, "s");
    p
}

/// A turn that gave up waiting for the session's lock (another client's
/// turn ran the whole lock wait) stored nothing: the error says so, and
/// says where the message is (the input history), rather than leave the
/// user to believe it saved and `/retry` it, which would answer the
/// session's last message, the other client's (red team). A turn that
/// fails after its message is stored says that instead.
#[test]
fn a_turn_that_could_not_take_the_session_says_the_message_was_not_stored() {
    let Some(db) = TestDb::new("a_turn_that_could_not_take_the_session") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut p = repl_after_a_turn(&db, &sandbox, "1");

    let store = db.store();
    let mut held = store.open_session("s").unwrap();
    held.begin_turn().unwrap();
    p.send_line("while the other client holds it").unwrap();
    p.exp_string("is in use by another memchat").unwrap();
    p.exp_string("your message was not stored (the up arrow brings it back)")
        .unwrap();
    held.end_turn().unwrap();
    drop(held);
    editing_on(&mut p, "s");
    p.send_line("after").unwrap();
    p.exp_string("You said: \"after\"").unwrap();
    editing_on(&mut p, "s");
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        db.query("SELECT content FROM memchat_records WHERE role = 'user' ORDER BY seq"),
        ["first", "after"]
    );
}

/// `/edit last` while another client writes to the session (here: from the
/// editor itself, as a second machine would while the editor is open): the
/// edited message no longer ends the session, so the other client's
/// exchange is not moved to the archive in its place; the edited message
/// goes in as a new one, with a warning. It used to archive the other's
/// exchange and keep the old message next to the edited one (red team).
#[test]
fn edit_last_replaces_nothing_another_client_wrote_meanwhile() {
    let Some(db) = TestDb::new("edit_last_replaces_nothing") else {
        return;
    };
    let sandbox = Sandbox::new();
    let editor = sandbox.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\n\"$MEMCHAT_BIN\" --mock -s s \"b1 message\" >/dev/null 2>&1 || exit 1\n\
         printf 'edited a0' > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = [
        ("MEMCHAT_STORE", db.url.as_str()),
        ("MEMCHAT_BIN", env!("CARGO_BIN_EXE_memchat")),
        ("EDITOR", editor.to_str().unwrap()),
        ("VISUAL", editor.to_str().unwrap()),
    ];
    let out = sandbox.run(
        &["--mock", "-s", "s"],
        &env,
        Some(b"a0 message\n/edit last\n"),
    );
    let stderr = crate::support::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the session changed while the message was edited"),
        "{stderr}"
    );
    assert_eq!(
        db.query(
            "SELECT content FROM memchat_records WHERE role = 'user' AND NOT archived ORDER BY seq"
        ),
        ["a0 message", "b1 message", "edited a0"]
    );
    assert_eq!(
        db.query("SELECT count(*)::text FROM memchat_records WHERE archived"),
        ["0"]
    );
}

/// Ctrl-C while a turn waits for another client's turn on the session
/// ends the wait at once and stores nothing (the wait ran the whole lock
/// wait, then stored the message the user had given up on; red team); a
/// lock granted after all is let go. A one-shot so interrupted ends with
/// status 130, and stores nothing either.
#[test]
fn ctrl_c_ends_a_wait_for_the_session_and_stores_nothing() {
    let Some(db) = TestDb::new("ctrl_c_ends_a_wait_for_the_session") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut p = repl_after_a_turn(&db, &sandbox, "60");

    let store = db.store();
    let mut held = store.open_session("s").unwrap();
    held.begin_turn().unwrap();
    p.send_line("given up on").unwrap();
    p.exp_string("waiting for the store").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted while waiting for another memchat's turn")
        .unwrap();
    p.exp_string("your message was not stored").unwrap();

    // The same for a one-shot, by SIGINT.
    let one_shot = sandbox
        .command(&["--mock", "-s", "s", "given up on too"])
        .env("MEMCHAT_STORE", &db.url)
        .env("MEMCHAT_LOCK_WAIT", "60")
        .spawn()
        .unwrap();
    crate::support::wait_until("the one-shot to wait for the turn", || {
        db.locks_waited_for() == "1"
    });
    crate::support::send_signal(one_shot.id(), "INT");
    let out = one_shot.wait_with_output().unwrap();
    // 130, or ended by the signal itself (a shell says 130 either way):
    // a one-shot arms its handlers once its turn has begun.
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        out.status.code() == Some(130) || out.status.signal() == Some(2),
        "{:?} {}",
        out.status,
        crate::support::text(&out.stderr)
    );

    held.end_turn().unwrap();
    drop(held);
    editing_on(&mut p, "s");
    p.send_line("after").unwrap();
    p.exp_string("You said: \"after\"").unwrap();
    editing_on(&mut p, "s");
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        db.query("SELECT content FROM memchat_records WHERE role = 'user' ORDER BY seq"),
        ["first", "after"]
    );
    crate::support::wait_until("no turn lock left", || db.locks_held() == "0");
}

/// A command that only shows the session (`/history`) shows what another
/// machine stored since this REPL's last turn (it showed this REPL's copy
/// until its next turn; red team).
#[test]
fn history_shows_what_another_client_stored_meanwhile() {
    let Some(db) = TestDb::new("history_shows_what_another_client") else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut p = repl_after_a_turn(&db, &sandbox, "1");
    let out = sandbox.run(
        &["--mock", "-s", "s", "said on another machine"],
        &[("MEMCHAT_STORE", db.url.as_str())],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        crate::support::text(&out.stderr)
    );
    p.send_line("/history").unwrap();
    p.exp_string("said on another machine").unwrap();
    editing_on(&mut p, "s");
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}
