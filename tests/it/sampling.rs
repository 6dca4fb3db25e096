//! `--temperature`, `--top-p` and `--max-tokens` as the server receives
//! them: from the command line and the config file, left out for reasoning
//! models (with a notice), and a reply cap too large for the window refused
//! before anything is stored.

use crate::support::{FakeServer, Reply, Sandbox, text};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test");

#[test]
fn sampling_flags_reach_the_request_body() {
    let server = FakeServer::start(vec![Reply::streamed(&["ok"])]);
    let sandbox = Sandbox::new();
    let args = [
        "--base-url",
        &server.url,
        "--temperature",
        "0.3",
        "--top-p",
        "0.8",
        "--max-tokens",
        "300",
        "hi",
    ];
    let out = sandbox.run(&args, &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body = &server.requests()[0].body;
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["top_p"], 0.8);
    assert_eq!(body["max_tokens"], 300);
}

#[test]
fn the_config_file_sets_sampling_and_flags_override_it() {
    let server = FakeServer::start(vec![Reply::streamed(&["one"]), Reply::streamed(&["two"])]);
    let sandbox = Sandbox::new();
    let config = sandbox.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "temperature = 0.5\ntop_p = 0.25\nmax_tokens = 700\n",
    )
    .unwrap();
    let env = [KEY, ("MEMCHAT_CONFIG", config.to_str().unwrap())];
    let out = sandbox.run(&["--base-url", &server.url, "hi"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let args = ["--base-url", &server.url, "--temperature", "0", "again"];
    let out = sandbox.run(&args, &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bodies: Vec<_> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies[0]["temperature"], 0.5);
    assert_eq!(bodies[0]["top_p"], 0.25);
    assert_eq!(bodies[0]["max_tokens"], 700);
    assert_eq!(bodies[1]["temperature"], 0.0);
    assert_eq!(bodies[1]["top_p"], 0.25);
    let out = sandbox.run(&["--base-url", &server.url, "--print-config"], &env, None);
    let shown = text(&out.stdout);
    assert!(shown.contains("reply reserve R 700"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("max_tokens") && l.contains("700") && l.contains("config file")),
        "{shown}"
    );
}

#[test]
fn a_reasoning_model_gets_max_completion_tokens_and_no_sampling() {
    let server = FakeServer::start(vec![Reply::streamed(&["ok"])]);
    let sandbox = Sandbox::new();
    let args = [
        "--base-url",
        &server.url,
        "-m",
        "o3-mini",
        "--temperature",
        "0.3",
        "--top-p",
        "0.5",
        "--max-tokens",
        "900",
        "hi",
    ];
    let out = sandbox.run(&args, &[KEY], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body = &server.requests()[0].body;
    assert_eq!(body["max_completion_tokens"], 900);
    for absent in ["max_tokens", "temperature", "top_p"] {
        assert!(body.get(absent).is_none(), "{absent}: {body}");
    }
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("\"o3-mini\" is a reasoning model, which accepts no temperature or top_p; temperature and top_p not sent"),
        "{stderr}"
    );
}

#[test]
fn a_max_tokens_too_large_for_the_window_is_refused_before_anything_is_stored() {
    let sandbox = Sandbox::new();
    let args = ["--mock", "-m", "gpt-4", "--max-tokens", "8000", "hello"];
    let out = sandbox.run(&args, &[], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--max-tokens 8000 does not fit \"gpt-4\": its window is 8192 tokens"),
        "{stderr}"
    );
    assert!(stderr.contains("choose 1 to 7424"), "{stderr}");
    assert!(!stderr.contains("  "), "one space between words: {stderr}");
    assert!(!sandbox.memory().join("default.jsonl").exists());
    let out = sandbox.run(&["--mock", "--temperature", "1", "hello"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the mock model does not sample"));
    for (flag, value, range) in [
        ("--temperature", "3", "0 to 2"),
        ("--top-p", "1.5", "0 to 1"),
    ] {
        let args = ["--base-url", "http://127.0.0.1:9/v1", flag, value, "hello"];
        let out = sandbox.run(&args, &[], None);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(range), "{}", text(&out.stderr));
    }
}
