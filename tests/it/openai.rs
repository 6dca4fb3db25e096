//! The real OpenAI client against a local server speaking the protocol:
//! streaming, non-streaming, errors, retries, lenient chunks; both through
//! the library and through the binary.

use std::time::Duration;

use crate::support::{FakeServer, Reply, Sandbox, text};
use futures::StreamExt;
use memchat::client::openai::{OpenAiModel, OpenAiSettings};
use memchat::client::{ChatMessage, ChatModel, ChatRequest, ClientError, Purpose, StreamEvent};
use memchat::memory::format::Role;

fn settings(url: &str, stream: bool) -> OpenAiSettings {
    OpenAiSettings {
        base_url: url.to_string(),
        api_key: Some("sk-test-key-123".into()),
        model: "gpt-4o-mini".into(),
        stream,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        max_retries: 2,
        retry_base: Duration::from_millis(10),
        retry_cap: Duration::from_millis(200),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "Be terse."),
            ChatMessage::new(Role::User, "Hi"),
        ],
        max_tokens: 100,
        sampling: Default::default(),
        purpose: Purpose::Reply,
    }
}

async fn collect(model: &OpenAiModel) -> Result<Vec<StreamEvent>, ClientError> {
    let mut stream = model.stream(request()).await?;
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event?);
    }
    Ok(events)
}

fn texts(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_reply_arrives_whole_and_in_order() {
    let server = FakeServer::start(vec![Reply::streamed(&["Hel", "lo", ", ", "Ana", "!"])]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let events = collect(&model).await.unwrap();
    assert_eq!(texts(&events), "Hello, Ana!");
    assert!(events.contains(&StreamEvent::Finished("stop".into())));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.prompt_tokens == 12))
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.body["max_tokens"], 100);
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert_eq!(sent.body["messages"][1]["content"], "Hi");
    assert!(
        sent.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer sk-test-key-123")
    );
}

#[tokio::test]
async fn a_non_streamed_reply_works() {
    let server = FakeServer::start(vec![Reply::completion("Hello there.")]);
    let model = OpenAiModel::new(settings(&server.url, false)).unwrap();
    let events = collect(&model).await.unwrap();
    assert_eq!(texts(&events), "Hello there.");
    assert!(events.contains(&StreamEvent::Finished("stop".into())));
    assert_eq!(server.requests()[0].body["stream"], false);
}

#[tokio::test]
async fn a_401_is_an_auth_error_and_is_not_retried() {
    let server = FakeServer::start(vec![Reply::error(
        401,
        "Incorrect API key provided",
        "invalid_api_key",
    )]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let error = collect(&model).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("OPENAI_API_KEY"));
    assert!(!error.to_string().contains("sk-test-key-123"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_then_reported_as_a_server_error() {
    let server = FakeServer::start(vec![Reply::Json {
        status: 500,
        body: "upstream exploded".into(),
        headers: vec![],
    }]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let error = collect(&model).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Server {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_then_succeeds() {
    let limited = Reply::Json {
        status: 429,
        body: r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#
            .into(),
        headers: vec![("retry-after".into(), "0".into())],
    };
    let server = FakeServer::start(vec![limited, Reply::streamed(&["ok"])]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let events = collect(&model).await.unwrap();
    assert_eq!(texts(&events), "ok");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_context_length_error_is_typed() {
    let server = FakeServer::start(vec![Reply::error(
        400,
        "This model's maximum context length is 128000 tokens.",
        "context_length_exceeded",
    )]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let error = collect(&model).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ContextTooLong { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn lenient_chunks_from_local_servers_keep_their_text() {
    // No id, no created, finish_reason "" mid-stream and "eos" at the end, a
    // malformed chunk in between.
    let events = vec![
        r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":""}]}"#.to_string(),
        "{not json".to_string(),
        r#"{"choices":[{"delta":{"content":" there"},"finish_reason":null}]}"#.to_string(),
        r#"{"choices":[{"delta":{},"finish_reason":"eos"}]}"#.to_string(),
    ];
    let server = FakeServer::start(vec![Reply::Stream {
        events,
        delay: Duration::ZERO,
        done: false,
    }]);
    let model = OpenAiModel::new(settings(&server.url, true)).unwrap();
    let events = collect(&model).await.unwrap();
    assert_eq!(texts(&events), "Hi there");
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Skipped(_))));
    assert!(events.contains(&StreamEvent::Finished("eos".into())));
}

#[tokio::test]
async fn a_trailing_slash_on_the_base_url_is_harmless() {
    let server = FakeServer::start(vec![Reply::streamed(&["ok"])]);
    let model = OpenAiModel::new(settings(&format!("{}/", server.url), true)).unwrap();
    collect(&model).await.unwrap();
    assert_eq!(server.requests()[0].path, "/v1/chat/completions");
}

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test-key-123");

#[test]
fn the_binary_streams_a_reply_and_saves_both_messages() {
    let server = FakeServer::start(vec![Reply::streamed(&[
        "Hello", " from", " the", " server.",
    ])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--base-url", &server.url, "Hi there"], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from the server.\n");
    let records = sandbox.records("default.jsonl");
    assert_eq!(records[1]["content"], "Hi there");
    assert_eq!(records[2]["content"], "Hello from the server.");
    assert_eq!(records[2]["model"], "gpt-4o-mini");
    assert_eq!(
        records[2]["usage"]["prompt_tokens"], 12,
        "the server's usage is kept"
    );
    assert_eq!(records[2]["usage"]["completion_tokens"], 3);
    // A second run sends the first exchange as context.
    let out = sandbox.run(&["--base-url", &server.url, "And again"], &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let second = &server.requests()[1].body["messages"];
    assert_eq!(second.as_array().unwrap().len(), 3);
    assert_eq!(second[0]["content"], "Hi there");
    assert_eq!(second[1]["content"], "Hello from the server.");
}

#[test]
fn the_binary_reports_401_and_500_with_exit_1_and_keeps_the_message() {
    for (reply, needle) in [
        (
            Reply::error(401, "Incorrect API key provided", "invalid_api_key"),
            "refused the API key",
        ),
        (
            Reply::Json {
                status: 500,
                body: "boom".into(),
                headers: vec![],
            },
            "server failed (HTTP 500)",
        ),
    ] {
        let server = FakeServer::start(vec![reply]);
        let sandbox = Sandbox::new();
        let out = sandbox.run(
            &["--base-url", &server.url, "--retries", "1", "Keep me"],
            &[KEY],
            None,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("sk-test-key-123"));
        let errors = stderr.lines().filter(|l| !l.contains("new session"));
        assert_eq!(errors.count(), 1, "one clear line: {stderr}");
        let records = sandbox.records("default.jsonl");
        assert_eq!(records.len(), 2, "header and the user's message");
        assert_eq!(records[1]["content"], "Keep me");
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error_and_the_message_stays() {
    // Bind then drop: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sandbox = Sandbox::new();
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = sandbox.run(
        &["--base-url", &url, "--retries", "1", "Still here?"],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the connection to the server at"),
        "{stderr}"
    );
    assert_eq!(
        sandbox.records("default.jsonl")[1]["content"],
        "Still here?"
    );
}

#[test]
fn a_local_server_needs_no_key() {
    let server = FakeServer::start(vec![Reply::streamed(&["local"])]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &server.url, "--model", "llama3.2", "hi"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "local\n");
    assert!(text(&out.stderr).contains("the context window of \"llama3.2\" is unknown"));
}

#[test]
fn context_length_exceeded_compacts_harder_and_retries_once() {
    let sandbox = Sandbox::new();
    // Some history first, offline.
    let script = (1..=8)
        .map(|i| format!("Earlier message {i} with a few words in it.\n"))
        .collect::<String>();
    let out = sandbox.run(&["--mock"], &[], Some(script.as_bytes()));
    assert_eq!(out.status.code(), Some(0));
    let server = FakeServer::start(vec![
        Reply::error(
            400,
            "This model's maximum context length is 128000 tokens.",
            "context_length_exceeded",
        ),
        Reply::streamed(&["fits now"]),
    ]);
    let out = sandbox.run(
        &["--base-url", &server.url, "--retries", "0", "One more"],
        &[KEY],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "fits now\n");
    assert!(stderr.contains("compacting harder"), "{stderr}");
    // Two reply requests (the first refused) around one summary request.
    let requests = server.requests();
    let replies: Vec<_> = requests
        .iter()
        .filter(|r| r.body["max_tokens"] == 4096)
        .collect();
    assert_eq!(replies.len(), 2, "exactly one retry");
    let first = replies[0].body["messages"].as_array().unwrap().len();
    let second = replies[1].body["messages"].as_array().unwrap().len();
    assert!(second < first, "the retry sends less: {first} → {second}");
    let log = sandbox.records("default.jsonl");
    assert!(log.iter().any(|r| r["type"] == "summary"));
}

#[test]
fn no_stream_waits_for_the_whole_reply() {
    let server = FakeServer::start(vec![Reply::completion("All at once.")]);
    let sandbox = Sandbox::new();
    let out = sandbox.run(
        &["--base-url", &server.url, "--no-stream", "hi"],
        &[KEY],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "All at once.\n");
    assert_eq!(server.requests()[0].body["stream"], false);
    assert_eq!(
        sandbox.records("default.jsonl")[2]["content"],
        "All at once."
    );
}
