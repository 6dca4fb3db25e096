//! Session management beyond the golden transcripts: an export → import →
//! export round trip changes nothing, and the reading commands work while
//! another process holds the session. Each runs on both stores (one
//! definition, a test per store).

use std::time::Duration;

use crate::support::{FakeServer, Reply, Sandbox, StoreKind, text, wait_until};

/// `name_on_files` and `name_on_postgres` tests for a suite function
/// `name(kind)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_files {
            $(#[test] fn $name() { super::$name(super::StoreKind::Files) })*
        }
        mod on_postgres {
            $(#[test] fn $name() { super::$name(super::StoreKind::Postgres) })*
        }
    };
}

on_both_stores! {
    export_then_import_round_trips_unchanged,
    reading_commands_work_while_a_session_is_in_use,
    switching_with_slash_session_opens_it_as_dash_dash_session_would,
    two_processes_on_one_session_never_interleave,
    a_rename_onto_a_taken_name_is_refused_even_when_crossed,
    a_control_character_in_a_title_or_model_is_refused_and_the_chat_goes_on,
}

fn sandbox(kind: StoreKind, test: &str) -> Option<Sandbox> {
    Sandbox::on(kind, &format!("sessions::{test} on {kind:?}"))
}

fn export_then_import_round_trips_unchanged(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "export_then_import_round_trips_unchanged") else {
        return;
    };
    let script = "My name is Ana.\nI like \"quotes\", emoji 🦀 and\\\nnew lines.\n/system Be brief.\nWhat do I like?\n";
    let out = sandbox.run(
        &["--mock", "--system", "You are kind."],
        &[],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first = sandbox.run(&["export", "default"], &[], None);
    assert_eq!(first.status.code(), Some(0));
    let file = sandbox.dir.path().join("conversation.json");
    std::fs::write(&file, &first.stdout).unwrap();
    let out = sandbox.run(
        &["import", file.to_str().unwrap(), "--as", "copy"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let second = sandbox.run(&["export", "copy"], &[], None);
    assert_eq!(text(&second.stdout), text(&first.stdout));
    // Both system prompts survive, in order.
    let exported: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let systems: Vec<&str> = exported
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["You are kind.", "Be brief."]);
    // A memchat log imports too (into either store).
    if kind == StoreKind::Files {
        let log = sandbox.memory().join("default.jsonl");
        let copy = sandbox.dir.path().join("log-copy.jsonl");
        std::fs::copy(&log, &copy).unwrap();
        let out = sandbox.run(&["import", copy.to_str().unwrap()], &[], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("into session \"log-copy\""));
    }
    // Importing over an existing session is refused.
    let out = sandbox.run(
        &["import", file.to_str().unwrap(), "--as", "copy"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("already exists"));
}

fn reading_commands_work_while_a_session_is_in_use(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "reading_commands_work_while_a_session_is_in_use") else {
        return;
    };
    let out = sandbox.run(&["--mock", "first"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Waiting on a server that never answers, `busy` holds the session until
    // it is killed; its request shows that it has taken the lock.
    let server = FakeServer::start(vec![Reply::Silence(Duration::from_secs(120))]);
    let mut busy = sandbox
        .command(&["--base-url", &server.url, "--retries", "0", "a slow one"])
        .env("OPENAI_API_KEY", "sk-test")
        .spawn()
        .unwrap();
    wait_until("the busy process to send its request", || {
        !server.requests().is_empty()
    });
    for args in [
        vec!["sessions"],
        vec!["show", "default"],
        vec!["show", "default", "--all", "--json"],
        vec!["export", "default"],
    ] {
        let out = sandbox.run(&args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let expected = if args[0] == "sessions" {
            "default"
        } else {
            "first"
        };
        assert!(text(&out.stdout).contains(expected), "{args:?}");
    }
    // Writing ones wait for the lock and then say who holds it.
    let out = sandbox.run(&["delete", "default", "--yes"], &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("in use"));
    assert!(busy.try_wait().unwrap().is_none(), "busy held the lock");
    busy.kill().unwrap();
    busy.wait().unwrap();
}

fn switching_with_slash_session_opens_it_as_dash_dash_session_would(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "switching_with_slash_session") else {
        return;
    };
    let script = "hello\n/session other\nhello there\n";
    let out = sandbox.run(
        &["--mock", "--system", "Be kind."],
        &[],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let other = sandbox.contents("other").active;
    assert_eq!(other.system.map(|s| s.content).as_deref(), Some("Be kind."));
    assert!(text(&out.stdout).contains("[mock] turn 1, 2 messages"));
}

/// Two one-shot turns on one session at once (a slow model): each either
/// completes or fails clearly because the other holds the session; the
/// conversation never interleaves (each question is followed by its own
/// reply) and nothing is lost.
fn two_processes_on_one_session_never_interleave(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "two_processes_on_one_session_never_interleave") else {
        return;
    };
    let spawn = |question: &str| {
        sandbox
            .command(&["--mock", "--mock-delay-ms", "40", "-s", "shared", question])
            .env("MEMCHAT_LOCK_WAIT", "3")
            .spawn()
            .unwrap()
    };
    let first = spawn("first question from one machine");
    std::thread::sleep(Duration::from_millis(100));
    let second = spawn("second question from another machine");
    let outcomes: Vec<(bool, String)> = [first, second]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            (out.status.success(), text(&out.stderr))
        })
        .collect();
    for (ok, stderr) in &outcomes {
        assert!(
            *ok || stderr.contains("in use"),
            "a clear failure only: {stderr}"
        );
    }
    let messages = sandbox.contents("shared").active.messages;
    let stored = outcomes.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(messages.len(), 2 * stored, "{messages:?}");
    for pair in messages.chunks(2) {
        assert_eq!(pair[0].role, memchat::memory::format::Role::User);
        assert_eq!(pair[1].role, memchat::memory::format::Role::Assistant);
        assert!(
            pair[1].content.contains(&pair[0].content),
            "a reply follows its own question: {pair:?}"
        );
    }
}

/// A log whose modification time the formatter cannot show (before 1970:
/// restored from an odd backup) is listed with `-` as its last use; the
/// listing panicked.
#[test]
fn a_session_last_used_before_1970_is_listed() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "-s", "old", "hello"], &[], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = sandbox.memory().join("old.jsonl");
    let in_1960 = std::time::UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
    std::fs::File::options()
        .append(true)
        .open(&log)
        .unwrap()
        .set_modified(in_1960)
        .unwrap();
    let out = sandbox.run(&["sessions"], &[], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = stdout.lines().find(|l| l.starts_with("old ")).unwrap();
    assert!(row.contains("  -  "), "{stdout}");
}

/// `rename a b` when b exists says so and changes nothing, even with
/// `rename b a` running at the same time (on PostgreSQL the two used to
/// wait on each other's row and one ended in "deadlock detected"); `rename
/// a a` is a usage error (the file store waited on its own lock and called
/// the session in use).
fn a_rename_onto_a_taken_name_is_refused_even_when_crossed(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "a_rename_onto_a_taken_name_is_refused") else {
        return;
    };
    for name in ["a", "b"] {
        let out = sandbox.run(&["--mock", "-s", name, &format!("in {name}")], &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = sandbox.run(&["rename", "a", "a"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the new name is the session's own"));
    for _ in 0..10 {
        let start = |from: &str, to: &str| {
            sandbox
                .command(&["rename", from, to])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (ab, ba) = (start("a", "b"), start("b", "a"));
        for (renamed, taken) in [(ab, "b"), (ba, "a")] {
            let out = renamed.wait_with_output().unwrap();
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{stderr}");
            assert!(
                stderr.contains(&format!("a session named \"{taken}\" already exists")),
                "{stderr}"
            );
        }
    }
    for name in ["a", "b"] {
        let shown = sandbox.run(&["show", name], &[], None);
        assert!(
            text(&shown.stdout).contains(&format!("in {name}")),
            "{name}"
        );
    }
}

/// `/title` or `/model` with a NUL (or another control character) is
/// refused, and the messages after it are stored: on PostgreSQL, which
/// cannot store a NUL outside a message's content, the setting used to
/// fail every later write until memchat was restarted (red team).
fn a_control_character_in_a_title_or_model_is_refused_and_the_chat_goes_on(kind: StoreKind) {
    let Some(sandbox) = sandbox(kind, "a_control_character_in_a_title_or_model") else {
        return;
    };
    // A script stops at a refused command: each is run on its own.
    for (script, refused) in [
        (
            "first\n/title a\u{0}b\n",
            "the title holds a control character",
        ),
        ("second\n/model gpt\u{0}4\n", "holds a control character"),
        ("third\n/title fine\n", ""),
    ] {
        let out = sandbox.run(&["--mock", "-s", "s"], &[], Some(script.as_bytes()));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(refused), "{stderr}");
        assert_eq!(
            out.status.code(),
            Some(if refused.is_empty() { 0 } else { 2 }),
            "{stderr}"
        );
    }
    let shown = sandbox.run(&["show", "s"], &[], None);
    let shown = text(&shown.stdout);
    for said in ["first", "second", "third"] {
        assert!(shown.contains(said), "{said} stored: {shown}");
    }
    let listed = text(&sandbox.run(&["sessions"], &[], None).stdout);
    assert!(listed.contains("fine"), "{listed}");
}
