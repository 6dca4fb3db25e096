//! The interactive chat in a real pseudo-terminal (rexpect): replies, a
//! multi-line message, Ctrl-C during a reply (stops only the reply, keeps the
//! partial text), Ctrl-C at the prompt (clears the line), Ctrl-D (exits), and
//! the input history kept 0600 across runs.

use crate::support;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{Sandbox, editing};

/// memchat in a pseudo-terminal, in the sandbox's clean environment.
fn spawn(sandbox: &Sandbox, args: &[&str]) -> rexpect::session::PtySession {
    support::pty(sandbox, args, |_| {})
}

/// memchat in a pseudo-terminal, talking to a local server with a test key.
fn spawn_for_server(sandbox: &Sandbox, args: &[&str]) -> rexpect::session::PtySession {
    support::pty(sandbox, args, |command| {
        command.env("OPENAI_API_KEY", "sk-test");
    })
}

#[test]
fn the_repl_chats_stops_replies_on_ctrl_c_and_keeps_history() {
    let sandbox = Sandbox::new();
    let mut p = spawn(&sandbox, &["--mock", "--mock-delay-ms", "150"]);
    p.exp_string("new session").unwrap();
    p.exp_string("default 0%> ").unwrap();
    p.send_line("hello there").unwrap();
    p.exp_string("You said: \"hello there\"").unwrap();
    p.exp_string("default ").unwrap();

    // A trailing backslash continues the message on the next line.
    p.send_line("first part \\").unwrap();
    p.send_line("second part").unwrap();
    p.exp_string("You said: \"first part second part\"")
        .unwrap();
    p.exp_string("%> ").unwrap();

    // An open code fence continues the message until it is closed, and
    // Alt-Enter inserts a newline without sending.
    p.send_line("```").unwrap();
    p.send_line("let x = 1;").unwrap();
    p.send_line("```").unwrap();
    p.exp_string("You said: \"``` let x = 1; ```\"").unwrap();
    p.exp_string("%> ").unwrap();
    p.send("alt one").unwrap();
    p.send("\x1b\r").unwrap();
    p.send_line("alt two").unwrap();
    p.exp_string("You said: \"alt one alt two\"").unwrap();
    p.exp_string("%> ").unwrap();

    // Ctrl-C while the reply streams: the reply stops, the chat goes on.
    // The reply has a dozen words at 150 ms each: once its first word is
    // shown it streams for over a second more.
    p.send_line("please write a long answer").unwrap();
    p.exp_string("[mock]").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted").unwrap();
    editing(&mut p);

    // Ctrl-C at the prompt clears the line: "discard me" is never sent.
    p.send("discard me").unwrap();
    p.send_control('c').unwrap();
    editing(&mut p);
    p.send_line("/history 2").unwrap();
    p.exp_string("user: please write a long answer").unwrap();
    p.exp_string("%> ").unwrap();

    // Ctrl-D leaves.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    let records = sandbox.records("default.jsonl");
    let contents: Vec<&str> = records
        .iter()
        .filter_map(|r| r["content"].as_str())
        .collect();
    assert!(!contents.iter().any(|c| c.contains("discard me")));
    assert!(
        contents.contains(&"first part \nsecond part"),
        "{contents:?}"
    );
    assert!(contents.contains(&"```\nlet x = 1;\n```"), "{contents:?}");
    assert!(contents.contains(&"alt one\nalt two"), "{contents:?}");
    let partial = records
        .iter()
        .find(|r| r["interrupted"] == true)
        .expect("a reply marked interrupted");
    assert!(partial["content"].as_str().unwrap().starts_with("[mock]"));

    let history = sandbox.memory().join(".input-history");
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("hello there"), "{text}");
    assert_eq!(
        std::fs::metadata(&history).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A new run resumes where the last one stopped.
    let mut p = spawn(&sandbox, &["--mock"]);
    p.exp_string("resuming session \"default\"").unwrap();
    p.exp_string("%> ").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn the_repl_survives_a_failing_server_and_keeps_the_message() {
    let server = support::FakeServer::start(vec![
        support::Reply::error(401, "Incorrect API key provided", "invalid_api_key"),
        support::Reply::streamed(&["back", " again"]),
    ]);
    let sandbox = Sandbox::new();
    let mut p = spawn_for_server(&sandbox, &["--base-url", &server.url, "--retries", "0"]);
    p.exp_string("%> ").unwrap();
    p.send_line("first try").unwrap();
    p.exp_string("refused the API key").unwrap();
    p.exp_string("%> ").unwrap();
    p.send_line("/retry").unwrap();
    p.exp_string("back again").unwrap();
    p.exp_string("%> ").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    let records = sandbox.records("default.jsonl");
    assert_eq!(records[1]["content"], "first try");
    assert_eq!(records[2]["content"], "back again");
}

#[test]
fn delete_asks_on_a_terminal() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "-s", "old", "something to delete"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    // "n" keeps it.
    let mut p = spawn(&sandbox, &["delete", "old"]);
    p.exp_string("Delete session \"old\" and all 2 of its messages?")
        .unwrap();
    p.send_line("n").unwrap();
    p.exp_string("kept session \"old\"").unwrap();
    p.exp_eof().unwrap();
    assert!(sandbox.memory().join("old.jsonl").exists());
    // "y" deletes it.
    let mut p = spawn(&sandbox, &["delete", "old"]);
    p.exp_string("[y/N]").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("deleted session \"old\"").unwrap();
    p.exp_eof().unwrap();
    assert!(!sandbox.memory().join("old.jsonl").exists());
}

#[test]
fn a_terminal_gets_markdown_and_a_spinner_a_pipe_gets_raw_text() {
    let events = vec![
        support::text_chunk("# Plan\n"),
        support::text_chunk("Use **bold** and `code`.\n"),
        support::text_chunk("```rust\nlet x = 1;\n```\n"),
    ];
    // The first token comes after 600 ms: long enough for the spinner.
    let server = support::FakeServer::start(vec![support::Reply::Stream {
        events,
        delay: Duration::from_millis(600),
        done: true,
    }]);
    let sandbox = Sandbox::new();
    let mut p = support::pty(
        &sandbox,
        &["--base-url", &server.url, "plan it"],
        |command| {
            command
                .env_remove("NO_COLOR")
                .env("OPENAI_API_KEY", "sk-test");
        },
    );
    p.exp_string("waiting for the model").unwrap();
    p.exp_string("\x1b[1m\x1b[36m#").unwrap(); // heading style (bold, cyan)
    p.exp_string("\x1b[1m**bold**").unwrap(); // bold, markers kept
    p.exp_string("\x1b[35mlet\x1b[0m").unwrap(); // a highlighted keyword
    p.exp_eof().unwrap();
    // Piped, the same reply is raw.
    let out = sandbox.run(
        &["--base-url", &server.url, "plan it"],
        &[("OPENAI_API_KEY", "sk-test")],
        None,
    );
    let stdout = support::text(&out.stdout);
    assert_eq!(
        stdout,
        "# Plan\nUse **bold** and `code`.\n```rust\nlet x = 1;\n```\n"
    );
}

#[test]
fn a_bracketed_paste_is_one_message() {
    let sandbox = Sandbox::new();
    let mut p = spawn(&sandbox, &["--mock"]);
    editing(&mut p);
    // What a terminal sends for a pasted two-line text (lines end in CR,
    // as tmux and most terminals send them), then Enter once the editor
    // shows the pasted text.
    p.send("\x1b[200~pasted one\rpasted two\x1b[201~").unwrap();
    p.flush().unwrap();
    p.exp_string("pasted two").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("You said: \"pasted one pasted two\"").unwrap();
    p.exp_string("%> ").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    let records = sandbox.records("default.jsonl");
    assert_eq!(records[1]["content"], "pasted one\npasted two");
}

#[test]
fn compaction_runs_while_the_user_types_and_says_so() {
    let sandbox = Sandbox::new();
    let mut p = spawn(&sandbox, &["--mock", "--context-limit", "1100"]);
    let mut seen = p.exp_string("%> ").unwrap();
    for i in 0..12 {
        p.send_line(&format!(
            "message {i} with enough words to fill a small window quickly"
        ))
        .unwrap();
        seen += &p.exp_string(&format!("You said: \"message {i}")).unwrap();
        seen += &p.exp_string("%> ").unwrap();
    }
    p.send_line("/exit").unwrap();
    seen += &p.exp_eof().unwrap();
    assert!(
        seen.contains("memchat: memory: "),
        "no compaction notice in: {seen}"
    );
    assert!(
        sandbox
            .records("default.jsonl")
            .iter()
            .any(|r| r["type"] == "summary")
    );
    assert!(!sandbox.records("default.archive.jsonl").is_empty());
}

#[test]
fn a_slow_summary_can_be_postponed_with_ctrl_c() {
    let sandbox = Sandbox::new();
    support::fill_small_window(&sandbox);
    let long = support::words(60);
    let server = support::FakeServer::start(vec![
        support::Reply::streamed(&long),
        support::Reply::Silence(Duration::from_secs(30)),
        support::Reply::streamed(&["after", " all"]),
    ]);
    let mut p = spawn_for_server(
        &sandbox,
        &[
            "--base-url",
            &server.url,
            "--model",
            "gpt-4",
            "--context-limit",
            "1500",
        ],
    );
    p.exp_string("%> ").unwrap();
    p.send_line("one more").unwrap();
    p.exp_string("word59").unwrap();
    p.exp_string("%> ").unwrap();
    // The summary request hangs; the next line waits for it, Ctrl-C postpones it.
    support::wait_until("the summary request", || server.requests().len() >= 2);
    p.send_line("and then").unwrap();
    p.exp_string("finishing the summary").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("compaction postponed").unwrap();
    p.exp_string("after all").unwrap();
    p.exp_string("%> ").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    let contents: Vec<String> = sandbox
        .records("default.jsonl")
        .iter()
        .filter_map(|r| r["content"].as_str().map(str::to_string))
        .collect();
    assert!(contents.contains(&"and then".to_string()));
    assert!(contents.contains(&"after all".to_string()));
}

#[test]
fn the_prompt_shows_the_figure_after_a_compaction_not_before() {
    let sandbox = Sandbox::new();
    support::fill_small_window(&sandbox);
    let mut p = spawn(&sandbox, &["--mock"]);
    let (_, first) = p.exp_regex(r"default +\d+%> ").unwrap();
    let figure = |text: &str| -> u32 {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    // A long message takes the history past the trigger: the reply makes a
    // compaction due, which runs while the next line is awaited; its notice
    // is printed above the prompt, which is redrawn with the new figure.
    p.send_line(&support::words(120).concat()).unwrap();
    p.exp_string("You said:").unwrap();
    let (_, notice) = p.exp_regex(r"history at \d+% of budget").unwrap();
    let after = figure(&notice);
    let (_, redrawn) = p.exp_regex(r"default +\d+%> ").unwrap();
    assert_eq!(
        figure(&redrawn),
        after,
        "the prompt after the notice ({redrawn:?}) must show the notice's figure ({notice:?})"
    );
    assert!(after < 80, "{notice:?}; the session started at {first:?}");
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}
