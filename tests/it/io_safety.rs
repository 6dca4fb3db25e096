//! What reaches memchat from outside (a server, signals, a terminal) and what
//! memchat shows back: a server that ignores `max_tokens`, API keys in error
//! text and malformed keys, escape sequences in replies, SIGTERM and SIGHUP
//! mid-reply, store errors inside the REPL, lines that arrive together. Real
//! processes, a local fake server, real signals, a pseudo-terminal.

use std::time::Duration;

use memchat::reply_cap::{MAX_REPLY_BYTES, REPLY_CAP_FACTOR};

use crate::support::{
    Capture, FakeServer, Reply, Sandbox, editing, editing_on, pty, send_signal, text, text_chunk,
};

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
fn a_server_echoing_the_key_into_a_reply_or_a_model_name_never_gets_it_shown_or_stored() {
    // A reply that repeats the key, split across pieces at every kind of
    // place, and a reply that ends with a start of the key (kept: it was not
    // the key).
    let (a, b) = KEY.split_at(9);
    let server = FakeServer::start(vec![
        Reply::streamed(&["your key is ", a, b, " and again ", KEY, "."]),
        Reply::streamed(&["ends with sk-io"]),
        Reply::Json {
            status: 200,
            body: format!(r#"{{"data":[{{"id":"echo-{KEY}"}},{{"id":"gpt-4o"}}]}}"#),
            headers: vec![],
        },
    ]);
    let sandbox = Sandbox::new();
    let key = [("OPENAI_API_KEY", KEY)];
    let out = sandbox.run(&["--base-url", &server.url, "hi"], &key, None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stdout, "your key is <redacted> and again <redacted>.\n");
    let out = sandbox.run(&["--base-url", &server.url, "more"], &key, None);
    assert_eq!(text(&out.stdout), "ends with sk-io\n");
    let out = sandbox.run(&["models", "--base-url", &server.url], &key, None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("echo-<redacted>"), "{stdout}");
    for file in std::fs::read_dir(sandbox.memory()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "the key is in {}",
            path.display()
        );
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
    FakeServer::start(vec![Reply::streamed(&[&HOSTILE[..12], &HOSTILE[12..]])])
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
        let mut p = pty(&sandbox, &["--base-url", &server.url, "hi"], |c| {
            c.env("OPENAI_API_KEY", KEY);
            if color {
                c.env_remove("NO_COLOR");
            }
        });
        let screen = p.exp_eof().unwrap();
        assert_neutralised(&screen);
        assert!(!screen.contains("error"), "{screen:?}");
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
    let mut p = pty(&sandbox, &["show", "default"], |_| {});
    assert_neutralised(&p.exp_eof().unwrap());
}

// ---- 9. store errors inside the REPL --------------------------------------

fn user_messages(sandbox: &Sandbox, file: &str) -> Vec<String> {
    sandbox
        .records(file)
        .iter()
        .filter(|r| r["role"] == "user")
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_repl_reports_a_locked_or_corrupt_session_and_stays_where_it_was() {
    let sandbox = Sandbox::new();
    // Another memchat holds session "busy".
    let mut holder = pty(&sandbox, &["--mock", "-s", "busy"], |_| {});
    editing(&mut holder);
    // Session "bad" has a damaged line in the middle.
    std::fs::write(
        sandbox.memory().join("bad.jsonl"),
        "{\"type\":\"header\",\"format\":\"memchat\",\"version\":1,\"session\":\"bad\",\"created_at\":\"2026-01-01T00:00:00Z\"}\n\
         not json\n\
         {\"type\":\"message\",\"seq\":2,\"role\":\"user\",\"content\":\"hi\",\"at\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();

    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send_line("/session busy").unwrap();
    p.exp_string("in use by another memchat process").unwrap();
    p.exp_string("still on session \"default\"").unwrap();
    editing_on(&mut p, "default");
    p.send_line("/session bad").unwrap();
    p.exp_string("bad.jsonl:2").unwrap();
    editing_on(&mut p, "default");
    p.send_line("still here").unwrap();
    p.exp_string("You said: \"still here\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    holder.send_line("/exit").unwrap();
    holder.exp_eof().unwrap();

    assert_eq!(user_messages(&sandbox, "default.jsonl"), ["still here"]);
    assert!(user_messages(&sandbox, "busy.jsonl").is_empty());
}

#[test]
fn the_repl_reports_a_full_disk_and_stays_at_its_prompt() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "a first question"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = sandbox.memory().join("default.jsonl");
    let before = std::fs::read(&log).unwrap();
    // A file size limit just above the log: the next append cannot fit.
    let blocks = before.len().div_ceil(512);
    let template = sandbox.command(&[]);
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            &format!("ulimit -f {blocks}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_memchat"),
            "--mock",
        ])
        .env_clear()
        .current_dir(sandbox.dir.path())
        .env("TERM", "xterm");
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let mut p = rexpect::session::spawn_command(command, Some(15_000)).unwrap();
    editing(&mut p);
    p.send_line(&"too long to fit ".repeat(64)).unwrap();
    p.exp_string("cannot write to").unwrap();
    p.exp_string("still on session \"default\"").unwrap();
    editing(&mut p);
    p.send_line("/history 1").unwrap();
    p.exp_string("[mock]").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), before, "the log is unchanged");
}

// ---- 10. lines that arrive together ---------------------------------------

#[test]
fn lines_pasted_without_bracketed_paste_are_each_sent() {
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    // Three lines in one write, as a terminal without bracketed paste sends
    // a pasted text.
    p.send("one\rtwo\rthree\r").unwrap();
    p.flush().unwrap();
    for word in ["one", "two", "three"] {
        p.exp_string(&format!("You said: \"{word}\"")).unwrap();
    }
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        user_messages(&sandbox, "default.jsonl"),
        ["one", "two", "three"]
    );
}

#[test]
fn lines_typed_while_a_reply_streams_are_each_sent() {
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock", "--mock-delay-ms", "100"], |_| {});
    editing(&mut p);
    p.send_line("first").unwrap();
    // The reply streams for over a second: type two lines meanwhile.
    p.exp_string("[mock]").unwrap();
    p.send("second\rthird\r").unwrap();
    p.flush().unwrap();
    for word in ["first", "second", "third"] {
        p.exp_string(&format!("You said: \"{word}\"")).unwrap();
    }
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        user_messages(&sandbox, "default.jsonl"),
        ["first", "second", "third"]
    );
}

#[test]
fn a_line_typed_while_a_reply_streams_survives_ctrl_c() {
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock", "--mock-delay-ms", "150"], |_| {});
    editing(&mut p);
    p.send_line("first").unwrap();
    // The reply streams for over a second: type a line, then Ctrl-C.
    p.exp_string("[mock]").unwrap();
    // The terminal queues the line (rexpect turns its echo off, so nothing
    // shows), then Ctrl-C reaches it, in that order.
    p.send("second\r").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted; the partial reply is saved")
        .unwrap();
    p.exp_string("You said: \"second\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        user_messages(&sandbox, "default.jsonl"),
        ["first", "second"]
    );
}

#[test]
fn lines_after_exit_or_ctrl_d_are_named_as_not_sent() {
    let sandbox = Sandbox::new();
    // Pasted in one write: a line, /exit, two more lines and an unfinished one.
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send("hello\r/exit\rsecond line here\rthird\rpartial")
        .unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"hello\"").unwrap();
    p.exp_string(
        "3 lines typed after /exit were not sent: \"second line here\", \"third\", \"partial\"",
    )
    .unwrap();
    p.exp_eof().unwrap();
    // Ctrl-D, then a line, in one write.
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send("\x04after ctrl d\r").unwrap();
    p.flush().unwrap();
    p.exp_string("1 line typed after Ctrl-D was not sent: \"after ctrl d\"")
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(user_messages(&sandbox, "default.jsonl"), ["hello"]);
}

/// A terminal without line editing (`TERM=dumb`: Emacs' shell, some IDE
/// consoles) reads plain lines: `/exit` and Ctrl-D end the REPL there too
/// (the leftover drain once waited for a line that never came), and lines
/// after `/exit` are still named.
#[test]
fn a_dumb_terminal_exits_on_exit_and_names_what_came_after() {
    let sandbox = Sandbox::new();
    let dumb = |command: &mut std::process::Command| {
        command.env("TERM", "dumb");
    };
    let mut p = pty(&sandbox, &["--mock"], dumb);
    p.exp_string("%> ").unwrap();
    p.send("hello\n/exit\nafter exit\n").unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"hello\"").unwrap();
    let before = p
        .exp_string("1 line typed after /exit was not sent: \"after exit\"")
        .unwrap();
    // No line was drawn, so none is taken back (a cursor-up would be junk
    // on such a terminal).
    assert!(!before.contains("\u{1b}[A"), "{before:?}");
    p.exp_eof().unwrap();
    let mut p = pty(&sandbox, &["--mock"], dumb);
    p.exp_string("%> ").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    let mut p = pty(&sandbox, &["--mock"], dumb);
    p.exp_string("%> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    assert_eq!(user_messages(&sandbox, "default.jsonl"), ["hello"]);
}

#[test]
fn a_line_after_ctrl_c_at_the_prompt_in_the_same_read_is_sent() {
    // Ctrl-C clears the line being edited; what came with it is kept (the
    // editor drops what it read ahead when a line ends in its interrupt).
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send("discard me\x03kept line\r").unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"kept line\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(user_messages(&sandbox, "default.jsonl"), ["kept line"]);
}

#[test]
fn lines_typed_after_exit_while_a_reply_streams_are_named_as_not_sent() {
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock", "--mock-delay-ms", "100"], |_| {});
    editing(&mut p);
    p.send_line("first").unwrap();
    p.exp_string("[mock]").unwrap();
    // Typed while the reply streams: /exit and then 40 lines, 2 KB, more
    // than the line editor reads at once, so the last ones are still in the
    // terminal's queue when memchat ends.
    let mut typed = String::from("/exit\r");
    for i in 0..40 {
        typed.push_str(&format!("line {i:02} {}\r", "x".repeat(40)));
    }
    p.send(&typed).unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"first\"").unwrap();
    p.exp_string("40 lines typed after /exit were not sent: \"line 00")
        .unwrap();
    p.exp_string("and 37 more").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(user_messages(&sandbox, "default.jsonl"), ["first"]);
}

// ---- 4. the input history is never written through a link -----------------

#[test]
fn the_input_history_is_never_read_or_written_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "make the memory dir"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A file outside the memory dir, readable by others, and a link to it
    // where the input history lives.
    let outside = sandbox.dir.path().join("outside.txt");
    std::fs::write(&outside, "precious\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
    let history = sandbox.memory().join(".input-history");
    std::os::unix::fs::symlink(&outside, &history).unwrap();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    p.exp_string("is a symbolic link").unwrap();
    editing(&mut p);
    p.send_line("a secret line").unwrap();
    p.exp_string("You said: \"a secret line\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "the mode of the file elsewhere is kept"
    );
    assert!(history.symlink_metadata().unwrap().is_symlink());

    // A dangling link: nothing is created where it points.
    let nowhere = sandbox.dir.path().join("created-elsewhere");
    std::fs::remove_file(&history).unwrap();
    std::os::unix::fs::symlink(&nowhere, &history).unwrap();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send_line("another line").unwrap();
    p.exp_string("You said: \"another line\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert!(!nowhere.exists(), "no file created through a dangling link");

    // Without the link the history is kept, 0600, and offered again.
    std::fs::remove_file(&history).unwrap();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.send_line("kept line").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        "#V2\nkept line\n/exit\n"
    );
    let mode = std::fs::metadata(&history).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    // Ctrl-P twice: the line before `/exit`.
    p.send_control('p').unwrap();
    p.send_control('p').unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"kept line\"").unwrap();
    editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}

// ---- 8. SIGTERM and SIGHUP ------------------------------------------------

#[test]
fn sigterm_or_sighup_during_a_reply_saves_it_marked_interrupted_then_exits() {
    let script = "a long reply please\nnever sent\n";
    for (signal, status, piped) in [
        ("TERM", 143, false),
        ("HUP", 129, false),
        ("TERM", 143, true),
    ] {
        let sandbox = Sandbox::new();
        let mut args = vec!["--mock", "--mock-delay-ms", "150"];
        if !piped {
            args.push("a long reply please");
        }
        let mut command = sandbox.command(&args);
        if piped {
            command.stdin(std::process::Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        if piped {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(script.as_bytes()).unwrap();
        }
        let stdout = Capture::start(child.stdout.take().unwrap());
        let stderr = Capture::start(child.stderr.take().unwrap());
        // The reply has a dozen words at 150 ms each: it is mid-stream.
        stdout.wait_for("[mock]");
        send_signal(child.id(), signal);
        let exit = child.wait().unwrap();
        let (shown, stderr) = (stdout.finish(), stderr.finish());
        assert_eq!(exit.code(), Some(status), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "SIG{signal} received; the partial reply is saved, marked interrupted"
            )),
            "{stderr}"
        );
        let records = messages(&sandbox);
        assert_eq!(records.len(), 2, "question and partial reply: {records:?}");
        assert_eq!(records[1]["interrupted"], true);
        let partial = records[1]["content"].as_str().unwrap();
        assert!(
            partial.starts_with("[mock]") && shown.starts_with(partial),
            "saved {partial:?}, shown {shown:?}"
        );
    }
}

#[test]
fn sighup_during_a_repl_reply_saves_it_and_exits_129() {
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock", "--mock-delay-ms", "150"], |_| {});
    editing(&mut p);
    p.send_line("please write a long answer").unwrap();
    p.exp_string("[mock]").unwrap();
    p.process_mut()
        .signal(rexpect::process::Signal::SIGHUP)
        .unwrap();
    crate::support::exits_with(&mut p, 129);
    let records = messages(&sandbox);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1]["interrupted"], true);
    assert!(
        records[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("[mock]")
    );
}

#[test]
fn sigterm_between_turns_ends_memchat_at_once() {
    // At the REPL prompt.
    let sandbox = Sandbox::new();
    let mut p = pty(&sandbox, &["--mock"], |_| {});
    editing(&mut p);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .unwrap();
    p.exp_string("SIGTERM received; exiting").unwrap();
    crate::support::exits_with(&mut p, 143);
    // In script mode, blocked reading the next line of stdin.
    let mut command = sandbox.command(&["--mock"]);
    command.stdin(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    {
        use std::io::Write;
        stdin.write_all(b"hello\n").unwrap();
    }
    let stdout = Capture::start(child.stdout.take().unwrap());
    stdout.wait_for("You said: \"hello\"");
    send_signal(child.id(), "TERM");
    let exit = child.wait().unwrap();
    drop(stdin);
    assert_eq!(exit.code(), Some(143));
    assert_eq!(
        user_messages(&sandbox, "default.jsonl"),
        ["hello"],
        "the finished turn is kept"
    );
}

#[test]
fn sigterm_at_the_prompt_gives_the_terminal_back_as_it_was() {
    // A shell that prints the terminal's modes, runs memchat, prints them
    // again: the line editor holds the terminal raw at the prompt.
    let sandbox = Sandbox::new();
    let template = sandbox.command(&[]);
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            "echo $$; stty -g; \"$0\" --mock; echo \"status $?\"; stty -g",
            env!("CARGO_BIN_EXE_memchat"),
        ])
        .env_clear()
        .current_dir(sandbox.dir.path());
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(command, Some(15_000)).unwrap();
    let shell = p.read_line().unwrap().trim().to_string();
    let before = p.read_line().unwrap();
    editing(&mut p);
    let children = std::process::Command::new("pgrep")
        .args(["-P", &shell])
        .output()
        .unwrap();
    let memchat: u32 = text(&children.stdout).trim().parse().unwrap();
    send_signal(memchat, "TERM");
    p.exp_string("SIGTERM received; exiting").unwrap();
    p.exp_string("status 143").unwrap();
    let rest = p.exp_eof().unwrap();
    let after = rest
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap();
    assert_eq!(after, before.trim(), "the terminal's modes as they were");
}

/// A server that answers every request with `start`, then `block` again and
/// again until the client hangs up.
fn endless_server(start: &'static str, block: String) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let block = block.clone();
            std::thread::spawn(move || {
                // Read the request (head, then its body) before answering.
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let _ = reader.read_exact(&mut vec![0u8; length]);
                let mut out = stream;
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
                );
                let _ = out.write_all(start.as_bytes());
                while out.write_all(block.as_bytes()).is_ok() {}
            });
        }
    });
    url
}

/// memchat against `url`, under a 1 GiB address-space limit and a CPU-time
/// limit: a memchat that kept a response growing would die, not hang.
fn run_limited(sandbox: &Sandbox, url: &str) -> std::process::Output {
    let template = sandbox.command(&[]);
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            "ulimit -v 1048576; ulimit -t 120; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_memchat"),
            "--base-url",
            url,
            "--retries",
            "0",
            "hi",
        ])
        .env_clear()
        .current_dir(sandbox.dir.path())
        .env("OPENAI_API_KEY", KEY);
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.output().unwrap()
}

#[test]
fn a_response_without_end_is_stopped_at_the_response_byte_caps() {
    // One SSE event that never ends (the parser would hold and rescan it),
    // and endless events that carry no text (the reply cap never sees them).
    let one_event = endless_server(
        "data: {\"choices\":[{\"delta\":{\"content\":\"",
        "a".repeat(64 * 1024),
    );
    let empty_events = endless_server("", "data: {\"choices\":[{\"delta\":{}}]}\n\n".repeat(1024));
    for url in [one_event, empty_events] {
        let sandbox = Sandbox::new();
        let out = run_limited(&sandbox, &url);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "more than memchat reads for one reply (a line of {} MiB or {} MiB in all)",
                memchat::client::MAX_LINE_BYTES / (1024 * 1024),
                memchat::client::MAX_RESPONSE_BYTES / (1024 * 1024)
            )),
            "{stderr}"
        );
        let records = messages(&sandbox);
        assert_eq!(records.len(), 1, "the question is kept: {records:?}");
    }
}
