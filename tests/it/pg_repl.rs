//! The REPL on a PostgreSQL store, driven through a pty: what a user at the
//! terminal is told when another client has the session.

use crate::pg_store::TestDb;
use crate::support::{Sandbox, editing_on, pty};

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
    let mut p = pty(&sandbox, &["--mock", "-s", "s"], |command| {
        command
            .env("MEMCHAT_STORE", &db.url)
            .env("MEMCHAT_LOCK_WAIT", "1");
    });
    editing_on(&mut p, "s");
    p.send_line("first").unwrap();
    p.exp_string("You said: \"first\"").unwrap();
    editing_on(&mut p, "s");

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
