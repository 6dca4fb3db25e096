//! Roles (`[roles.NAME]`, `-r`, `/role`, `memchat roles`) and profiles
//! (`[profiles.NAME]`, `-p`): what reaches the server, what the session
//! keeps, what `--print-config` says supplied each value.

use crate::support::{FakeServer, Reply, Sandbox, text};

/// A sandbox with `config.toml` holding `toml`, and the variable naming it.
fn with_config(toml: &str) -> (Sandbox, String) {
    let sandbox = Sandbox::new();
    let path = sandbox.dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let path = path.to_str().unwrap().to_string();
    (sandbox, path)
}

const ROLES: &str = r#"
[roles.reviewer]
system = "You review code. Be blunt."
model = "gpt-4o"
temperature = 0.2
max_tokens = 600

[roles.terse]
prompt = "Answer in one line."
"#;

#[test]
fn a_role_sets_prompt_model_and_sampling_and_a_flag_beats_it() {
    let replies = ["one", "two", "three"].map(|t| Reply::streamed(&[t]));
    let server = FakeServer::start(replies.to_vec());
    let (sandbox, config) = with_config(ROLES);
    let env = [
        ("OPENAI_API_KEY", "sk-test"),
        ("MEMCHAT_CONFIG", config.as_str()),
    ];
    let out = sandbox.run(
        &["--base-url", &server.url, "-r", "reviewer", "hi"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let args = [
        "--base-url",
        &server.url,
        "--role",
        "reviewer",
        "--temperature",
        "0.9",
        "-s",
        "b",
        "hi",
    ];
    let out = sandbox.run(&args, &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bodies: Vec<_> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies[0]["model"], "gpt-4o");
    assert_eq!(bodies[0]["temperature"], 0.2);
    assert_eq!(bodies[0]["max_tokens"], 600);
    assert_eq!(bodies[0]["messages"][0]["role"], "system");
    assert_eq!(
        bodies[0]["messages"][0]["content"],
        "You review code. Be blunt."
    );
    assert_eq!(
        bodies[1]["temperature"], 0.9,
        "the command line beats the role"
    );
    // The session remembers its role: resumed without -r, the role's
    // sampling applies again (its prompt is in the session, its model in
    // the session's record).
    let out = sandbox.run(&["--base-url", &server.url, "again"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body = &server.requests()[2].body;
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_tokens"], 600);
    let log = std::fs::read_to_string(sandbox.memory().join("default.jsonl")).unwrap();
    let settings = log.lines().find(|l| l.contains(r#""type":"settings""#));
    assert!(
        settings.is_some_and(|l| l.contains(r#""role":"reviewer""#)),
        "{log}"
    );
    let records = sandbox.records("default.jsonl");
    assert_eq!(records[1]["content"], "You review code. Be blunt.");
    let out = sandbox.run(&["--mock", "-r", "reviewer", "--print-config"], &env, None);
    let shown = text(&out.stdout);
    for (setting, value) in [
        ("role", "reviewer"),
        ("model", "gpt-4o"),
        ("temperature", "0.2"),
    ] {
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("{setting} ")));
        let line = line.unwrap_or_else(|| panic!("no {setting}: {shown}"));
        assert!(line.contains(value), "{line}");
        let from = if setting == "role" {
            "(command line)"
        } else {
            "(role reviewer)"
        };
        assert!(line.ends_with(from), "{line}");
    }
}

#[test]
fn roles_are_listed_and_an_unknown_one_names_the_others() {
    let (sandbox, config) = with_config(ROLES);
    let env = [("MEMCHAT_CONFIG", config.as_str())];
    let out = sandbox.run(&["roles"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "reviewer  [model gpt-4o, temperature 0.2, max_tokens 600] You review code. Be blunt.\n\
         terse     Answer in one line.\n"
    );
    let out = sandbox.run(&["--mock", "-r", "critic", "hi"], &env, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("no role \"critic\" in the config file; its roles: reviewer, terse"),
        "{}",
        text(&out.stderr)
    );
    assert!(!sandbox.memory().join("default.jsonl").exists());
    let out = sandbox.run(&["roles"], &[], None);
    assert!(
        text(&out.stdout).starts_with("no roles"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_role_command_switches_prompt_and_archives_the_old_one() {
    let (sandbox, config) = with_config(ROLES);
    let env = [("MEMCHAT_CONFIG", config.as_str())];
    let script = b"/role\n/role terse\nhello\n/role reviewer\n/role nobody\n";
    let out = sandbox.run(&["--mock", "-r", "reviewer"], &env, Some(script));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "reviewer: model gpt-4o, temperature 0.2, top_p server default, max_tokens 600"
        ),
        "{stdout}"
    );
    // terse sets no sampling: the run's own apply, not reviewer's.
    assert!(
        stdout.contains(
            "role: terse: model gpt-4o, temperature server default, top_p server default, \
             max_tokens 4096"
        ),
        "{stdout}"
    );
    // The unknown role stops the script (a refusal), naming the others.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("its roles: reviewer, terse"));
    let records = sandbox.records("default.jsonl");
    let system: Vec<_> = records.iter().filter(|r| r["role"] == "system").collect();
    assert_eq!(system.len(), 1);
    assert_eq!(system[0]["content"], "You review code. Be blunt.");
    let archive = sandbox.records("default.archive.jsonl");
    assert!(
        archive
            .iter()
            .any(|r| r["content"] == "Answer in one line."),
        "{archive:?}"
    );
}

#[test]
fn a_profile_supplies_server_model_and_window_and_its_own_key() {
    let server = FakeServer::start(vec![Reply::streamed(&["a"]), Reply::streamed(&["b"])]);
    let toml = format!(
        "profile = \"local\"\n\
         [profiles.local]\nbase_url = \"{url}\"\nmodel = \"llama3\"\ncontext_limit = 16000\n\
         [profiles.work]\nbase_url = \"{url}/\"\napi_key_env = \"WORK_KEY\"\n",
        url = server.url
    );
    let (sandbox, config) = with_config(&toml);
    // An ambient OPENAI_BASE_URL does not beat the chosen profile, and the
    // OpenAI key is not sent to a profile that names no key variable.
    let env = [
        ("OPENAI_API_KEY", "sk-openai-secret"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("MEMCHAT_CONFIG", config.as_str()),
    ];
    let out = sandbox.run(&["hi"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let work_env = [env[0], env[1], env[2], ("WORK_KEY", "sk-work-key")];
    let out = sandbox.run(&["-p", "work", "-s", "w", "hi"], &work_env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let requests = server.requests();
    assert_eq!(requests[0].body["model"], "llama3");
    // A 16000 window: R = 4000.
    assert_eq!(requests[0].body["max_tokens"], 4000);
    let auth = |i: usize| {
        requests[i]
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(!auth(0).contains("sk-openai-secret"), "{}", auth(0));
    assert_eq!(auth(1), "Bearer sk-work-key");
    assert_eq!(requests[1].body["model"], "gpt-4o-mini");
    // --print-config says which profile supplied what.
    let out = sandbox.run(&["-p", "work", "--print-config"], &work_env, None);
    let shown = text(&out.stdout);
    let line = |setting: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{setting} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("profile").ends_with("(command line)"), "{shown}");
    assert!(line("base_url").ends_with("(profile work)"), "{shown}");
    assert!(line("api_key").contains("(set)"), "{shown}");
    assert!(
        line("api_key").ends_with("(environment WORK_KEY (profile work))"),
        "{shown}"
    );
    assert!(!shown.contains("sk-work-key"));
    let out = sandbox.run(&["--print-config"], &env, None);
    let shown = text(&out.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("profile ") && l.contains("local") && l.contains("config file")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("context_limit ") && l.ends_with("(profile local)")),
        "{shown}"
    );
    // The profile's key variable unset: the chat stops, naming it.
    let out = sandbox.run(&["-p", "work", "hi"], &env, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("profile work reads it from WORK_KEY, which is not set"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_key_written_in_a_profile_is_refused() {
    let (sandbox, config) = with_config("[profiles.x]\napi_key = \"sk-abc\"\n");
    let out = sandbox.run(
        &["--mock", "-p", "x", "hi"],
        &[("MEMCHAT_CONFIG", &config)],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("never reads a key from a file"));
    assert!(!text(&out.stderr).contains("sk-abc"));
}

#[test]
fn completion_offers_role_and_profile_names() {
    let (sandbox, config) = with_config(&format!("{ROLES}\n[profiles.local]\n[profiles.work]\n"));
    for (words, expected) in [
        (&["-r", ""][..], &["reviewer", "terse"][..]),
        (&["--profile", ""], &["local", "work"]),
    ] {
        let mut command = sandbox.command(&["--"]);
        command
            .arg("memchat")
            .args(words)
            .env("MEMCHAT_CONFIG", &config)
            .env("_MEMCHAT_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
            .env("_CLAP_IFS", "\n");
        let out = command.output().unwrap();
        let got: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(got, expected, "{words:?}");
    }
}
