//! Failure recovery and the server's answers, through the real binary
//! against the fake server: a failed turn's message is sent once whatever
//! the user does next; `finish_reason` "length" and "content_filter" mark
//! the reply truncated; an error event inside a stream is the server's error,
//! classified; a missing key, a base URL without `/v1` and an unknown model
//! each get a hint.

use std::time::Duration;

use crate::support::{FakeServer, Reply, Sandbox, text, text_chunk};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-key-123");

fn plain_500() -> Reply {
    Reply::Plain {
        status: 500,
        body: "Internal Server Error".into(),
    }
}

/// The (role, content) pairs a request carried.
fn sent(server: &FakeServer, request: usize) -> Vec<(String, String)> {
    let requests = server.requests();
    requests[request].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(role: &str, content: &str) -> (String, String) {
    (role.to_string(), content.to_string())
}

/// (role, content) of the messages of the active log.
fn logged(sandbox: &Sandbox) -> Vec<(String, String)> {
    sandbox
        .records("default.jsonl")
        .iter()
        .filter(|r| r["type"] == "message")
        .map(|r| {
            (
                r["role"].as_str().unwrap().to_string(),
                r["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn after_a_failure_the_message_is_sent_once_whatever_comes_next() {
    let server = FakeServer::start(vec![
        plain_500(),
        Reply::streamed(&["one"]),
        plain_500(),
        Reply::streamed(&["two"]),
        Reply::streamed(&["three"]),
    ]);
    let sandbox = Sandbox::new();
    let run = |prompt: &str| {
        sandbox.run(
            &["--base-url", &server.url, "--retries", "0", prompt],
            &[KEY],
            None,
        )
    };
    // A failure names the way back: /retry, from the shell too.
    let failed = run("Hello");
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("memchat /retry"), "{stderr}");
    // Rerunning the same prompt sends it once and does not store it again.
    let rerun = run("Hello");
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun.stderr));
    assert!(text(&rerun.stderr).contains("already saved"));
    assert_eq!(sent(&server, 1), vec![pair("user", "Hello")]);
    assert_eq!(
        logged(&sandbox),
        vec![pair("user", "Hello"), pair("assistant", "one")]
    );
    // A different message after a failure: both are kept in the log, and
    // the request carries them as one user message (roles alternate).
    assert_eq!(run("Second").status.code(), Some(1));
    let next = run("Third");
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    let expected = vec![
        pair("user", "Hello"),
        pair("assistant", "one"),
        pair("user", "Second\n\nThird"),
    ];
    assert_eq!(sent(&server, 3), expected);
    // `memchat /retry` asks again for the same history.
    let retry = run("/retry");
    assert_eq!(retry.status.code(), Some(0), "{}", text(&retry.stderr));
    assert_eq!(text(&retry.stdout), "three\n");
    assert_eq!(sent(&server, 4), expected);
    assert_eq!(
        logged(&sandbox),
        vec![
            pair("user", "Hello"),
            pair("assistant", "one"),
            pair("user", "Second"),
            pair("user", "Third"),
            pair("assistant", "three"),
        ]
    );
}

fn stopped_stream(reason: &str) -> Reply {
    Reply::Stream {
        events: vec![
            text_chunk("The beginning"),
            format!(r#"{{"choices":[{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}]}}"#),
        ],
        delay: Duration::ZERO,
        done: true,
    }
}

#[test]
fn a_reply_stopped_by_the_server_is_saved_truncated_and_said() {
    for (reason, needle) in [
        ("length", "send \"continue\" for the rest"),
        ("content_filter", "content filter"),
    ] {
        let server = FakeServer::start(vec![stopped_stream(reason)]);
        let sandbox = Sandbox::new();
        let out = sandbox.run(&["--base-url", &server.url, "Tell me"], &[KEY], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(text(&out.stdout), "The beginning\n");
        assert!(stderr.contains(needle), "{reason}: {stderr}");
        assert!(stderr.contains("marked truncated"), "{reason}: {stderr}");
        let records = sandbox.records("default.jsonl");
        let reply = records.last().unwrap();
        assert_eq!(reply["content"], "The beginning");
        assert_eq!(reply["truncated"], true, "{reason}");
    }
}

fn stream_error(before: &[&str]) -> Reply {
    let mut events: Vec<String> = before.iter().map(|t| text_chunk(t)).collect();
    // LiteLLM's shape: the code a numeric string, the type "None".
    events.push(
        r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"None","param":"None","code":"429"}}"#
            .to_string(),
    );
    Reply::Stream {
        events,
        delay: Duration::ZERO,
        done: false,
    }
}

#[test]
fn an_error_event_in_a_stream_is_the_servers_error_classified() {
    // Before any text: reported like a 429 status, the message kept.
    let server = FakeServer::start(vec![stream_error(&[])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi"], &[KEY], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rate limited"), "{stderr}");
    assert!(stderr.contains("Rate limit reached for gpt-4o"), "{stderr}");
    assert!(!stderr.contains("connection closed"), "{stderr}");
    assert_eq!(logged(&sandbox), vec![pair("user", "Hi")]);
    // After some text: the partial reply is saved and the reason shown.
    let server = FakeServer::start(vec![stream_error(&["Half"])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi"], &[KEY], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Rate limit reached for gpt-4o"), "{stderr}");
    assert!(stderr.contains("partial reply is saved"), "{stderr}");
    let records = sandbox.records("default.jsonl");
    assert_eq!(records.last().unwrap()["interrupted"], true);
}

#[test]
fn a_plain_text_500_without_a_key_is_not_retried_and_says_no_key_was_sent() {
    // Default retries (3): without a key a server error is tried once.
    let server = FakeServer::start(vec![plain_500()]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi"], &[], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Internal Server Error"), "{stderr}");
    assert!(stderr.contains("no API key was sent"), "{stderr}");
    assert!(stderr.contains("not retried"), "{stderr}");
    assert!(stderr.contains("(HTTP 500) after 1 attempt:"), "{stderr}");
    assert_eq!(server.requests().len(), 1, "no retry without a key");

    // With a key, the same answer is retried, and no claim about the key.
    let server = FakeServer::start(vec![plain_500()]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &[
            "--base-url",
            &server.url,
            "--retries",
            "1",
            "--retry-base-ms",
            "1",
            "Hi",
        ],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("no API key"), "{stderr}");
    assert!(stderr.contains("(HTTP 500) after 2 attempts:"), "{stderr}");
    assert_eq!(server.requests().len(), 2);

    // Without a key, a server that asks to be retried (Retry-After) is.
    let busy = Reply::Json {
        status: 503,
        body: "busy".into(),
        headers: vec![("Retry-After".into(), "0".into())],
    };
    let server = FakeServer::start(vec![busy, Reply::streamed(&["fine"])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "fine");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_base_url_without_v1_gets_a_hint_to_add_it() {
    let server = FakeServer::start(vec![Reply::streamed(&["ok"])]);
    let base = server.url.strip_suffix("/v1").unwrap().to_string();
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &base, "Hi"], &[KEY], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(
        stderr.contains(&format!("try --base-url {base}/v1")),
        "{stderr}"
    );
    // The suggestion works.
    let out = sandbox.run(&["--base-url", &format!("{base}/v1"), "Hi"], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_unknown_model_gets_the_servers_text_and_a_hint() {
    let server = FakeServer::start(vec![Reply::error(
        404,
        "The model `gpt-9` does not exist or you do not have access to it.",
        "model_not_found",
    )]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &[
            "--base-url",
            &server.url,
            "--model",
            "gpt-9",
            "--context-limit",
            "8000",
            "Hi",
        ],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("The model `gpt-9` does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "check the model name \"gpt-9\" against the server's list of models ({}/models): \
             `memchat models` lists them",
            server.url
        )),
        "{stderr}"
    );
}

#[test]
fn an_interrupt_before_the_first_token_says_nothing_was_saved_of_a_reply() {
    for (signal, code, says) in [
        (
            "INT",
            130,
            "interrupted before the reply began; nothing to save",
        ),
        (
            "TERM",
            143,
            "no reply had begun, so there is no partial reply to save",
        ),
    ] {
        // The server takes the request and says nothing: no token comes.
        let server = FakeServer::start(vec![Reply::Silence(Duration::from_secs(30))]);
        let sandbox = Sandbox::new();
        let child = sandbox
            .command(&[
                "--base-url",
                &server.url,
                "--timeout",
                "60",
                "Are you there?",
            ])
            .env(KEY.0, KEY.1)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        crate::support::wait_until("the request", || !server.requests().is_empty());
        crate::support::send_signal(child.id(), signal);
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
        assert!(stderr.contains(says), "{signal}: {stderr}");
        assert!(
            !stderr.contains("partial reply is saved"),
            "{signal}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{signal}: {}", text(&out.stdout));
        let records = sandbox.records("default.jsonl");
        assert_eq!(
            records.len(),
            2,
            "{signal}: header and question: {records:?}"
        );
        assert_eq!(records[1]["content"], "Are you there?");
    }
}
