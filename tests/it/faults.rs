//! Faults and bad input, tried for real: a full disk (file size limit), a
//! memory directory that is a file, two processes on one session, a server
//! that goes silent or cuts the stream, huge and binary input, Ctrl-C in
//! one-shot and script modes, private file modes, and the API key never
//! leaking. In every case: a clear message, the right exit code, and the log
//! intact.

use crate::support;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Capture, FakeServer, Reply, Sandbox, skip, text, wait_until};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-leak-canary-7f3a9");

#[test]
fn a_full_disk_is_a_clear_error_and_the_log_stays_as_it_was() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "first turn"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let log = sandbox.memory().join("default.jsonl");
    let before = std::fs::read(&log).unwrap();
    // The shell's file size limit (in 512-byte blocks) lets the log reach the
    // next block boundary, not much more: a 4 KB message cannot be appended.
    let blocks = before.len().div_ceil(512);
    let big = "word ".repeat(800);
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            &format!("ulimit -f {blocks}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_memchat"),
            "--mock",
            &big,
        ])
        .env("MEMCHAT_MEMORY_DIR", sandbox.memory())
        .env("NO_COLOR", "1")
        .env_remove("OPENAI_API_KEY")
        .current_dir(sandbox.dir.path())
        .stdin(Stdio::null());
    let out = command.output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot write to") && stderr.contains("default.jsonl"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the log is exactly as before"
    );
    // And the session still works once there is room.
    let out = sandbox.run(&["--mock", "after the disk was freed"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_memory_dir_that_is_a_file_is_a_store_error() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = sandbox.run(
        &["--mock", "--memory-dir", file.to_str().unwrap(), "hi"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("not a directory"),
        "{}",
        text(&out.stderr)
    );
    // A missing parent is simply created, privately.
    let nested = sandbox.dir.path().join("a/b/c");
    let out = sandbox.run(
        &["--mock", "--memory-dir", nested.to_str().unwrap(), "hi"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_second_process_on_the_same_session_waits_then_fails_naming_it() {
    let sandbox = Sandbox::new();
    // The first process holds the session while it waits on a server that
    // never answers: it holds the lock until it is killed.
    let server = FakeServer::start(vec![Reply::Silence(Duration::from_secs(120))]);
    let mut first = sandbox
        .command(&[
            "--base-url",
            &server.url,
            "--retries",
            "0",
            "a slow reply please",
        ])
        .env(KEY.0, KEY.1)
        .spawn()
        .unwrap();
    // The request is sent after the lock is taken and the message appended.
    wait_until("the first process to send its request", || {
        !server.requests().is_empty()
    });
    let log = sandbox.memory().join("default.jsonl");
    let before = std::fs::read(&log).unwrap();
    let started = Instant::now();
    let second = sandbox.run(&["--mock", "me too"], &[("MEMCHAT_LOCK_WAIT", "1")], None);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("session \"default\" is in use"), "{stderr}");
    // A lower bound only: a slow machine makes it longer, never shorter.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited first"
    );
    // Repair is refused too rather than racing the writer.
    let repair = sandbox.run(&["repair", "default"], &[("MEMCHAT_LOCK_WAIT", "1")], None);
    let stderr = text(&repair.stderr);
    assert_eq!(repair.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("session \"default\" is in use"), "{stderr}");
    assert_eq!(std::fs::read(&log).unwrap(), before, "nothing was written");
    // Another session runs in parallel freely.
    let other = sandbox.run(&["--mock", "--session", "other", "parallel"], &[], None);
    assert_eq!(other.status.code(), Some(0), "{}", text(&other.stderr));
    assert!(first.try_wait().unwrap().is_none(), "the first still runs");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_silent_server_times_out_and_the_message_stays() {
    let server = FakeServer::start(vec![Reply::Silence(Duration::from_secs(5))]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &[
            "--base-url",
            &server.url,
            "--timeout",
            "1",
            "--retries",
            "0",
            "anyone there?",
        ],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("went silent") || stderr.contains("timed out"),
        "{stderr}"
    );
    assert_eq!(
        sandbox.records("default.jsonl")[1]["content"],
        "anyone there?"
    );
}

#[test]
fn a_stream_cut_in_the_middle_keeps_the_partial_reply_marked_interrupted() {
    let events = vec![
        support::text_chunk("The answer"),
        support::text_chunk(" is"),
    ];
    let server = FakeServer::start(vec![Reply::Stream {
        events,
        delay: Duration::ZERO,
        done: false,
    }]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "question"], &[KEY], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(text(&out.stdout), "The answer is\n");
    assert!(
        stderr.contains("closed before the reply was finished"),
        "{stderr}"
    );
    let records = sandbox.records("default.jsonl");
    assert_eq!(records[1]["content"], "question");
    assert_eq!(records[2]["content"], "The answer is");
    assert_eq!(records[2]["interrupted"], true);
}

#[test]
fn retries_never_show_text_twice() {
    // Two 503s, then a good stream: the text appears once.
    let server = FakeServer::start(vec![
        Reply::Json {
            status: 503,
            body: "busy".into(),
            headers: vec![],
        },
        Reply::Json {
            status: 503,
            body: "busy".into(),
            headers: vec![],
        },
        Reply::streamed(&["once"]),
    ]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "hi"], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "once\n");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_ten_megabyte_line_is_refused_before_anything_is_written() {
    let sandbox = Sandbox::new();
    let mut input = "x".repeat(10 * 1024 * 1024);
    input.push('\n');
    let out = sandbox.run(&["--mock"], &[], Some(input.as_bytes()));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was saved"), "{stderr}");
    // Nothing at all: a new log's header waits for its first record.
    assert_eq!(sandbox.records("default.jsonl").len(), 0, "nothing written");
}

#[test]
fn binary_stdin_is_refused_clearly() {
    let sandbox = Sandbox::new();
    let garbage: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x01, b'\n', 0xc3, 0x28];
    let out = sandbox.run(&["--mock", "-"], &[], Some(&garbage));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let out = sandbox.run(&["--mock"], &[], Some(&garbage));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 1 is not UTF-8"),
        "{}",
        text(&out.stderr)
    );
    // Control characters are text: they are stored and round-trip.
    let out = sandbox.run(&["--mock", "bell\u{7} and escape\u{1b}[31m"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        sandbox.records("default.jsonl")[1]["content"],
        "bell\u{7} and escape\u{1b}[31m"
    );
}

#[test]
fn bad_flags_and_names_are_usage_errors() {
    let sandbox = Sandbox::new();
    for args in [
        vec!["--no-such-flag"],
        vec!["--mock", "--session", "../etc", "hi"],
        vec!["--mock", "--session", &"x".repeat(300), "hi"],
        vec!["--mock", "--context-limit", "12", "hi"],
        vec!["--mock", "--context-limit", "lots", "hi"],
        vec!["--base-url", "ftp://nope", "hi"],
    ] {
        let out = sandbox.run(&args, &[KEY], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn ctrl_c_in_one_shot_and_script_modes_saves_the_partial_reply_and_exits_130() {
    for stdin in [None, Some("a long reply please\nnever sent\n")] {
        let sandbox = Sandbox::new();
        // 200 ms a word: the mock reply (a dozen words) is still streaming
        // for seconds after its first word.
        let mut command = match stdin {
            None => sandbox.command(&["--mock", "--mock-delay-ms", "200", "a long reply please"]),
            Some(_) => sandbox.command(&["--mock", "--mock-delay-ms", "200"]),
        };
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        if let Some(script) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
        }
        let stdout = Capture::start(child.stdout.take().unwrap());
        let stderr = Capture::start(child.stderr.take().unwrap());
        // The handler is installed before the turn starts: once the reply
        // streams, Ctrl-C is data, not death.
        stdout.wait_for("[mock]");
        support::send_signal(child.id(), "INT");
        let status = child.wait().unwrap();
        let (stdout, stderr) = (stdout.finish(), stderr.finish());
        assert_eq!(status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        let records = sandbox.records("default.jsonl");
        assert_eq!(
            records.len(),
            3,
            "header, question, partial reply: {records:?}"
        );
        assert_eq!(records[1]["content"], "a long reply please");
        assert_eq!(records[2]["interrupted"], true);
        let partial = records[2]["content"].as_str().unwrap();
        assert!(
            !partial.is_empty() && stdout.starts_with(partial),
            "the saved text {partial:?} is what was shown: {stdout:?}"
        );
    }
}

#[test]
fn every_file_is_private_and_the_key_never_leaks() {
    let server = FakeServer::start(vec![
        Reply::error(
            401,
            "Incorrect API key provided: sk-leak-canary-7f3a9",
            "invalid_api_key",
        ),
        Reply::streamed(&["ok"]),
    ]);
    let sandbox = Sandbox::new();
    // A compaction (archive), a torn line (quarantine), a refused key.
    let script: String = (0..30)
        .map(|i| format!("message {i} with some words to fill the window up\n"))
        .collect();
    let out = sandbox.run(
        &["--mock", "--context-limit", "1500"],
        &[KEY],
        Some(script.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0));
    let log = sandbox.memory().join("default.jsonl");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, b"{\"type\":\"mess").unwrap();
    let out = sandbox.run(&["--base-url", &server.url, "hello"], &[KEY], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("sk-leak-canary-7f3a9"),
        "the key leaked into an error: {stderr}"
    );
    assert!(!text(&out.stdout).contains("sk-leak-canary-7f3a9"));
    let dir = sandbox.memory();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
        let bytes = std::fs::read(entry.path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("sk-leak-canary"),
            "the key is in {name}"
        );
        names.push(name);
    }
    names.sort();
    assert!(
        names.iter().any(|n| n.ends_with(".archive.jsonl")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains(".corrupt-")), "{names:?}");
}

/// Runs memchat as an unprivileged user when the tests run as root (root
/// ignores file modes), so an unwritable memory directory really is one.
fn unprivileged(
    sandbox: &Sandbox,
    dir: &std::path::Path,
    args: &[&str],
) -> Option<std::process::Output> {
    // This process owns its /proc entry: its uid, without a libc binding.
    let is_root =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let mut command = if is_root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            return None;
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_memchat"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_memchat"))
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.dir.path())
        .env("MEMCHAT_MEMORY_DIR", dir)
        .env("NO_COLOR", "1")
        .current_dir("/")
        .stdin(Stdio::null());
    Some(command.output().unwrap())
}

#[test]
fn a_read_only_memory_dir_is_a_clear_error_and_nothing_changes() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "written while writable"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let dir = sandbox.memory();
    // World-traversable path, read-only memory dir and log.
    std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let log = dir.join("default.jsonl");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o444)).unwrap();
    // The directory is the unprivileged user's own (memchat refuses anyone
    // else's), only read-only. As a non-root user this chown fails and the
    // directory is already the runner's.
    for path in [&dir, &log] {
        let _ = std::os::unix::fs::chown(path, Some(65534), Some(65534));
    }
    let before = std::fs::read(&log).unwrap();
    let Some(out) = unprivileged(&sandbox, &dir, &["--mock", "cannot be written"]) else {
        skip(
            "faults::a_read_only_memory_dir_is_a_clear_error_and_nothing_changes",
            "running as root and setpriv (util-linux) is missing, so no second uid to test with",
        );
        return;
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("Permission denied") || stderr.contains("permission denied"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&dir.display().to_string()),
        "the error names the path: {stderr}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

#[test]
fn ctrl_c_while_the_summary_is_awaited_keeps_the_reply_and_the_log_whole() {
    let sandbox = Sandbox::new();
    support::fill_small_window(&sandbox);
    let before = sandbox.records("default.jsonl").len();
    // The reply comes at once; the summary request then hangs.
    let long = support::words(60);
    let server = FakeServer::start(vec![
        Reply::streamed(&long),
        Reply::Silence(Duration::from_secs(20)),
    ]);
    let child = sandbox
        .command(&[
            "--base-url",
            &server.url,
            "--model",
            "gpt-4",
            "--context-limit",
            "1500",
            "one more",
        ])
        .env("OPENAI_API_KEY", "sk-test")
        .spawn()
        .unwrap();
    // Wait until the summary request has arrived, then interrupt.
    wait_until("the summary request", || server.requests().len() >= 2);
    assert_eq!(server.requests().len(), 2, "the summary was requested");
    support::send_signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("compaction postponed"), "{stderr}");
    let records = sandbox.records("default.jsonl");
    assert_eq!(
        records.len(),
        before + 2,
        "the question and the whole reply were saved"
    );
    assert_eq!(records.last().unwrap()["content"], long.concat());
    assert!(records.last().unwrap().get("interrupted").is_none());
}
