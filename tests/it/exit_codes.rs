//! One test per documented exit status, through the real binary: 0 success
//! (a reader that went away included), 1 the model failed or the output
//! could not be written, 2 usage, 3 the memory store, 130 interrupted.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use crate::support::{Sandbox, SilentServer, refused_port, text};

/// Starts the binary with `stdout` as given and `stdin` fed in, to the end.
fn run_into(sandbox: &Sandbox, args: &[&str], stdout: Stdio, stdin: &str) -> Output {
    let mut command = sandbox.command(args);
    command.stdin(Stdio::piped()).stdout(stdout);
    let mut child: Child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // The binary may stop reading early; that is not this test's concern.
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A pipe whose reading end is already closed: every write to it fails with
/// a broken pipe, at once and every time.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

#[test]
fn zero_for_a_finished_turn() {
    let out = Sandbox::new().run(&["--mock", "hello"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[mock] turn 1"));
}

#[test]
fn zero_when_the_reader_goes_away() {
    let sandbox = Sandbox::new();
    // Command output (script mode) into a closed pipe: once exit 2.
    let out = run_into(&sandbox, &["--mock"], closed_pipe(), "/help\n/tokens\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("error"),
        "a reader that went away is no error: {}",
        text(&out.stderr)
    );
    // A management command likewise.
    let out = run_into(&sandbox, &["sessions"], closed_pipe(), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn one_when_the_model_cannot_be_reached() {
    let out = Sandbox::new().run(
        &[
            "--base-url",
            "http://127.0.0.1:1/v1",
            "--retries",
            "0",
            "hello",
        ],
        &[("OPENAI_API_KEY", "sk-test")],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("your message is saved"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn one_when_the_output_cannot_be_written() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        crate::support::skip(
            "exit_codes::one_when_the_output_cannot_be_written",
            "/dev/full is missing on this machine",
        );
        return;
    }
    let device = std::fs::OpenOptions::new().write(true).open(full).unwrap();
    let out = run_into(&Sandbox::new(), &["--mock"], device.into(), "/help\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot write the output"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn two_for_usage_errors() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "--session", "../etc", "hi"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = sandbox.run(&["--no-such-flag"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // A system prompt that cannot fit the budget is refused, nothing written.
    let huge = "word ".repeat(2000);
    let args = ["--mock", "--context-limit", "1024", "--system", &huge, "hi"];
    let out = sandbox.run(&args, &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the system prompt needs"),
        "{}",
        text(&out.stderr)
    );
    let log = std::fs::read_to_string(sandbox.memory().join("default.jsonl")).unwrap();
    assert!(!log.contains("word word"), "the prompt was written: {log}");
    assert!(!log.contains("\"hi\""), "the message was sent: {log}");
}

#[test]
fn three_for_a_corrupt_store() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "first"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = sandbox.memory().join("default.jsonl");
    let mut content = std::fs::read_to_string(&log).unwrap();
    let after_header = content.find('\n').unwrap() + 1;
    content.insert_str(after_header, "{not json\n");
    std::fs::write(&log, content).unwrap();
    let out = sandbox.run(&["--mock", "second"], &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("default.jsonl:2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn three_for_a_bad_store_url_named_once_and_masked() {
    for (url, why) in [
        ("postgres://ana:topsecret@h:notaport/db", "port"),
        ("postgres://ana:topsecret@h/db?sslmode=sometimes", "sslmode"),
    ] {
        let out = Sandbox::new().run(&["--mock", "hi"], &[("MEMCHAT_STORE", url)], None);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert_eq!(
            stderr.matches("ana:***@h").count(),
            1,
            "the URL once, masked: {stderr}"
        );
        assert!(!stderr.contains("topsecret"), "{stderr}");
        assert!(stderr.contains(why), "what is wrong: {stderr}");
    }
}

/// Passwords written as the connection reads them but an earlier mask
/// did not (red team): a raw `/`, `?`, `#` or space in the user part, a
/// percent-encoded parameter name, a value with `#` or a space, a
/// mistyped scheme, and a config file TOML cannot parse, which quotes the
/// line. None is shown, by any command, in any output.
#[test]
fn no_spelling_of_a_password_is_ever_shown() {
    let sandbox = Sandbox::new();
    for url in [
        "postgres://ana:s3cr/et@127.0.0.1:1/db",
        "postgres://ana:s3cr?et@127.0.0.1:1/db",
        "postgres://ana:s3cr#et@127.0.0.1:1/db",
        "postgres://ana:s3cr et@127.0.0.1:1/db",
        "postgres://127.0.0.1:1/db?user=ana&pass%77ord=s3cret",
        "postgres://127.0.0.1:1/db?user=ana&password=s3#cret",
        "postgres://127.0.0.1:1/db?user=ana&password=s3cr et",
        "postgres://127.0.0.1:1/db?user=ana&PASSWORD=s3cret",
        "postgres:/ana:s3cret@127.0.0.1:1/db",
    ] {
        for args in [&["--mock", "hi"][..], &["--print-config"], &["sessions"]] {
            let out = sandbox.run(args, &[("MEMCHAT_STORE", url)], None);
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            for secret in ["s3cr", "et@", "cret"] {
                assert!(!shown.contains(secret), "{url} {args:?}: {shown}");
            }
        }
    }
    let config = sandbox.dir.path().join("home/config/memchat");
    std::fs::create_dir_all(&config).unwrap();
    for line in [
        "store = \"postgres://ana:s3cret@127.0.0.1:1/db",
        "store = \"postgres://ana:s3cret@127.0.0.1:1/db\" trailing",
        "store = [\"postgres://ana:s3cret@127.0.0.1:1/db\"]",
        "store = \"postgres://ana:s3 cret@127.0.0.1:1/db\" trailing",
        "store = \"postgres://ana:s3'cret@127.0.0.1:1/db",
        "context_limit = \"postgres://ana:s3 cret@127.0.0.1:1/db\"",
    ] {
        std::fs::write(config.join("config.toml"), format!("{line}\n")).unwrap();
        let out = sandbox.run(&["--mock", "hi"], &[], None);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("s3") && !stderr.contains("cret"),
            "{stderr}"
        );
    }
    std::fs::remove_file(config.join("config.toml")).unwrap();
    let out = sandbox.run(&["import", "postgres://ana:s3 cret@h/db"], &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("s3"), "{}", text(&out.stderr));
}

#[test]
fn one_thirty_for_ctrl_c() {
    let sandbox = Sandbox::new();
    let mut child = sandbox
        .command(&["--mock", "--mock-delay-ms", "100", "a long reply please"])
        .spawn()
        .unwrap();
    // The Ctrl-C handler is registered before the turn starts, so once the
    // first word of the reply is out SIGINT is the handler's; the rest of the
    // reply takes another second and more.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    assert_eq!(stdout.read(&mut first).unwrap(), 1, "no reply came");
    crate::support::send_signal(child.id(), "INT");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("interrupted"),
        "{}",
        text(&out.stderr)
    );
}

/// The signal handlers' thread starts while the store opens, and the
/// handlers are registered only when the turn can begin: a Ctrl-C before
/// that (here while a server accepts the connection and never answers)
/// kills memchat at once, as it kills any program (a shell loop stops on
/// it), instead of waiting out the connection's timeout; nothing was sent
/// or stored.
#[test]
fn ctrl_c_while_the_store_connects_kills_memchat_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = std::thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let sandbox = Sandbox::new();
    let url = format!("postgres://someone@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=20");
    let mut child = sandbox
        .command(&["--mock", "--store", &url, "hello"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Held until memchat has connected and waits for the server's answer.
    let _held = silent.join().unwrap().unwrap();
    crate::support::send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(2), "killed by SIGINT: {status:?}");
}

/// Something that accepts the connection and never answers (a hung server,
/// a wrong port) is a store error once the connect timeout has passed, not
/// a wait without end: the timeout bounds the whole start-up, not only the
/// socket's connect.
#[test]
fn a_server_that_never_answers_is_a_store_error_after_the_connect_timeout() {
    let silent = SilentServer::start();
    let sandbox = Sandbox::new();
    let url = format!(
        "postgres://someone@127.0.0.1:{}/db?sslmode=disable&connect_timeout=1",
        silent.port
    );
    let out = sandbox.run(&["--mock", "--store", &url, "hello"], &[], None);
    let accepted = silent.finish();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the server: no answer within 1s"),
        "{}",
        text(&out.stderr)
    );
    // The start-up attempt's failure is the error: no second attempt (and
    // no second wait) before it is reported.
    assert_eq!(accepted, 1, "connections memchat opened");
}

/// A host list where every host fails: each host is named with its own
/// reason, on one line (the one that matters may not be the last).
#[test]
fn a_host_list_that_fails_names_each_host_and_why() {
    let silent = SilentServer::start();
    let silent_port = silent.port;
    let refused = refused_port();
    let sandbox = Sandbox::new();
    let url = format!(
        "postgres://someone:hunter2@127.0.0.1:{silent_port},127.0.0.1:{refused}/db?sslmode=disable&connect_timeout=1"
    );
    let out = sandbox.run(&["--mock", "--store", &url, "hello"], &[], None);
    assert_eq!(silent.finish(), 1);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    for part in [
        "no host of the list could be used".to_string(),
        format!("127.0.0.1:{silent_port}: cannot reach the server: no answer within 1s"),
        format!("127.0.0.1:{refused}: cannot reach the server:"),
    ] {
        assert!(stderr.contains(&part), "{part:?} in {stderr}");
    }
    // Two sockets that are not there: each host names its own.
    let url = "postgres://someone@/db?host=/nonexistent-a,/nonexistent-b&port=5999";
    let out = sandbox.run(&["--mock", "--store", url, "hello"], &[], None);
    let stderr = text(&out.stderr);
    for (host, other) in [("a", "b"), ("b", "a")] {
        let own = format!(
            "/nonexistent-{host}:5999: cannot reach the server: No such file or directory \
             (os error 2) (no server socket at /nonexistent-{host}/.s.PGSQL.5999)"
        );
        assert!(stderr.contains(&own), "{own:?} in {stderr}");
        let wrong = format!("{host}/.s.PGSQL.5999, /nonexistent-{other}");
        assert!(!stderr.contains(&wrong), "{stderr}");
    }
}

/// `target_session_attrs=read-write` on a server that accepts no writes
/// (here: every transaction read-only): the server was reached and refused,
/// which is not "cannot reach the server".
#[test]
fn a_read_only_server_refused_by_target_session_attrs_says_so() {
    let Some(base) = crate::pg_server::test_server_url("exit_codes::a_read_only_server") else {
        return;
    };
    let url = crate::pg_store::with_param(
        &base,
        "options=-cdefault_transaction_read_only%3Don&target_session_attrs=read-write",
    );
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--mock", "--store", &url, "hello"], &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the server accepts no writes"), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

/// A bad flag fails at once, before stdin is read: fed by a pipe that stays
/// open (`tail -f log | memchat -r typo "watch this"`), memchat must not
/// wait for its end to say so. With `--continue` too, which reads the
/// prompt before it opens the store.
#[test]
fn two_for_a_bad_flag_without_waiting_for_stdin() {
    let sandbox = Sandbox::new();
    for args in [
        &["--mock", "-r", "typo", "watch this"][..],
        &["--mock", "-c", "-r", "typo", "watch this"],
        &["--mock", "-c", "--context-limit", "10", "watch this"],
    ] {
        let mut child = sandbox
            .command(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The pipe's writing end stays open until the check is done.
        let pipe = child.stdin.take().unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{args:?}: still waiting on stdin after 20 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        drop(pipe);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("memchat: error:"), "{args:?}: {stderr}");
    }
    // Nothing was opened for the refused runs.
    assert!(!sandbox.memory().join("default.jsonl").exists());
}
