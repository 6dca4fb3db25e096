//! Session management beyond the golden transcripts: an export → import →
//! export round trip changes nothing, and the reading commands work while
//! another process holds the session.

use std::time::Duration;

use crate::support::{FakeServer, Reply, Sandbox, text, wait_until};

#[test]
fn export_then_import_round_trips_unchanged() {
    let sandbox = Sandbox::new();
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
    // A memchat log imports too.
    let log = sandbox.memory().join("default.jsonl");
    let copy = sandbox.dir.path().join("log-copy.jsonl");
    std::fs::copy(&log, &copy).unwrap();
    let out = sandbox.run(&["import", copy.to_str().unwrap()], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("into session \"log-copy\""));
    // Importing over an existing session is refused.
    let out = sandbox.run(
        &["import", file.to_str().unwrap(), "--as", "copy"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("already exists"));
}

#[test]
fn reading_commands_work_while_a_session_is_in_use() {
    let sandbox = Sandbox::new();
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

#[test]
fn switching_with_slash_session_opens_it_as_dash_dash_session_would() {
    let sandbox = Sandbox::new();
    let script = "hello\n/session other\nhello there\n";
    let out = sandbox.run(
        &["--mock", "--system", "Be kind."],
        &[],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let other = sandbox.records("other.jsonl");
    assert_eq!(other[1]["role"], "system");
    assert_eq!(other[1]["content"], "Be kind.");
    assert!(text(&out.stdout).contains("[mock] turn 1, 2 messages"));
}
