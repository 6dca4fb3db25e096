//! The resolved configuration: flags > environment > config file > defaults.
//!
//! clap already merges flags with their environment variables; this module
//! adds the TOML file (`dirs::config_dir()/memchat/config.toml`, or
//! `MEMCHAT_CONFIG`), the defaults, and the checks, and produces a plain
//! `Config`. Nothing after this module sees clap types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::budget::{self, Budget};
use crate::cli::ChatArgs;
use crate::client::Sampling;
use crate::client::openai::{OPENAI_BASE_URL, OpenAiSettings};
use crate::memory;
use crate::models;
use crate::provenance::Resolver;
pub use crate::provenance::{FlagSource, Origin};
use crate::render::ColorMode;

mod file;
mod management;
mod presets;

pub use crate::provenance::ENVIRONMENT;
pub use file::{FileConfig, color_mode, config_file_path, default_config_path, load_file};
use file::{file_color, file_recall};
pub use management::{ManageCommand, Management, management};
pub use presets::{Presets, ProfileConfig, RoleConfig, roles_listing};

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

/// A PostgreSQL store's URL (`--store`, `MEMCHAT_STORE`, `store`). It shows
/// itself with the password masked, so `--print-config`, notices and errors
/// cannot leak it; [`StoreUrl::url`] is for the connection only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// Checks that `text` is a PostgreSQL URL: the only store chosen by URL
    /// (a directory is `--memory-dir`).
    pub fn parse(text: &str) -> Result<StoreUrl, UsageError> {
        if crate::pg::url::is_postgres_url(text) {
            Ok(StoreUrl(text.to_string()))
        } else {
            // Not echoed when it may hold a password a mistyped scheme hides
            // from the mask (`postgres:/ana:secret@host`).
            let not = if text.contains('@') || text.to_ascii_lowercase().contains("password") {
                "that value (a URL with a user part must start with postgres://)".to_string()
            } else {
                format!("{:?}", crate::pg::url::mask(text))
            };
            Err(UsageError(format!(
                "--store takes a postgres:// or postgresql:// URL, not {not}; for a directory of \
                 conversations use --memory-dir"
            )))
        }
    }
    pub fn url(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::pg::url::mask_url(&self.0))
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// The store a command line and config file choose: `Some` URL for
/// PostgreSQL, `None` for the memory directory.
pub fn store_url(args: &ChatArgs, file: &FileConfig) -> Result<Option<StoreUrl>, UsageError> {
    args.store
        .as_deref()
        .or(file.store.as_deref())
        .map(StoreUrl::parse)
        .transpose()
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
    /// `--store`: conversations in PostgreSQL instead of `memory_dir`.
    pub store: Option<StoreUrl>,
    pub model: String,
    pub backend: Backend,
    pub budget: Budget,
    /// `--context-limit` / `context_limit`, kept for `/model` to recompute.
    pub context_limit: Option<u32>,
    /// `--budget` / `budget`, kept for `/model` to recompute.
    pub cost_cap: Option<u32>,
    /// `--max-tokens` / `max_tokens`: the reply reserve `R` when set, kept
    /// for `/model` to recompute.
    pub max_tokens: Option<u32>,
    /// `--temperature` and `--top-p` (not sent to reasoning models).
    pub sampling: Sampling,
    /// Sampling and reply cap as this run sets them without a role: what
    /// `/role NAME` falls back to for what the role does not set.
    pub unroled: (Sampling, Option<u32>),
    /// Said once on stderr (e.g. an unknown model's assumed window).
    pub notices: Vec<String>,
    pub system_prompt: Option<String>,
    /// The system prompt came from `--system` or a chosen role (replaces an
    /// existing one).
    pub system_explicit: bool,
    /// The role chosen (`-r`, `/role`), if any.
    pub role: Option<String>,
    /// The config file's roles, for `/role NAME`.
    pub roles: std::collections::BTreeMap<String, RoleConfig>,
    /// The variable a missing key should be set in, when a profile names
    /// one: a chat without it stops (see [`Config::ready`]).
    pub key_variable: Option<String>,
    pub lock_wait: Duration,
    /// Each setting, its value and where it came from (`--print-config`).
    pub origins: Vec<Origin>,
    /// Prices per model from the config file (never guessed).
    pub prices: crate::usage::Prices,
    /// `--show-usage`: a usage line on stderr after each reply.
    pub show_usage: bool,
    /// Recall (`--recall`) and its allowance in percent of `B`.
    pub recall: crate::recall::Mode,
    pub recall_percent: u32,
    /// `-x`: one-shot prints only the reply's code blocks.
    pub extract: bool,
    /// `-f`: files attached to the first message.
    pub files: Vec<PathBuf>,
    /// The window each model has in the last `memchat models` listing.
    pub listed_windows: Vec<(String, u32)>,
}

/// A model name memchat can send and store: not empty, no control
/// character (a NUL cannot be stored on PostgreSQL; the name goes into
/// every reply's record and the session's settings).
fn check_model_name(model: &str) -> Result<(), UsageError> {
    if model.is_empty() {
        return Err(UsageError("the model name is empty".into()));
    }
    if model.chars().any(char::is_control) {
        return Err(UsageError(format!(
            "the model name {:?} holds a control character",
            crate::visible::text(model)
        )));
    }
    Ok(())
}

impl Config {
    /// The same configuration with another model (`/model NAME`): its own
    /// window, budget and tokenizer.
    pub fn with_model(&self, model: &str) -> Result<Config, UsageError> {
        let model = model.trim();
        check_model_name(model)?;
        let listed = self.listed_window(model);
        let (budget, notice) = model_budget(
            model,
            self.context_limit,
            listed,
            self.cost_cap,
            self.max_tokens,
        )?;
        let mut config = self.clone();
        config.model = model.to_string();
        config.budget = budget;
        config.notices = notice.into_iter().collect();
        config.notices.extend(sampling_notice(model, self.sampling));
        if let Backend::OpenAi(settings) = &mut config.backend {
            settings.model = model.to_string();
        }
        Ok(config)
    }

    /// The window the last listing of the server's models reports for
    /// `model`, if any.
    pub fn listed_window(&self, model: &str) -> Option<u32> {
        listed_window(&self.listed_windows, model)
    }

    /// The same configuration with role `name` of the config file (`/role
    /// NAME`): its system prompt, and its model and sampling where it sets
    /// them; for the sampling and reply cap it does not set, this run's own
    /// (not a previous role's); the model it does not set stays.
    pub fn with_role(&self, name: &str) -> Result<Config, UsageError> {
        let presets = Presets::choose(Some(name), None, &self.roles, &Default::default())?;
        let Some((name, role)) = presets.role else {
            return Err(UsageError("no role given".into()));
        };
        let mut config = match &role.model {
            Some(model) if *model != self.model => self.with_model(model)?,
            _ => self.clone(),
        };
        let (base, base_max_tokens) = self.unroled;
        config.sampling = Sampling {
            temperature: role.temperature.or(base.temperature),
            top_p: role.top_p.or(base.top_p),
        };
        check_sampling(config.sampling)?;
        let max_tokens = role.max_tokens.or(base_max_tokens);
        if max_tokens != config.max_tokens {
            config.max_tokens = max_tokens;
            let (budget, _) = model_budget(
                &config.model,
                config.context_limit,
                config.listed_window(&config.model),
                config.cost_cap,
                config.max_tokens,
            )?;
            config.budget = budget;
        }
        config.notices = sampling_notice(&config.model, config.sampling)
            .into_iter()
            .collect();
        if role.system.is_some() {
            config.system_prompt = role.system;
            config.system_explicit = true;
        }
        config.role = Some(name);
        Ok(config)
    }

    /// What stops this configuration from chatting, if anything: no API key
    /// for OpenAI's own server. (`--print-config` reports it; a chat stops.)
    pub fn ready(&self) -> Result<(), UsageError> {
        match &self.backend {
            Backend::OpenAi(settings)
                if settings.api_key.is_none() && self.key_variable.is_some() =>
            {
                let var = self.key_variable.as_deref().unwrap_or(DEFAULT_KEY_VAR);
                let profile = self.origins.iter().find(|o| o.setting == "profile");
                let profile = profile.map_or("-", |o| o.value.as_str());
                Err(UsageError(format!(
                    "no API key: profile {profile} reads it from {var}, which is not set \
                     (export {var}=...)"
                )))
            }
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
/// window, else the one the server's list of models reported (`listed`),
/// else a conservative default with a notice. `max_tokens` is the
/// reply reserve `R` when set; one that leaves the conversation too little
/// room is refused, naming the largest that fits.
pub fn model_budget(
    model: &str,
    context_limit: Option<u32>,
    listed: Option<u32>,
    cost_cap: Option<u32>,
    max_tokens: Option<u32>,
) -> Result<(Budget, Option<String>), UsageError> {
    let mut notice = None;
    let window = match context_limit {
        Some(limit) => limit,
        None => match models::context_window(model).or(listed) {
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
    if let Some(max) = max_tokens.filter(|_| window >= budget::MIN_WINDOW) {
        let largest = budget::largest_reply_reserve(window);
        if max == 0 || max > largest {
            return Err(UsageError(format!(
                "--max-tokens {max} does not fit {model:?}: its window is {window} tokens, and \
                 the reply's tokens come out of it, leaving the margin and at least {} tokens \
                 for the conversation; choose 1 to {largest}",
                budget::MIN_WINDOW / 2
            )));
        }
    }
    let budget = Budget::new(window, cost_cap, max_tokens).map_err(UsageError)?;
    Ok((budget, notice))
}

/// What a reasoning model does with `temperature` and `top_p`: it refuses
/// them, so they are not sent, and the user hears so once.
pub(crate) fn sampling_notice(model: &str, sampling: Sampling) -> Option<String> {
    let set: Vec<&str> = [
        sampling.temperature.map(|_| "temperature"),
        sampling.top_p.map(|_| "top_p"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (models::is_reasoning(model) && !set.is_empty()).then(|| {
        format!(
            "{model:?} is a reasoning model, which accepts no temperature or top_p; {} not sent \
             (its reply cap goes as max_completion_tokens)",
            set.join(" and ")
        )
    })
}

/// `--temperature` (0 to 2) and `--top-p` (0 to 1), checked: OpenAI's
/// ranges, which other servers share.
fn sampling(
    r: &mut Resolver<'_>,
    args: &ChatArgs,
    file: &FileConfig,
    presets: &Presets,
) -> Result<Sampling, UsageError> {
    let temperature = r.pick_in(
        "temperature",
        args.temperature,
        presets.layers(|r| r.temperature, |_| None),
        file.temperature,
    );
    let top_p = r.pick_in(
        "top_p",
        args.top_p,
        presets.layers(|r| r.top_p, |_| None),
        file.top_p,
    );
    check_sampling(Sampling { temperature, top_p })
}

/// Refuses a temperature or top_p out of its range.
fn check_sampling(sampling: Sampling) -> Result<Sampling, UsageError> {
    let check = |name: &str, value: Option<f32>, max: f32| match value {
        Some(v) if !(v.is_finite() && (0.0..=max).contains(&v)) => Err(UsageError(format!(
            "{name} {v} is out of range; it goes from 0 to {max}"
        ))),
        _ => Ok(()),
    };
    check("temperature", sampling.temperature, 2.0)?;
    check("top_p", sampling.top_p, 1.0)?;
    Ok(sampling)
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
    max_tokens: Option<u32>,
    budget: Budget,
    notice: Option<String>,
}

/// The model, its window settings and its budget. `listed` gives the window
/// the last listing of the server's models reports for a model.
fn pick_model(
    r: &mut Resolver<'_>,
    args: &ChatArgs,
    file: &FileConfig,
    presets: &Presets,
    listed: &dyn Fn(&str) -> Option<u32>,
) -> Result<ModelChoice, UsageError> {
    let model = r.pick_in_or(
        "model",
        args.model.clone(),
        presets.layers(|r| r.model.clone(), |p| p.model.clone()),
        file.model.clone(),
        DEFAULT_MODEL.to_string(),
    );
    check_model_name(model.trim())?;
    let context_limit = r.pick_in(
        "context_limit",
        args.context_limit,
        presets.layers(|_| None, |p| p.context_limit),
        file.context_limit,
    );
    let cost_cap = r.pick("budget", args.budget, file.budget);
    let max_tokens = r.pick_in(
        "max_tokens",
        args.max_tokens,
        presets.layers(|r| r.max_tokens, |_| None),
        file.max_tokens,
    );
    let listed = listed(&model).filter(|_| models::context_window(&model).is_none());
    if context_limit.is_none()
        && let Some(window) = listed
    {
        let source = "the server's list of models (memchat models)";
        r.record("window", window.to_string(), source.into());
    }
    let (budget, notice) = model_budget(&model, context_limit, listed, cost_cap, max_tokens)?;
    Ok(ModelChoice {
        model,
        context_limit,
        cost_cap,
        max_tokens,
        budget,
        notice,
    })
}

/// The model and its budget by the usual precedence, for commands that need
/// no backend (`memchat sessions`): the file's default profile applies.
pub fn model_and_budget(
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<(String, Budget), UsageError> {
    let no_flag_sources = |_: &str| None;
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let listing = crate::catalog::load(&memory_dir);
    let listed = |model: &str| listing.as_ref().and_then(|l| l.window(model));
    let presets = Presets::choose(None, file.profile.as_deref(), &file.roles, &file.profiles)?;
    let mut r = Resolver::new(&no_flag_sources, None);
    let choice = pick_model(&mut r, args, file, &presets, &listed)?;
    Ok((choice.model, choice.budget))
}

/// What flags and file say about sizing (`memchat sessions` sizes a session
/// without a record of its own by these).
#[derive(Debug, Clone)]
pub struct SizingSettings {
    pub model: String,
    pub context_limit: Option<u32>,
    pub cost_cap: Option<u32>,
    pub max_tokens: Option<u32>,
    /// The windows of the last `memchat models` listing.
    pub listed_windows: Vec<(String, u32)>,
}

/// The sizing settings by the usual precedence.
pub fn sizing_settings(args: &ChatArgs, file: &FileConfig) -> Result<SizingSettings, UsageError> {
    let no_flag_sources = |_: &str| None;
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let listed_windows = listed_windows(&memory_dir);
    let listed = |model: &str| listed_window(&listed_windows, model);
    let presets = Presets::choose(None, file.profile.as_deref(), &file.roles, &file.profiles)?;
    let mut r = Resolver::new(&no_flag_sources, None);
    let choice = pick_model(&mut r, args, file, &presets, &listed)?;
    Ok(SizingSettings {
        model: choice.model,
        context_limit: choice.context_limit,
        cost_cap: choice.cost_cap,
        max_tokens: choice.max_tokens,
        listed_windows,
    })
}

/// The windows the last listing of the server's models (kept in
/// `memory_dir` by `memchat models`) reports, by model.
fn listed_windows(memory_dir: &Path) -> Vec<(String, u32)> {
    crate::catalog::load(memory_dir)
        .iter()
        .flat_map(|l| &l.models)
        .filter_map(|m| Some((m.id.clone(), m.window?)))
        .collect()
}

/// The window `windows` (see [`listed_windows`]) holds for `model`.
pub fn listed_window(windows: &[(String, u32)], model: &str) -> Option<u32> {
    let found = windows.iter().find(|(name, _)| name == model);
    found.map(|(_, window)| *window)
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
    let store = store_url(args, file)?;
    let store = r.pick(
        "store",
        args.store.as_ref().and(store.clone()),
        file.store.as_ref().and(store),
    );
    // Which names a new session may take depends on what the store holds;
    // PostgreSQL checks when the session is opened.
    if store.is_none() {
        memory::check_session_name(&memory_dir, &session).map_err(|e| UsageError(e.to_string()))?;
    }
    let listed_windows = listed_windows(&memory_dir);
    let listed = |model: &str| listed_window(&listed_windows, model);
    let role = r.pick("role", args.role.clone(), None);
    let profile = r.pick("profile", args.profile.clone(), file.profile.clone());
    let presets = Presets::choose(
        role.as_deref(),
        profile.as_deref(),
        &file.roles,
        &file.profiles,
    )?;
    let choice = pick_model(&mut r, args, file, &presets, &listed)?;
    let sampling = sampling(&mut r, args, file, &presets)?;
    let unroled = {
        let without_role = Presets {
            role: None,
            profile: presets.profile.clone(),
        };
        let mut scratch = Resolver::new(flag_source, file_path);
        let sampling = self::sampling(&mut scratch, args, file, &without_role)?;
        (sampling, args.max_tokens.or(file.max_tokens))
    };
    let system_prompt = r.pick_in(
        "system",
        args.system.clone(),
        presets.layers(|r| r.system.clone(), |_| None),
        file.system.clone(),
    );
    // A role chosen now sets the prompt of the session, as --system does.
    let role_prompt = presets
        .role
        .as_ref()
        .is_some_and(|(_, r)| r.system.is_some());
    r.pick_or("color", args.color, file_color(file)?, ColorMode::default());
    let backend = if args.mock {
        r.record("backend", "mock".into(), "--mock".into());
        Backend::Mock {
            delay: Duration::from_millis(args.mock_delay_ms.unwrap_or(0)),
        }
    } else {
        Backend::OpenAi(openai_settings(
            &mut r,
            args,
            file,
            &presets,
            api_key,
            &choice.model,
        )?)
    };
    let notices = (choice.notice.into_iter())
        .chain(sampling_notice(&choice.model, sampling))
        .collect();
    let show_usage = args.show_usage.then_some(true);
    let show_usage = r.pick_or("show_usage", show_usage, file.show_usage, false);
    let (file_mode, file_percent) = file_recall(file)?;
    let recall = r.pick_or(
        "recall",
        args.recall,
        file_mode,
        crate::recall::Mode::default(),
    );
    let recall_percent = r.pick_or(
        "recall_percent",
        args.recall_percent,
        file_percent,
        crate::recall::DEFAULT_PERCENT,
    );
    Ok(Config {
        session,
        memory_dir,
        store,
        model: choice.model,
        backend,
        budget: choice.budget,
        context_limit: choice.context_limit,
        cost_cap: choice.cost_cap,
        max_tokens: choice.max_tokens,
        notices,
        sampling,
        unroled,
        system_prompt,
        system_explicit: args.system.is_some() || role_prompt,
        role,
        roles: file.roles.clone(),
        key_variable: presets
            .profile
            .as_ref()
            .and_then(|(_, p)| p.api_key_env.clone()),
        lock_wait: lock_wait(args),
        origins: r.origins,
        prices: file.prices.clone(),
        show_usage,
        recall,
        recall_percent,
        extract: args.extract,
        files: args.files.clone(),
        listed_windows,
    })
}

/// The variable the API key is read from without a profile.
pub const DEFAULT_KEY_VAR: &str = "OPENAI_API_KEY";

/// The variable the key comes from: the profile's `api_key_env`, else
/// `OPENAI_API_KEY`.
fn key_variable(presets: &Presets) -> &str {
    presets
        .profile
        .as_ref()
        .and_then(|(_, p)| p.api_key_env.as_deref())
        .unwrap_or(DEFAULT_KEY_VAR)
}

/// How to reach an OpenAI-compatible server: URL, key, streaming, patience.
fn openai_settings(
    r: &mut Resolver<'_>,
    args: &ChatArgs,
    file: &FileConfig,
    presets: &Presets,
    api_key: Option<String>,
    model: &str,
) -> Result<OpenAiSettings, UsageError> {
    // `/v1/` would become `/v1//chat/completions`, a 404 on strict servers.
    let normalize = |url: &String| url.trim().trim_end_matches('/').to_string();
    let base_url = r.pick_in_or(
        "base_url",
        args.base_url.as_ref().map(normalize),
        presets.layers(|_| None, |p| p.base_url.as_ref().map(normalize)),
        file.base_url.as_ref().map(normalize),
        OPENAI_BASE_URL.to_string(),
    );
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(UsageError(format!(
            "the base URL {base_url:?} must start with http:// or https://"
        )));
    }
    // A profile names its own key's variable, or sends none: the OpenAI key
    // must not reach a server it was not meant for.
    let (api_key, key_source) = match &presets.profile {
        Some((name, profile)) => match &profile.api_key_env {
            Some(var) => (
                std::env::var(var).ok(),
                format!("environment {var} (profile {name})"),
            ),
            None => (None, format!("profile {name} names no api_key_env")),
        },
        None => (api_key, format!("environment {DEFAULT_KEY_VAR}")),
    };
    let api_key = api_key.filter(|k| !k.trim().is_empty());
    if let Some(key) = &api_key {
        let var = key_variable(presets);
        crate::client::openai::check_api_key(key)
            .map_err(|problem| UsageError(format!("{var} {problem}")))?;
    }
    let key_state = if api_key.is_some() {
        "(set)"
    } else {
        "(not set)"
    };
    r.record("api_key", key_state.into(), key_source);
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

#[cfg(test)]
mod tests;
