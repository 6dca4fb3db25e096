//! The resolved configuration: flags > environment > config file > defaults.
//!
//! clap already merges flags with their environment variables; this module
//! adds the TOML file (`dirs::config_dir()/memchat/config.toml`, or
//! `MEMCHAT_CONFIG`), the defaults, and the checks, and produces a plain
//! `Config`. Nothing after this module sees clap types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::budget::{self, Budget};
use crate::cli::{ChatArgs, Command, FormatArg};
use crate::client::openai::{OPENAI_BASE_URL, OpenAiSettings};
use crate::memory;
use crate::models;
use crate::provenance::Resolver;
pub use crate::provenance::{FlagSource, Origin};
use crate::render::ColorMode;
use crate::transfer::ExportFormat;

// The defaults, each named once. `--print-config` shows which ones applied.

/// The model used when none is configured: OpenAI's small, inexpensive chat
/// model, a sensible first choice for a chat that sends its history each turn.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Seconds of silence from the server before a request is given up: long
/// enough for a large model to start on a long prompt, short enough that a
/// dead connection does not hang the terminal for good.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Seconds to wait for a connection: a reachable server answers in well
/// under a second; ten means it is down or unreachable.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Retries after the first attempt for 429, 5xx and connect errors: rides
/// out a brief outage or rate limit without making the user wait minutes.
pub const DEFAULT_RETRIES: u32 = 3;
/// First backoff delay; doubles each retry (0.5, 1, 2 s with the defaults).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
/// The longest single wait before a retry, whatever `Retry-After` asks: a
/// server that wants minutes is better reported than waited for.
pub const RETRY_CAP: Duration = Duration::from_secs(20);
/// How long to wait for a session another process holds: enough for a
/// one-shot run in another terminal to finish its turn; a REPL holding it
/// will not let go, and the user should hear so rather than wait.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// A usage or configuration error: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Settings from the config file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub context_limit: Option<u32>,
    pub budget: Option<u32>,
    pub system: Option<String>,
    pub memory_dir: Option<PathBuf>,
    pub session: Option<String>,
    pub timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub retries: Option<u32>,
    pub stream: Option<bool>,
    /// `auto`, `always` or `never`.
    pub color: Option<String>,
    /// The file these settings were read from (`None`: there was none).
    #[serde(skip)]
    pub read_from: Option<PathBuf>,
}

/// Which model back-end to use.
#[derive(Debug, Clone)]
pub enum Backend {
    Mock { delay: Duration },
    OpenAi(OpenAiSettings),
}

/// Everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub session: String,
    pub memory_dir: PathBuf,
    pub model: String,
    pub backend: Backend,
    pub budget: Budget,
    /// `--context-limit` / `context_limit`, kept for `/model` to recompute.
    pub context_limit: Option<u32>,
    /// `--budget` / `budget`, kept for `/model` to recompute.
    pub cost_cap: Option<u32>,
    /// Said once on stderr (e.g. an unknown model's assumed window).
    pub notices: Vec<String>,
    pub system_prompt: Option<String>,
    /// The system prompt came from `--system` (replaces an existing one).
    pub system_explicit: bool,
    pub lock_wait: Duration,
    /// Each setting, its value and where it came from (`--print-config`).
    pub origins: Vec<Origin>,
}

impl Config {
    /// The same configuration with another model (`/model NAME`): its own
    /// window, budget and tokenizer.
    pub fn with_model(&self, model: &str) -> Result<Config, UsageError> {
        let model = model.trim();
        if model.is_empty() {
            return Err(UsageError("the model name is empty".into()));
        }
        let (budget, notice) = model_budget(model, self.context_limit, self.cost_cap)?;
        let mut config = self.clone();
        config.model = model.to_string();
        config.budget = budget;
        config.notices = notice.into_iter().collect();
        if let Backend::OpenAi(settings) = &mut config.backend {
            settings.model = model.to_string();
        }
        Ok(config)
    }

    /// What stops this configuration from chatting, if anything: no API key
    /// for OpenAI's own server. (`--print-config` reports it; a chat stops.)
    pub fn ready(&self) -> Result<(), UsageError> {
        match &self.backend {
            Backend::OpenAi(settings)
                if settings.api_key.is_none() && settings.base_url == OPENAI_BASE_URL =>
            {
                Err(UsageError(
                    "no API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...), point \
                     --base-url at a local server (Ollama, vLLM, LM Studio, llama.cpp), or run \
                     offline with --mock"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The `--print-config` text. The key is reported as set or not, never
    /// shown; what would stop a chat is said last.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let width = self
            .origins
            .iter()
            .map(|o| o.setting.len())
            .max()
            .unwrap_or(8);
        for origin in &self.origins {
            out.push_str(&format!(
                "{:<width$}  {:<40}  ({})\n",
                origin.setting, origin.value, origin.source
            ));
        }
        out.push_str(&self.budget.describe());
        if let Err(problem) = self.ready() {
            out.push_str(&format!("a chat would stop here: {problem}\n"));
        }
        out
    }
}

/// The window and budget for a model: `--context-limit`, else the known
/// window, else a conservative default with a notice.
pub fn model_budget(
    model: &str,
    context_limit: Option<u32>,
    cost_cap: Option<u32>,
) -> Result<(Budget, Option<String>), UsageError> {
    let mut notice = None;
    let window = match context_limit {
        Some(limit) => limit,
        None => match models::context_window(model) {
            Some(window) => window,
            None => {
                notice = Some(format!(
                    "the context window of {model:?} is unknown to memchat; assuming {} tokens \
                     (set --context-limit or context_limit in the config file)",
                    budget::DEFAULT_UNKNOWN_WINDOW
                ));
                budget::DEFAULT_UNKNOWN_WINDOW
            }
        },
    };
    let budget = Budget::new(window, cost_cap, None).map_err(UsageError)?;
    Ok((budget, notice))
}

/// Where the config file is: the file `MEMCHAT_CONFIG` names, which must
/// exist (a file named on purpose and not found is a mistake to report, not
/// to skip), else `config.toml` in the user's config directory, if any.
pub fn config_file_path() -> Result<Option<PathBuf>, UsageError> {
    if let Some(path) = std::env::var_os("MEMCHAT_CONFIG").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.exists() {
            return Err(UsageError(format!(
                "MEMCHAT_CONFIG names {}, which does not exist (unset MEMCHAT_CONFIG to use {})",
                path.display(),
                default_config_path()
                    .map_or_else(|| "no config file".to_string(), |p| p.display().to_string())
            )));
        }
        return Ok(Some(path));
    }
    Ok(default_config_path())
}

/// `config.toml` in the user's config directory (`~/.config/memchat/` on
/// Linux).
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("memchat").join("config.toml"))
}

/// Reads the config file, if there is one.
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, UsageError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(|file| FileConfig {
                read_from: Some(path.to_path_buf()),
                ..file
            })
            .map_err(|e| UsageError(format!("{}: {}", path.display(), e.to_string().trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(UsageError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The memory directory: flag/env > config file > `./memory` if it is a
/// memchat memory directory (the repository ships one with a marker file) >
/// the user's data directory.
pub fn resolve_memory_dir(flag: Option<&Path>, file: Option<&Path>) -> Result<PathBuf, UsageError> {
    if let Some(dir) = flag.or(file) {
        return Ok(dir.to_path_buf());
    }
    let local = Path::new("memory");
    if memory::is_memory_dir(local) {
        return Ok(local.to_path_buf());
    }
    dirs::data_dir().map(|d| d.join("memchat")).ok_or_else(|| {
        UsageError("cannot find a data directory; set --memory-dir or MEMCHAT_MEMORY_DIR".into())
    })
}

/// The model and what follows from it.
struct ModelChoice {
    model: String,
    context_limit: Option<u32>,
    cost_cap: Option<u32>,
    budget: Budget,
    notice: Option<String>,
}

/// The model, its window settings and its budget.
fn pick_model(
    r: &mut Resolver<'_>,
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<ModelChoice, UsageError> {
    let model = r.pick_or(
        "model",
        args.model.clone(),
        file.model.clone(),
        DEFAULT_MODEL.to_string(),
    );
    if model.trim().is_empty() {
        return Err(UsageError("the model name is empty".into()));
    }
    let context_limit = r.pick("context_limit", args.context_limit, file.context_limit);
    let cost_cap = r.pick("budget", args.budget, file.budget);
    let (budget, notice) = model_budget(&model, context_limit, cost_cap)?;
    Ok(ModelChoice {
        model,
        context_limit,
        cost_cap,
        budget,
        notice,
    })
}

/// The model and its budget by the usual precedence, for commands that need
/// no backend (`memchat sessions`).
pub fn model_and_budget(
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<(String, Budget), UsageError> {
    let no_flag_sources = |_: &str| None;
    let choice = pick_model(&mut Resolver::new(&no_flag_sources, None), args, file)?;
    Ok((choice.model, choice.budget))
}

/// How long to wait for a session another process holds.
pub fn lock_wait(args: &ChatArgs) -> Duration {
    args.lock_wait
        .map_or(DEFAULT_LOCK_WAIT, Duration::from_secs)
}

/// Resolves the chat configuration from the command line and the file.
pub fn resolve(
    args: &ChatArgs,
    file: &FileConfig,
    file_path: Option<&Path>,
    api_key: Option<String>,
    flag_source: FlagSource<'_>,
) -> Result<Config, UsageError> {
    let mut r = Resolver::new(flag_source, file_path);
    match (&file.read_from, file_path) {
        (Some(path), _) => r.record("config_file", path.display().to_string(), "read".into()),
        (None, Some(path)) => r.record(
            "config_file",
            path.display().to_string(),
            "no file there".into(),
        ),
        (None, None) => r.record("config_file", "-".into(), "no config directory".into()),
    }
    let session = r.pick_or(
        "session",
        args.session.clone(),
        file.session.clone(),
        memory::DEFAULT_SESSION.to_string(),
    );
    memory::validate_session_name(&session).map_err(|e| UsageError(e.to_string()))?;
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    memory::check_session_name(&memory_dir, &session).map_err(|e| UsageError(e.to_string()))?;
    let memory_dir_source = if args.memory_dir.is_some() {
        r.flag_origin("memory_dir")
    } else if file.memory_dir.is_some() {
        r.file_origin()
    } else {
        "default (./memory if it is a memchat memory directory, else the data directory)".into()
    };
    r.record(
        "memory_dir",
        memory_dir.display().to_string(),
        memory_dir_source,
    );
    let choice = pick_model(&mut r, args, file)?;
    let system_prompt = r.pick("system", args.system.clone(), file.system.clone());
    r.pick_or("color", args.color, file_color(file)?, ColorMode::default());
    let backend = if args.mock {
        r.record("backend", "mock".into(), "--mock".into());
        Backend::Mock {
            delay: Duration::from_millis(args.mock_delay_ms.unwrap_or(0)),
        }
    } else {
        Backend::OpenAi(openai_settings(&mut r, args, file, api_key, &choice.model)?)
    };
    Ok(Config {
        session,
        memory_dir,
        model: choice.model,
        backend,
        budget: choice.budget,
        context_limit: choice.context_limit,
        cost_cap: choice.cost_cap,
        notices: choice.notice.into_iter().collect(),
        system_prompt,
        system_explicit: args.system.is_some(),
        lock_wait: lock_wait(args),
        origins: r.origins,
    })
}

/// How to reach an OpenAI-compatible server: URL, key, streaming, patience.
fn openai_settings(
    r: &mut Resolver<'_>,
    args: &ChatArgs,
    file: &FileConfig,
    api_key: Option<String>,
    model: &str,
) -> Result<OpenAiSettings, UsageError> {
    // `/v1/` would become `/v1//chat/completions`, a 404 on strict servers.
    let normalize = |url: &String| url.trim().trim_end_matches('/').to_string();
    let base_url = r.pick_or(
        "base_url",
        args.base_url.as_ref().map(normalize),
        file.base_url.as_ref().map(normalize),
        OPENAI_BASE_URL.to_string(),
    );
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(UsageError(format!(
            "the base URL {base_url:?} must start with http:// or https://"
        )));
    }
    let api_key = api_key.filter(|k| !k.trim().is_empty());
    if let Some(key) = &api_key {
        crate::client::openai::check_api_key(key)
            .map_err(|problem| UsageError(format!("OPENAI_API_KEY {problem}")))?;
    }
    let key_state = if api_key.is_some() {
        "(set)"
    } else {
        "(not set)"
    };
    r.record(
        "api_key",
        key_state.into(),
        "environment OPENAI_API_KEY".into(),
    );
    // `--no-stream` can only turn streaming off.
    let no_stream = args.no_stream.then_some(false);
    let stream = r.pick_flag_or("stream", "no_stream", no_stream, file.stream, true);
    let timeout = r.pick_or("timeout", args.timeout, file.timeout, DEFAULT_TIMEOUT_SECS);
    let connect = r.pick_or(
        "connect_timeout",
        args.connect_timeout,
        file.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT_SECS,
    );
    let retries = r.pick_or("retries", args.retries, file.retries, DEFAULT_RETRIES);
    Ok(OpenAiSettings {
        base_url,
        api_key,
        model: model.to_string(),
        stream,
        // Zero would mean "give up at once"; one second is the least useful wait.
        connect_timeout: Duration::from_secs(connect.max(1)),
        idle_timeout: Duration::from_secs(timeout.max(1)),
        max_retries: retries,
        retry_base: args
            .retry_base_ms
            .map_or(DEFAULT_RETRY_BASE, Duration::from_millis),
        retry_cap: RETRY_CAP,
    })
}

/// The colour choice: `--color`/`MEMCHAT_COLOR` > the file's `color` > auto.
pub fn color_mode(flag: Option<ColorMode>, file: &FileConfig) -> Result<ColorMode, UsageError> {
    Ok(flag.or(file_color(file)?).unwrap_or_default())
}

/// The file's `color`, checked.
fn file_color(file: &FileConfig) -> Result<Option<ColorMode>, UsageError> {
    file.color
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(UsageError)
}

/// A management command (`memchat sessions`, `show`, ...) as plain data,
/// checked, with the memory directory it acts on.
#[derive(Debug, Clone)]
pub struct Management {
    pub memory_dir: PathBuf,
    pub lock_wait: Duration,
    pub command: ManageCommand,
}

/// What a management command asks for; session names are already valid.
#[derive(Debug, Clone)]
pub enum ManageCommand {
    Sessions {
        model: String,
        budget: Budget,
    },
    Show {
        name: String,
        all: bool,
        json: bool,
    },
    Export {
        name: String,
        format: ExportFormat,
        output: Option<PathBuf>,
    },
    Import {
        source: PathBuf,
        name: String,
    },
    Delete {
        name: String,
        yes: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    Repair {
        name: String,
    },
}

fn valid_name(name: &str) -> Result<String, UsageError> {
    memory::validate_session_name(name).map_err(|e| UsageError(e.to_string()))?;
    Ok(name.to_string())
}

/// The name of a session about to be created: no dot (see memory/README.md).
fn valid_new_name(name: &str) -> Result<String, UsageError> {
    memory::validate_new_session_name(name).map_err(|e| UsageError(e.to_string()))?;
    Ok(name.to_string())
}

/// Turns a management subcommand into plain data. `None` for the commands
/// that print the command line's own description (completions, the man
/// page), which `cli.rs` writes.
pub fn management(
    command: &Command,
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<Option<Management>, UsageError> {
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let lock_wait = lock_wait(args);
    let command = match command {
        Command::Sessions => {
            let (model, budget) = model_and_budget(args, file)?;
            ManageCommand::Sessions { model, budget }
        }
        Command::Show { name, all, json } => ManageCommand::Show {
            name: valid_name(name)?,
            all: *all,
            json: *json,
        },
        Command::Export {
            name,
            format,
            output,
        } => ManageCommand::Export {
            name: valid_name(name)?,
            format: match (format, output) {
                (Some(FormatArg::Json), _) => ExportFormat::Json,
                (Some(FormatArg::Markdown), _) => ExportFormat::Markdown,
                (None, Some(path)) => ExportFormat::for_path(path),
                (None, None) => ExportFormat::Json,
            },
            output: output.clone(),
        },
        Command::Import {
            file: source,
            as_name,
        } => {
            let name = match as_name {
                Some(name) => name.clone(),
                None => source
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let name = valid_new_name(&name)
                .map_err(|e| UsageError(format!("{e}; choose one with --as NAME")))?;
            ManageCommand::Import {
                source: source.clone(),
                name,
            }
        }
        Command::Delete { name, yes } => ManageCommand::Delete {
            name: valid_name(name)?,
            yes: *yes,
        },
        Command::Rename { from, to } => ManageCommand::Rename {
            from: valid_name(from)?,
            to: valid_new_name(to)?,
        },
        Command::Repair { name } => ManageCommand::Repair {
            name: valid_name(name)?,
        },
        Command::Completions { .. } | Command::Man => return Ok(None),
    };
    Ok(Some(Management {
        memory_dir,
        lock_wait,
        command,
    }))
}

#[cfg(test)]
mod tests {
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
        let doc = include_str!("../docs/RELIABILITY.md");
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
        let (budget, notice) = model_budget("llama3.2", None, None).unwrap();
        assert_eq!(budget.window, budget::DEFAULT_UNKNOWN_WINDOW);
        assert!(notice.is_some_and(|n| n.contains("--context-limit")));
        let (budget, notice) = model_budget("O3-mini", None, None).unwrap();
        assert_eq!((budget.window, notice), (200_000, None));
    }
}
