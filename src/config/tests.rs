//! Unit tests of the configuration: precedence, provenance, checks.

use super::*;

fn args() -> ChatArgs {
    ChatArgs {
        memory_dir: Some(PathBuf::from("/tmp/memchat-test-mem")),
        ..ChatArgs::default()
    }
}

/// A flag source that, like clap's, accepts only real argument ids;
/// `env` lists the ids that "came from the environment".
fn flag_source(env: &'static [&'static str]) -> impl Fn(&str) -> Option<String> {
    use clap::CommandFactory;
    let ids: Vec<String> = crate::cli::Cli::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    move |id: &str| {
        assert!(ids.iter().any(|i| i == id), "{id:?} is not a flag id");
        env.contains(&id).then(|| "environment".to_string())
    }
}

fn origin<'c>(config: &'c Config, setting: &str) -> (&'c str, &'c str) {
    let o = config
        .origins
        .iter()
        .find(|o| o.setting == setting)
        .unwrap_or_else(|| panic!("no origin for {setting}"));
    (o.value.as_str(), o.source.as_str())
}

#[test]
fn the_reliability_doc_counts_attempts_as_the_program_does() {
    let doc = include_str!("../../docs/RELIABILITY.md");
    let attempts = crate::render::counted(DEFAULT_RETRIES + 1, "attempt");
    assert!(
        doc.contains(&format!("after {attempts}: …")),
        "docs/RELIABILITY.md must say `after {attempts}` (DEFAULT_RETRIES = {DEFAULT_RETRIES})"
    );
}

#[test]
fn flag_beats_file_beats_default_and_each_says_so() {
    let mut args = args();
    args.model = Some("gpt-4o".into());
    args.retries = Some(1);
    let file = FileConfig {
        model: Some("gpt-4.1".into()),
        context_limit: Some(64_000),
        timeout: Some(30),
        retries: Some(7),
        ..FileConfig::default()
    };
    let from_env = flag_source(&["retries"]);
    let path = Path::new("memchat.toml");
    let config = resolve(&args, &file, Some(path), Some("sk-x".into()), &from_env).unwrap();
    assert_eq!(origin(&config, "model"), ("gpt-4o", "command line"));
    assert_eq!(
        origin(&config, "context_limit"),
        ("64000", "config file memchat.toml")
    );
    assert_eq!(origin(&config, "budget"), ("-", "not set"));
    assert_eq!(origin(&config, "retries"), ("1", "environment"));
    assert_eq!(
        origin(&config, "timeout"),
        ("30", "config file memchat.toml")
    );
    assert_eq!(origin(&config, "connect_timeout"), ("10", "default"));
    assert_eq!(origin(&config, "session"), ("default", "default"));
    assert_eq!(config.budget.window, 64_000);
    let Backend::OpenAi(settings) = &config.backend else {
        panic!("not the OpenAI backend");
    };
    assert_eq!(settings.max_retries, 1);
    assert_eq!(settings.idle_timeout, Duration::from_secs(30));
    assert_eq!(
        settings.connect_timeout,
        Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS)
    );
    assert_eq!(settings.retry_base, DEFAULT_RETRY_BASE);
    assert_eq!(settings.retry_cap, RETRY_CAP);
    assert_eq!(config.lock_wait, DEFAULT_LOCK_WAIT);
}

#[test]
fn the_base_url_is_shown_as_it_is_used() {
    let mut args = args();
    args.base_url = Some(" http://localhost:11434/v1/ ".into());
    let none = flag_source(&[]);
    let config = resolve(&args, &FileConfig::default(), None, None, &none).unwrap();
    assert_eq!(
        origin(&config, "base_url"),
        ("http://localhost:11434/v1", "command line")
    );
    assert_eq!(
        origin(&config, "api_key"),
        ("(not set)", "environment OPENAI_API_KEY")
    );
    config.ready().unwrap();
    // No key is fine for a local server, not for OpenAI's: resolving
    // works (`--print-config` says so), chatting does not.
    args.base_url = None;
    let config = resolve(&args, &FileConfig::default(), None, None, &none).unwrap();
    assert!(config.ready().unwrap_err().0.contains("no API key"));
    assert!(
        config
            .describe()
            .contains("a chat would stop here: no API key")
    );
    assert_eq!(
        origin(&config, "api_key"),
        ("(not set)", "environment OPENAI_API_KEY")
    );
}

#[test]
fn no_stream_turns_streaming_off_over_the_file() {
    let mut args = args();
    args.no_stream = true;
    let file = FileConfig {
        stream: Some(true),
        ..FileConfig::default()
    };
    let none = flag_source(&[]);
    let config = resolve(&args, &file, None, Some("k".into()), &none).unwrap();
    assert_eq!(origin(&config, "stream"), ("false", "command line"));
    args.no_stream = false;
    let config = resolve(&args, &file, None, Some("k".into()), &none).unwrap();
    assert_eq!(origin(&config, "stream").1, "config file");
}

#[test]
fn sessions_and_chat_agree_on_model_and_budget() {
    let mut args = args();
    args.budget = Some(5000);
    let file = FileConfig {
        model: Some("llama3.2".into()),
        context_limit: Some(32_000),
        ..FileConfig::default()
    };
    let (model, budget) = model_and_budget(&args, &file).unwrap();
    args.mock = true;
    let none = flag_source(&[]);
    let config = resolve(&args, &file, None, None, &none).unwrap();
    assert_eq!(
        (model.as_str(), budget),
        (config.model.as_str(), config.budget)
    );
    assert_eq!(budget.cap, 5000);
}

#[test]
fn an_unknown_model_gets_the_small_default_window_and_a_notice() {
    let (budget, notice) = model_budget("llama3.2", None, None, None, None).unwrap();
    assert_eq!(budget.window, budget::DEFAULT_UNKNOWN_WINDOW);
    assert!(notice.is_some_and(|n| n.contains("--context-limit")));
    let (budget, notice) = model_budget("O3-mini", None, None, None, None).unwrap();
    assert_eq!((budget.window, notice), (200_000, None));
}

#[test]
fn max_tokens_is_the_reply_reserve_and_one_too_large_names_what_fits() {
    let (budget, _) = model_budget("gpt-4", None, None, None, Some(1000)).unwrap();
    assert_eq!(budget.reply_reserve, 1000);
    assert_eq!(budget.cap, 8192 - 1000 - 256);
    let largest = budget::largest_reply_reserve(8192);
    assert!(model_budget("gpt-4", None, None, None, Some(largest)).is_ok());
    let e = model_budget("gpt-4", None, None, None, Some(largest + 1)).unwrap_err();
    assert!(e.0.contains("window is 8192 tokens"), "{e}");
    assert!(e.0.contains(&format!("choose 1 to {largest}")), "{e}");
    assert!(model_budget("gpt-4", None, None, None, Some(0)).is_err());
}

#[test]
fn sampling_is_checked_and_a_reasoning_model_is_told_apart() {
    let none = flag_source(&[]);
    let mut args = args();
    args.mock = true;
    args.temperature = Some(0.2);
    let file = FileConfig {
        top_p: Some(0.9),
        max_tokens: Some(500),
        ..FileConfig::default()
    };
    let config = resolve(&args, &file, None, None, &none).unwrap();
    assert_eq!(config.sampling.temperature, Some(0.2));
    assert_eq!(config.sampling.top_p, Some(0.9));
    assert_eq!(config.budget.reply_reserve, 500);
    assert_eq!(origin(&config, "temperature"), ("0.2", "command line"));
    assert_eq!(origin(&config, "max_tokens").1, "config file");
    assert!(config.notices.is_empty(), "{:?}", config.notices);
    args.model = Some("o3-mini".into());
    let config = resolve(&args, &file, None, None, &none).unwrap();
    assert!(
        config.notices[0].contains("reasoning model")
            && config.notices[0].contains("temperature and top_p not sent"),
        "{:?}",
        config.notices
    );
    let back = config.with_model("gpt-4o").unwrap();
    assert!(back.notices.is_empty(), "{:?}", back.notices);
    args.temperature = Some(2.5);
    let e = resolve(&args, &file, None, None, &none).unwrap_err();
    assert!(e.0.contains("temperature 2.5 is out of range"), "{e}");
}
