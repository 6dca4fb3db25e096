//! What reaches memchat from outside (a server, signals, a terminal) and what
//! memchat shows back: a server that ignores `max_tokens`, API keys in error
//! text and malformed keys, escape sequences in replies, SIGTERM and SIGHUP
//! mid-reply, store errors inside the REPL, lines that arrive together. Real
//! processes, a local fake server, real signals, a pseudo-terminal.

use std::time::Duration;

use memchat::reply_cap::{MAX_REPLY_BYTES, REPLY_CAP_FACTOR};

use crate::support::{FakeServer, Reply, Sandbox, text, text_chunk};

const KEY: &str = "sk-io-test-5d8f2a9c7b1e4f60";

/// A stream of `count` pieces, all `piece`, that ends normally: what a server
/// that ignores `max_tokens` sends (finite, so that without a cap the test
/// fails instead of hanging).
fn flood(piece: &str, count: usize) -> Reply {
    Reply::Stream {
        events: vec![text_chunk(piece); count],
        delay: Duration::ZERO,
        done: true,
    }
}

/// Every message of the default session, archived or active, in order.
fn messages(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    let mut records = sandbox.records("default.archive.jsonl");
    records.extend(sandbox.records("default.jsonl"));
    records
        .into_iter()
        .filter(|r| r["type"] == "message")
        .collect()
}

/// memchat in a pseudo-terminal, in the sandbox's clean environment.
fn spawn_pty(
    sandbox: &Sandbox,
    args: &[&str],
    adjust: impl FnOnce(&mut std::process::Command),
) -> rexpect::session::PtySession {
    let mut command = sandbox.command(args);
    command
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .env("TERM", "xterm");
    adjust(&mut command);
    rexpect::session::spawn_command(command, Some(15_000)).unwrap()
}

// ---- 7. a bound on a reply ------------------------------------------------

#[test]
fn a_server_that_ignores_max_tokens_is_stopped_at_the_reply_cap() {
    // A 2,000-token window: the reply reserve R is 500 tokens.
    let server = FakeServer::start(vec![flood("tok ", 20_000)]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &server.url, "--context-limit", "2000", "hi"],
        &[("OPENAI_API_KEY", KEY)],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(server.requests()[0].body["max_tokens"], 500);
    let cap = 500 * usize::try_from(REPLY_CAP_FACTOR).unwrap();
    assert!(
        stderr.contains(&format!("past {cap} tokens")) && stderr.contains("marked truncated"),
        "{stderr}"
    );
    let records = messages(&sandbox);
    assert_eq!(records.len(), 2, "{records:?} {stderr}");
    let reply = &records[1];
    assert_eq!(reply["truncated"], true);
    assert!(reply.get("interrupted").is_none());
    let content = reply["content"].as_str().unwrap();
    assert_eq!(content, "tok ".repeat(cap));
    assert_eq!(text(&out.stdout).trim_end(), content.trim_end());
    // `show` says so.
    let shown = text(&sandbox.run(&["show", "default", "--all"], &[], None).stdout);
    assert!(shown.contains("[truncated]"), "{shown}");
}

#[test]
fn a_reply_in_huge_pieces_is_stopped_at_the_byte_cap() {
    let piece = "a".repeat(10 * 1024);
    let server = FakeServer::start(vec![flood(&piece, 200)]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &server.url, "hi"],
        &[("OPENAI_API_KEY", KEY)],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("size cap"), "{stderr}");
    let records = messages(&sandbox);
    assert_eq!(records[1]["truncated"], true);
    assert_eq!(
        records[1]["content"].as_str().unwrap().len(),
        MAX_REPLY_BYTES
    );
}

// ---- 11. the API key ------------------------------------------------------

#[test]
fn a_key_echoed_across_the_cut_of_an_error_text_never_shows() {
    for filler in [285, 290, 295, 299] {
        let message = format!("{}{KEY} was refused", "x".repeat(filler));
        let server = FakeServer::start(vec![Reply::error(401, &message, "invalid_api_key")]);
        let sandbox = Sandbox::new();
        let out = sandbox.run(
            &["--base-url", &server.url, "--retries", "0", "hi"],
            &[("OPENAI_API_KEY", KEY)],
            None,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("refused the API key"), "{stderr}");
        for n in 4..=KEY.len() {
            assert!(
                !stderr.contains(&KEY[..n]),
                "{filler}: {n} characters of the key leak: {stderr}"
            );
        }
    }
}

#[test]
fn a_malformed_key_is_a_usage_error_before_anything_is_stored() {
    for bad in [
        "sk-abc\ndef",
        "sk-abc\r\n",
        "sk-abc\u{1}def",
        "sk-abc\u{7f}",
        "sk-abc\u{e9}",
    ] {
        let server = FakeServer::start(vec![Reply::streamed(&["never"])]);
        let sandbox = Sandbox::new();
        let out = sandbox.run(
            &["--base-url", &server.url, "hello"],
            &[("OPENAI_API_KEY", bad)],
            None,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("OPENAI_API_KEY contains"), "{stderr}");
        assert!(!stderr.contains("sk-abc"), "the key is shown: {stderr}");
        assert!(
            messages(&sandbox).is_empty(),
            "{bad:?}: a message was stored"
        );
        assert!(server.requests().is_empty());
    }
}

// ---- 12. escape sequences from the model ----------------------------------

/// A reply that would retitle the window, clear the screen, write the
/// clipboard and turn text red (7-bit and 8-bit CSI).
const HOSTILE: &str =
    "title\x1b]0;pwned\x07 clear\x1b[2J clip\x1b]52;c;aGk=\x07 red\u{9b}31m back\r\nend\n";

fn hostile_server() -> FakeServer {
    FakeServer::start(vec![Reply::Stream {
        events: vec![text_chunk(&HOSTILE[..12]), text_chunk(&HOSTILE[12..])],
        delay: Duration::ZERO,
        done: true,
    }])
}

fn assert_neutralised(screen: &str) {
    for shown in ["^[]0;pwned^G", "^[[2J", "^[]52;c;aGk=^G", "\\u{9b}31m"] {
        assert!(screen.contains(shown), "{shown:?} not shown in {screen:?}");
    }
    for raw in ["\x1b]0;", "\x1b[2J", "\x1b]52", "\u{9b}"] {
        assert!(!screen.contains(raw), "{raw:?} reached the terminal");
    }
}

#[test]
fn escape_sequences_in_a_reply_are_shown_on_a_terminal_and_kept_in_a_pipe() {
    let server = hostile_server();
    let sandbox = Sandbox::new();
    // On a terminal, plain (NO_COLOR) and rendered as Markdown.
    for color in [false, true] {
        let mut p = spawn_pty(&sandbox, &["--base-url", &server.url, "hi"], |c| {
            c.env("OPENAI_API_KEY", KEY);
            if color {
                c.env_remove("NO_COLOR");
            }
        });
        let screen = p.exp_eof().unwrap();
        assert_neutralised(&screen);
        assert!(screen.contains("end"), "{screen:?}");
    }
    // The log and a pipe keep the reply byte for byte.
    let out = sandbox.run(
        &["--base-url", &server.url, "hi"],
        &[("OPENAI_API_KEY", KEY)],
        None,
    );
    assert_eq!(text(&out.stdout), HOSTILE);
    assert_eq!(messages(&sandbox).last().unwrap()["content"], HOSTILE);
    let piped = sandbox.run(&["show", "default"], &[], None);
    assert!(text(&piped.stdout).contains(HOSTILE.trim_end()));
    // `show` on a terminal neutralises what it replays.
    let mut p = spawn_pty(&sandbox, &["show", "default"], |_| {});
    assert_neutralised(&p.exp_eof().unwrap());
}
