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
    /// Said once on stderr (e.g. an unknown model's assumed window).
    pub notices: Vec<String>,
    pub system_prompt: Option<String>,
    pub lock_wait: Duration,
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
    api_key: Option<String>,
) -> Result<Config, UsageError> {
    let session = args
        .session
        .clone()
        .or_else(|| file.session.clone())
        .unwrap_or_else(|| memory::DEFAULT_SESSION.to_string());
    memory::validate_session_name(&session).map_err(|e| UsageError(e.to_string()))?;
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let model = args
        .model
        .clone()
        .or_else(|| file.model.clone())
        .unwrap_or_else(|| DEFAULT_MODEL.to_string());
    if model.trim().is_empty() {
        return Err(UsageError("the model name is empty".into()));
    }
    let mut notices = Vec::new();
    let window = match args.context_limit.or(file.context_limit) {
        Some(limit) => limit,
        None => match budget::known_context_window(&model) {
            Some(window) => window,
            None => {
                notices.push(format!(
                    "memchat does not know the context window of {model:?}; assuming {} tokens \
                     (set --context-limit or context_limit in the config file)",
                    budget::DEFAULT_UNKNOWN_WINDOW
                ));
                budget::DEFAULT_UNKNOWN_WINDOW
            }
        },
    };
    let budget = Budget::new(window, args.budget.or(file.budget), None).map_err(UsageError)?;
    let backend = if args.mock {
        Backend::Mock {
            delay: Duration::from_millis(args.mock_delay_ms.unwrap_or(0)),
        }
    } else {
        let base_url = args
            .base_url
            .clone()
            .or_else(|| file.base_url.clone())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| OPENAI_BASE_URL.to_string());
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(UsageError(format!(
                "the base URL {base_url:?} must start with http:// or https://"
            )));
        }
        let api_key = api_key.filter(|k| !k.trim().is_empty());
        if api_key.is_none() && base_url == OPENAI_BASE_URL {
            return Err(UsageError(
                "no API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...), point \
                 --base-url at a local server (Ollama, vLLM, LM Studio, llama.cpp), or run \
                 offline with --mock"
                    .into(),
            ));
        }
        Backend::OpenAi(OpenAiSettings {
            base_url,
            api_key,
            model: model.clone(),
            stream: !args.no_stream && file.stream.unwrap_or(true),
            connect_timeout: Duration::from_secs(
                args.connect_timeout
                    .or(file.connect_timeout)
                    .unwrap_or(10)
                    .max(1),
            ),
            idle_timeout: Duration::from_secs(args.timeout.or(file.timeout).unwrap_or(120).max(1)),
            max_retries: args.retries.or(file.retries).unwrap_or(3),
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
        notices,
        system_prompt: args.system.clone().or_else(|| file.system.clone()),
        lock_wait: Duration::from_secs(args.lock_wait.unwrap_or(5)),
    })
}
