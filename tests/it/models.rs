//! The model registry as the binary uses it: one name gives the window the
//! budget plans with, the notice for an unknown model, and the request
//! fields a reasoning model needs, whatever the name's case.

use crate::support::{FakeServer, Reply, Sandbox, text};

const KEY: (&str, &str) = ("OPENAI_API_KEY", "sk-test");

#[test]
fn reasoning_models_get_max_completion_tokens_whatever_the_case() {
    let replies = ["one", "two", "three"].map(|t| Reply::streamed(&[t]));
    let server = FakeServer::start(replies.to_vec());
    let sandbox = Sandbox::new();
    let mut stderrs = Vec::new();
    for model in ["O3-mini", "gpt-4o", "o1x"] {
        let args = ["--base-url", &server.url, "--model", model, "-s", "m", "hi"];
        let out = sandbox.run(&args, &[KEY], None);
        assert_eq!(out.status.code(), Some(0), "{model}: {}", text(&out.stderr));
        stderrs.push(text(&out.stderr));
    }
    let bodies: Vec<_> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 3);
    // O3-mini: a reasoning model (window 200k, so the reply reserve is 4096).
    assert_eq!(bodies[0]["model"], "O3-mini");
    assert_eq!(bodies[0]["max_completion_tokens"], 4096);
    assert!(bodies[0].get("max_tokens").is_none(), "{}", bodies[0]);
    assert!(bodies[0].get("temperature").is_none(), "{}", bodies[0]);
    // Nothing but the note of where the new session lives.
    assert!(
        stderrs[0]
            .lines()
            .all(|l| l.contains("new session \"m\" in")),
        "{}",
        stderrs[0]
    );
    // gpt-4o: a chat model.
    assert_eq!(bodies[1]["max_tokens"], 4096);
    assert!(bodies[1].get("max_completion_tokens").is_none());
    // o1x: not an o1; unknown, so the small default window (8192: R 2048)
    // and a notice, and plain `max_tokens`.
    assert_eq!(bodies[2]["max_tokens"], 2048);
    assert!(bodies[2].get("max_completion_tokens").is_none());
    assert!(
        stderrs[2].contains("the context window of \"o1x\" is unknown"),
        "{}",
        stderrs[2]
    );
}
