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
use crate::cli::ChatArgs;
use crate::client::openai::{OPENAI_BASE_URL, OpenAiSettings};
use crate::memory;
use crate::models;

/// The model used when none is configured.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

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

/// Where one setting's value came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub setting: &'static str,
    pub value: String,
    pub source: String,
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

    /// The `--print-config` text. The key is reported as set or not, never shown.
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
        let b = &self.budget;
        out.push_str(&format!(
            "{:<width$}  W {} R {} M {} B {} H {} L {} S {} K {}\n",
            "tokens",
            b.window,
            b.reply_reserve,
            b.margin,
            b.cap,
            b.trigger,
            b.target,
            b.summary_cap,
            b.keep_turns
        ));
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
                    "memchat does not know the context window of {model:?}; assuming {} tokens \
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

/// The model and its budget by the usual precedence (flag/env > file >
/// default), for commands that need no backend (`memchat sessions`).
pub fn model_and_budget(
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<(String, Budget), UsageError> {
    let model = args
        .model
        .clone()
        .or_else(|| file.model.clone())
        .unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let (budget, _) = model_budget(
        &model,
        args.context_limit.or(file.context_limit),
        args.budget.or(file.budget),
    )?;
    Ok((model, budget))
}

/// Tells whether a flag's value came from the command line or its
/// environment variable (clap knows; the rest of the program need not).
pub type FlagSource<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Picks a setting: flag/env (as clap resolved it) > file > default, and
/// records where it came from.
fn pick<T: Clone + ToString>(
    origins: &mut Vec<Origin>,
    setting: &'static str,
    flag: Option<T>,
    file: Option<T>,
    default: Option<T>,
    flag_source: FlagSource<'_>,
    file_path: Option<&Path>,
) -> Option<T> {
    let (value, source) = match (flag, file, default) {
        (Some(v), _, _) => (
            Some(v),
            flag_source(setting).unwrap_or_else(|| "command line".into()),
        ),
        (None, Some(v), _) => (
            Some(v),
            format!(
                "config file {}",
                file_path
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        ),
        (None, None, Some(v)) => (Some(v), "default".into()),
        (None, None, None) => (None, "not set".into()),
    };
    origins.push(Origin {
        setting,
        value: value
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".into()),
        source,
    });
    value
}

/// Where the config file is looked for.
pub fn config_file_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MEMCHAT_CONFIG") {
        return Some(PathBuf::from(path));
    }
    dirs::config_dir().map(|d| d.join("memchat").join("config.toml"))
}

/// Reads the config file, if there is one.
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, UsageError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| UsageError(format!("{}: {}", path.display(), e.to_string().trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(UsageError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The memory directory: flag/env > config file > `./memory` if it exists >
/// the user's data directory.
pub fn resolve_memory_dir(flag: Option<&Path>, file: Option<&Path>) -> Result<PathBuf, UsageError> {
    if let Some(dir) = flag.or(file) {
        return Ok(dir.to_path_buf());
    }
    let local = Path::new("memory");
    if local.is_dir() {
        return Ok(local.to_path_buf());
    }
    dirs::data_dir().map(|d| d.join("memchat")).ok_or_else(|| {
        UsageError("cannot find a data directory; set --memory-dir or MEMCHAT_MEMORY_DIR".into())
    })
}

/// Resolves the chat configuration from the command line and the file.
pub fn resolve(
    args: &ChatArgs,
    file: &FileConfig,
    file_path: Option<&Path>,
    api_key: Option<String>,
    flag_source: FlagSource<'_>,
) -> Result<Config, UsageError> {
    let mut origins = Vec::new();
    let o = &mut origins;
    let session = pick(
        o,
        "session",
        args.session.clone(),
        file.session.clone(),
        Some(memory::DEFAULT_SESSION.to_string()),
        flag_source,
        file_path,
    )
    .unwrap_or_default();
    memory::validate_session_name(&session).map_err(|e| UsageError(e.to_string()))?;
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    o.push(Origin {
        setting: "memory_dir",
        value: memory_dir.display().to_string(),
        source: if args.memory_dir.is_some() {
            flag_source("memory_dir").unwrap_or_else(|| "command line".into())
        } else if file.memory_dir.is_some() {
            "config file".into()
        } else {
            "default (./memory if present, else the data directory)".into()
        },
    });
    let model = pick(
        o,
        "model",
        args.model.clone(),
        file.model.clone(),
        Some(DEFAULT_MODEL.to_string()),
        flag_source,
        file_path,
    )
    .unwrap_or_default();
    if model.trim().is_empty() {
        return Err(UsageError("the model name is empty".into()));
    }
    let context_limit = pick(
        o,
        "context_limit",
        args.context_limit,
        file.context_limit,
        None,
        flag_source,
        file_path,
    );
    let cost_cap = pick(
        o,
        "budget",
        args.budget,
        file.budget,
        None,
        flag_source,
        file_path,
    );
    let (budget, notice) = model_budget(&model, context_limit, cost_cap)?;
    let system_prompt = pick(
        o,
        "system",
        args.system.clone(),
        file.system.clone(),
        None,
        flag_source,
        file_path,
    );
    let backend = if args.mock {
        o.push(Origin {
            setting: "backend",
            value: "mock".into(),
            source: "--mock".into(),
        });
        Backend::Mock {
            delay: Duration::from_millis(args.mock_delay_ms.unwrap_or(0)),
        }
    } else {
        let base_url = pick(
            o,
            "base_url",
            args.base_url.clone(),
            file.base_url.clone(),
            Some(OPENAI_BASE_URL.to_string()),
            flag_source,
            file_path,
        )
        .unwrap_or_default();
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if let Some(origin) = o.iter_mut().find(|o| o.setting == "base_url") {
            origin.value.clone_from(&base_url);
        }
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(UsageError(format!(
                "the base URL {base_url:?} must start with http:// or https://"
            )));
        }
        let api_key = api_key.filter(|k| !k.trim().is_empty());
        o.push(Origin {
            setting: "api_key",
            value: if api_key.is_some() {
                "(set)".into()
            } else {
                "(not set)".into()
            },
            source: "environment OPENAI_API_KEY".into(),
        });
        if api_key.is_none() && base_url == OPENAI_BASE_URL {
            return Err(UsageError(
                "no API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...), point \
                 --base-url at a local server (Ollama, vLLM, LM Studio, llama.cpp), or run \
                 offline with --mock"
                    .into(),
            ));
        }
        let stream = !args.no_stream && file.stream.unwrap_or(true);
        o.push(Origin {
            setting: "stream",
            value: stream.to_string(),
            source: if args.no_stream {
                "--no-stream".into()
            } else if file.stream.is_some() {
                "config file".into()
            } else {
                "default".into()
            },
        });
        let timeout = pick(
            o,
            "timeout",
            args.timeout,
            file.timeout,
            Some(120),
            flag_source,
            file_path,
        )
        .unwrap_or(120);
        let connect = pick(
            o,
            "connect_timeout",
            args.connect_timeout,
            file.connect_timeout,
            Some(10),
            flag_source,
            file_path,
        )
        .unwrap_or(10);
        let retries = pick(
            o,
            "retries",
            args.retries,
            file.retries,
            Some(3),
            flag_source,
            file_path,
        )
        .unwrap_or(3);
        Backend::OpenAi(OpenAiSettings {
            base_url,
            api_key,
            model: model.clone(),
            stream,
            connect_timeout: Duration::from_secs(connect.max(1)),
            idle_timeout: Duration::from_secs(timeout.max(1)),
            max_retries: retries,
            retry_base: Duration::from_millis(args.retry_base_ms.unwrap_or(500)),
            retry_cap: Duration::from_secs(20),
        })
    };
    Ok(Config {
        session,
        memory_dir,
        model,
        backend,
        budget,
        context_limit,
        cost_cap,
        notices: notice.into_iter().collect(),
        system_prompt,
        system_explicit: args.system.is_some(),
        lock_wait: Duration::from_secs(args.lock_wait.unwrap_or(5)),
        origins,
    })
}
