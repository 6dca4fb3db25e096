//! The daily-driver features through the real binary: the server's models
//! (`memchat models`, `/models`, the kept listing and its windows), reuse of
//! answers (`-x`, `/code`, `/copy` through a clipboard command and through
//! OSC 52), the editor (`/edit`, `/edit last`, Ctrl-X Ctrl-E), and usage
//! (`/usage`, `--show-usage`, `sessions --usage`, prices).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{self, FakeServer, Reply, Sandbox, text};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-key-123");

/// A `/v1/models` answer in the shapes of several servers.
fn listing() -> Reply {
    Reply::Json {
        status: 200,
        body: r#"{"object":"list","data":[
            {"id":"gpt-4o","object":"model","owned_by":"openai"},
            {"id":"local-llama","object":"model","max_model_len":32768},
            {"id":"router/qwen","context_length":131072}
        ]}"#
        .to_string(),
        headers: vec![],
    }
}

/// A reply with two code blocks.
const CODED: &[&str] = &[
    "Run this:\n```sh\necho one\n```\nthen\n",
    "```python\nprint(2)\n```\nDone.",
];

/// An executable script in the sandbox (a fake editor or clipboard).
fn script(sandbox: &Sandbox, name: &str, body: &str) -> PathBuf {
    let dir = sandbox.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `PATH` with the sandbox's `bin` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn models_lists_the_server_keeps_the_listing_and_sizes_unknown_models_by_it() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![listing()]);
    let out = sandbox.run(&["models", "--base-url", &server.url], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("local-llama  32768"), "{stdout}");
    assert!(stdout.contains("router/qwen  131072"), "{stdout}");
    assert!(
        stdout.contains("gpt-4o       128000 (memchat's table)"),
        "{stdout}"
    );
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/models");
    assert!(
        request
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer sk-test-key-123")
    );
    let kept = sandbox.memory().join(".models.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A model memchat does not know takes the window the server reported.
    let out = sandbox.run(
        &[
            "--print-config",
            "--base-url",
            &server.url,
            "-m",
            "local-llama",
        ],
        &[KEY],
        None,
    );
    let config = text(&out.stdout);
    assert!(
        config.contains("32768") && config.contains("the server's list of models"),
        "{config}"
    );
    // --context-limit still wins.
    let out = sandbox.run(
        &[
            "--print-config",
            "-m",
            "local-llama",
            "--context-limit",
            "9000",
        ],
        &[KEY],
        None,
    );
    assert!(!text(&out.stdout).contains("the server's list of models"));
}

#[test]
fn models_with_the_mock_lists_the_mock_and_keeps_nothing() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["models", "--mock"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("* mock"), "{stdout}");
    assert!(stdout.contains("the mock answers whatever model is named"));
    assert!(!sandbox.memory().join(".models.json").exists());
    // In the chat too.
    let out = sandbox.run(&["--mock"], &[], Some(b"/models\n"));
    assert!(text(&out.stdout).contains("1 model from mock"));
}

#[test]
fn a_server_refusing_the_listing_is_reported() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![Reply::error(401, "bad key", "invalid_api_key")]);
    let out = sandbox.run(&["models", "--base-url", &server.url], &[KEY], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused the API key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn extract_prints_only_the_code_and_saves_the_whole_reply() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![Reply::streamed(CODED)]);
    let out = sandbox.run(&["-x", "--base-url", &server.url, "how?"], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "echo one\n\nprint(2)\n");
    let records = sandbox.records("default.jsonl");
    let reply = records.last().unwrap()["content"].as_str().unwrap();
    assert!(reply.starts_with("Run this:") && reply.ends_with("Done."));
    // Without a prompt it would do nothing: refused.
    let out = sandbox.run(&["-x", "--mock"], &[], Some(b"hi\n"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn code_shows_blocks_and_copy_uses_a_clipboard_command() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![Reply::streamed(CODED)]);
    let clip = sandbox.dir.path().join("clipboard.txt");
    let xclip = script(&sandbox, "xclip", &format!("cat > '{}'", clip.display()));
    let bin = xclip.parent().unwrap();
    let out = sandbox.run(
        &["--base-url", &server.url],
        &[KEY, ("DISPLAY", ":9"), ("PATH", &path_with(bin))],
        Some(b"how?\n/code\n/code 2\n/code 1 copy\n/copy\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[1] sh\necho one\n[2] python\nprint(2)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[2] python\nprint(2)\nprint(2)\n"),
        "/code 2: {stdout}"
    );
    assert!(
        stdout.contains("copied to the clipboard (xclip)"),
        "{stdout}"
    );
    // The last copy wins: the whole reply.
    let copied = std::fs::read_to_string(&clip).unwrap();
    assert!(
        copied.starts_with("Run this:") && copied.ends_with("Done."),
        "{copied}"
    );
    // Out of range is refused, saying how many there are.
    let out = sandbox.run(&["--base-url", &server.url], &[KEY], Some(b"/code 3\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the last reply has 2 code blocks"));
}

#[test]
fn copy_on_a_terminal_without_a_clipboard_command_sends_osc_52() {
    let sandbox = Sandbox::new();
    let mut p = support::pty(&sandbox, &["--mock"], |command| {
        command.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    });
    support::editing(&mut p);
    p.send_line("hi").unwrap();
    support::editing(&mut p);
    p.send_line("/copy").unwrap();
    // base64 of `[mock] turn 1`, the reply's start.
    p.exp_string("\x1b]52;c;W21vY2tdIHR1cm4gM").unwrap();
    p.exp_string("sent to the terminal's clipboard").unwrap();
    support::editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn edit_composes_the_next_message_and_edit_last_resends_with_the_old_archived() {
    let sandbox = Sandbox::new();
    let editor = script(
        &sandbox,
        "fake-editor",
        r#"if [ -s "$1" ]; then sed -i 's/first/second/' "$1"; else printf 'first from the editor\n\n' > "$1"; fi"#,
    );
    let editor = editor.display().to_string();
    let out = sandbox.run(
        &["--mock"],
        &[("EDITOR", editor.as_str())],
        Some(b"/edit\n/edit last\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("You said: \"first from the editor\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("You said: \"second from the editor\""),
        "{stdout}"
    );
    let active: Vec<String> = sandbox
        .records("default.jsonl")
        .iter()
        .filter_map(|r| r["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(active.len(), 2, "{active:?}");
    assert_eq!(active[0], "second from the editor");
    let archived = sandbox.records("default.archive.jsonl");
    assert!(
        archived
            .iter()
            .any(|r| r["content"] == "first from the editor"),
        "the old exchange is in the archive"
    );
    // $VISUAL comes before $EDITOR; an editor leaving nothing sends nothing.
    let empty = script(&sandbox, "empty-editor", r#": > "$1""#);
    let empty = empty.display().to_string();
    let out = sandbox.run(
        &["--mock"],
        &[("VISUAL", empty.as_str()), ("EDITOR", editor.as_str())],
        Some(b"/edit\n"),
    );
    assert!(text(&out.stdout).contains("nothing was sent"));
    assert_eq!(sandbox.records("default.jsonl").len(), 3, "header + 2");
}

#[test]
fn ctrl_x_ctrl_e_opens_the_editor_on_the_line() {
    let sandbox = Sandbox::new();
    let editor = script(&sandbox, "fake-editor", r#"printf ' and more' >> "$1""#);
    let mut p = support::pty(&sandbox, &["--mock"], |command| {
        command.env("VISUAL", &editor);
    });
    support::editing(&mut p);
    p.send("a draft").unwrap();
    p.send_control('x').unwrap();
    p.send_control('e').unwrap();
    p.exp_string("You said: \"a draft and more\"").unwrap();
    support::editing(&mut p);
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn usage_is_shown_per_reply_per_session_and_priced_only_when_configured() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![Reply::streamed(&["one"])]);
    let config = sandbox.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[prices.\"gpt-4o-mini\"]\ninput = 1000000.0\noutput = 2000000.0\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let env = [KEY, ("MEMCHAT_CONFIG", config.as_str())];
    let out = sandbox.run(
        &["--show-usage", "--base-url", &server.url, "hi"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // 12 prompt tokens at $1 each, 3 completion tokens at $2.
    assert!(
        text(&out.stderr).contains("usage: 12 prompt + 3 completion tokens, $18.00"),
        "{}",
        text(&out.stderr)
    );
    let out = sandbox.run(&["--base-url", &server.url], &env, Some(b"again\n/usage\n"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("tokens    24 prompt + 6 completion = 30"),
        "{stdout}"
    );
    assert!(stdout.contains("turns     2 (2 with the server's usage report)"));
    assert!(stdout.contains("cost      $36.00"), "{stdout}");
    let out = sandbox.run(&["sessions", "--usage"], &env, None);
    let table = text(&out.stdout);
    assert!(
        table.contains("PROMPT  COMPLETION  TURNS  COMPACTED"),
        "{table}"
    );
    assert!(table.contains("$36.00"), "{table}");
    assert!(
        table.contains("  hi\n"),
        "the title is the first message: {table}"
    );
    // `show_usage = true` in the file does what --show-usage does.
    let with_flag = sandbox.dir.path().join("usage.toml");
    std::fs::write(&with_flag, "show_usage = true\n").unwrap();
    let with_flag = with_flag.display().to_string();
    let out = sandbox.run(
        &["--base-url", &server.url, "once more"],
        &[KEY, ("MEMCHAT_CONFIG", with_flag.as_str())],
        None,
    );
    assert!(
        text(&out.stderr).contains("usage: 12 prompt + 3 completion tokens\n"),
        "{}",
        text(&out.stderr)
    );
    // No prices: no cost, never a guess.
    let out = sandbox.run(&["sessions", "--usage"], &[], None);
    assert!(!text(&out.stdout).contains('$'));
}

#[test]
fn a_title_is_the_first_message_until_set_and_rename_keeps_it() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--mock", "-s", "plan"],
        &[],
        Some(b"Plan the move to Lisbon in spring\n/title\n/title  Lisbon   move \n/title\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("title: Plan the move to Lisbon in spring (its first message"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("title: Lisbon move\ntitle: Lisbon move\n"),
        "{stdout}"
    );
    // Recorded once, durably, in the session's settings.
    let log = std::fs::read_to_string(sandbox.memory().join("plan.jsonl")).unwrap();
    assert_eq!(log.matches(r#""title":"Lisbon move""#).count(), 1, "{log}");
    let out = sandbox.run(&["rename", "plan", "lisbon"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = sandbox.run(&["sessions"], &[], None);
    let table = text(&out.stdout);
    assert!(
        table.contains("lisbon ") && table.contains("  Lisbon move\n"),
        "{table}"
    );
    // An empty or overlong title is refused, and nothing is recorded.
    let long = format!("/title {}\n", "x".repeat(101));
    let out = sandbox.run(&["--mock", "-s", "lisbon"], &[], Some(long.as_bytes()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at most 100"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_first_summary_names_an_untitled_session_without_a_request_of_its_own() {
    let sandbox = Sandbox::new();
    let server = FakeServer::start(vec![Reply::streamed(&[
        "Ana plans the move.\nTitle: Lisbon move",
    ])]);
    let script: String = (0..40)
        .map(|i| format!("message {i} about the move with enough words to fill a small window\n"))
        .collect();
    let out = sandbox.run(
        &[
            "--base-url",
            &server.url,
            "-m",
            "gpt-4",
            "--context-limit",
            "1500",
        ],
        &[KEY],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summaries: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .is_some_and(|s| s.contains("long-term memory"))
        })
        .collect();
    assert!(!summaries.is_empty(), "no compaction happened");
    let asked = summaries
        .iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Title: ")
        })
        .count();
    assert_eq!(asked, 1, "only the first summary asks for a title");
    assert_eq!(
        server.requests().len(),
        40 + summaries.len(),
        "no request of its own"
    );
    let log = std::fs::read_to_string(sandbox.memory().join("default.jsonl")).unwrap();
    assert!(log.contains(r#""title":"Lisbon move""#), "{log}");
    // The first summary (the one that named the session) keeps no title
    // line; later ones did not ask for one and keep what the model wrote.
    let mut summaries = sandbox.records("default.archive.jsonl");
    summaries.extend(sandbox.records("default.jsonl"));
    summaries.retain(|r| r["type"] == "summary");
    summaries.sort_by_key(|r| r["seq"].as_u64());
    assert_eq!(summaries[0]["content"], "Ana plans the move.");
    let table = text(&sandbox.run(&["sessions"], &[], None).stdout);
    assert!(table.contains("  Lisbon move\n"), "{table}");
}

#[test]
fn a_stuck_clipboard_command_is_stopped_and_reported() {
    let sandbox = Sandbox::new();
    let xclip = script(&sandbox, "xclip", "exec sleep 60");
    let bin = xclip.parent().unwrap();
    let out = sandbox.run(
        &["--mock"],
        &[("DISPLAY", ":9"), ("PATH", &path_with(bin))],
        Some(b"hi\n/copy\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("xclip"),
        "the error names what was tried: {}",
        text(&out.stderr)
    );
}
