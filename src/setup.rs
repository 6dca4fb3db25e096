//! Turning a resolved [`Config`] into live objects: the model client with its
//! token counter, an opened (locked) session with the configured system
//! prompt, and the engine that holds them. Every front-end, and the `/model`
//! and `/session` commands, build them here, so they are built one way.

use std::path::Path;
use std::time::Duration;

use crate::attach::{self, Attachment};
use crate::catalog;
use crate::chat::Engine;
use crate::client::ChatModel;
use crate::client::mock::MockModel;
use crate::client::openai::OpenAiModel;
use crate::client::tls::PrebuiltHttp;
use crate::config::{self, Backend, Config, StoreUrl};
use crate::manage;
use crate::render::Output;
use crate::session_settings;
use crate::store::{SessionStore, Store};
use crate::tokens::TokenCounter;
use std::sync::Arc;

/// Past a file size limit (`ulimit -f`) the kernel sends SIGXFSZ, whose
/// default action kills the process mid-write. With a handler installed the
/// write fails with EFBIG instead, and the store reports it and cuts the file
/// back: a clear error rather than a dead process. Call inside the runtime.
pub fn survive_file_size_limit() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
        {
            tokio::spawn(async move { while signal.recv().await.is_some() {} });
        }
    }
}

/// The session `--continue` picks: the most recently used one in the store
/// (PostgreSQL, or the memory directory: flag/env > file > default), or
/// `None` with a notice when there is none yet; with the store, for the
/// chat to use. On PostgreSQL the connection loads that session as it finds
/// it, and takes its turn lock with `turn_at_once`, as [`open_store`] does
/// for a named session.
pub fn session_to_continue(
    store: Option<&StoreUrl>,
    flag_dir: Option<&Path>,
    file_dir: Option<&Path>,
    lock_wait: Duration,
    turn_at_once: bool,
    output: &Output,
) -> anyhow::Result<(Option<String>, Arc<dyn Store>)> {
    let dir = config::resolve_memory_dir(flag_dir, file_dir)?;
    let first = crate::pg::Prefetch {
        session: None,
        lock: turn_at_once,
    };
    let store = manage::open_store(store, &dir, lock_wait, Some(first))?;
    let name = store.most_recent()?;
    match &name {
        Some(name) => output.info(&format!("continuing session {name:?}")),
        None => output.info("no session to continue yet; starting the default one"),
    }
    Ok((name, store))
}

/// The model client for the configuration, with the token counter for its model.
pub fn model_for(config: &Config) -> anyhow::Result<(Box<dyn ChatModel>, TokenCounter)> {
    model_with(config, None)
}

/// [`model_for`], taking an HTTP client built beforehand if it fits.
fn model_with(
    config: &Config,
    http: Option<PrebuiltHttp>,
) -> anyhow::Result<(Box<dyn ChatModel>, TokenCounter)> {
    let counter = TokenCounter::for_model(&config.model);
    let model: Box<dyn ChatModel> = match &config.backend {
        Backend::Mock { delay } => Box::new(MockModel::new(counter, *delay)),
        Backend::OpenAi(settings) => Box::new(OpenAiModel::with_http(settings.clone(), http)?),
    };
    Ok((model, counter))
}

/// The store the configuration names: PostgreSQL (`--store`) or the memory
/// directory. PostgreSQL connects in the background from here on, and
/// loads the configured session with its first round trip; with
/// `turn_at_once` (a one-shot with nothing left to wait for) it also takes
/// the session's turn lock in that round trip.
pub fn open_store(
    config: &Config,
    turn_at_once: bool,
) -> Result<Arc<dyn Store>, crate::memory::StoreError> {
    manage::open_store(
        config.store.as_ref(),
        &config.memory_dir,
        config.lock_wait,
        Some(crate::pg::Prefetch {
            session: Some(config.session.clone()),
            lock: turn_at_once,
        }),
    )
}

/// Opens (and locks) session `name` the one way every front-end does:
/// recovered torn writes are reported as warnings.
pub fn open_session(
    store: &dyn Store,
    name: &str,
    output: &Output,
) -> Result<Box<dyn SessionStore>, crate::memory::StoreError> {
    let mut session = store.open_session(name)?;
    for notice in session.take_notices() {
        output.warn(&notice);
    }
    if session.is_new() {
        output.info(&format!("new session {name:?} in {}", store.location()));
    }
    Ok(session)
}

/// Opens the configured session, applies its recorded model and window to
/// `config` (unless this run sets them), records what the run uses, and
/// applies the configured system prompt through the engine (so it meets the
/// budget).
pub fn open_engine(
    config: &mut Config,
    store: Arc<dyn Store>,
    output: &Output,
) -> anyhow::Result<Engine> {
    // Built now, while a PostgreSQL store may still be connecting (the
    // session is awaited below); the model client takes it (unless the
    // session's settings changed its timeouts).
    let http = match &config.backend {
        Backend::OpenAi(settings) => crate::client::tls::prebuild_http_client(
            settings.connect_timeout,
            settings.idle_timeout,
        ),
        Backend::Mock { .. } => None,
    };
    let name = config.session.clone();
    let mut session = open_session(store.as_ref(), &name, output)?;
    adopt_settings(config, session.as_mut(), output)?;
    let (model, counter) = model_with(config, http)?;
    let mut engine = Engine::new(store, session, model, counter, config.budget);
    engine.set_sampling(config.sampling);
    engine.set_recall(config.recall, config.recall_percent);
    apply_system_prompt(&mut engine, config, output)?;
    Ok(engine)
}

/// The session's recorded settings applied to `config` (notices on
/// stderr), then the run's settings recorded in the session.
fn adopt_settings(
    config: &mut Config,
    session: &mut dyn SessionStore,
    output: &Output,
) -> Result<(), crate::chat::TurnError> {
    let notices = session_settings::apply(config, session.name(), session.settings())
        .map_err(|e| crate::chat::TurnError::Refused(e.to_string()))?;
    for notice in notices {
        output.info(&notice);
    }
    // Written with the run's first message: a run that stores nothing
    // leaves the log untouched.
    session.set_settings(&session_settings::of_run(config), false)?;
    Ok(())
}

/// The configuration `--print-config` shows for the configured session:
/// its recorded settings applied, read without a lock or any change; from
/// `store` when `--continue` opened it already.
pub fn config_with_session(
    config: &mut Config,
    store: Option<Arc<dyn Store>>,
) -> anyhow::Result<()> {
    let store = match store {
        Some(store) => store,
        None => open_store(config, false)?,
    };
    let recorded = match store.read_session(&config.session, false) {
        Ok(contents) => contents.active.settings,
        Err(crate::memory::StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let name = config.session.clone();
    let notices = session_settings::apply(config, &name, &recorded)?;
    config.notices.extend(notices);
    Ok(())
}

/// Switches the engine to session `name` (`/session NAME`): the new one is
/// opened (and locked) before the old one is let go, exactly as `--session`
/// would open it: its recorded settings, the configured system prompt.
pub fn switch_session(
    engine: &mut Engine,
    config: &mut Config,
    name: &str,
    output: &Output,
) -> Result<(), crate::chat::TurnError> {
    let mut session = open_session(engine.store().as_ref(), name, output)?;
    let mut next = config.clone();
    adopt_settings(&mut next, session.as_mut(), output)?;
    let (model, counter) =
        model_for(&next).map_err(|e| crate::chat::TurnError::Refused(format!("{e:#}")))?;
    let previous = engine.replace_session(session);
    if let Err(e) = apply_system_prompt(engine, &next, output) {
        engine.replace_session(previous);
        return Err(e);
    }
    engine.set_model(model, counter, next.budget);
    *config = next;
    Ok(())
}

/// `--system` sets the prompt of a new session; on an existing session with a
/// different prompt, an explicit flag replaces it (the old one is archived).
fn apply_system_prompt(
    engine: &mut Engine,
    config: &Config,
    output: &Output,
) -> Result<(), crate::chat::TurnError> {
    let Some(prompt) = config
        .system_prompt
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    match engine.system_prompt() {
        Some(current) if current == prompt => Ok(()),
        Some(_) if !config.system_explicit => Ok(()),
        current => {
            let replaced = current.is_some();
            engine.set_system(prompt)?;
            if replaced {
                output.info("system prompt replaced; the old one is in the archive");
            }
            Ok(())
        }
    }
}

/// Asks the configured server (or the mock) for its models. A real
/// server's listing is kept in the memory directory (for completion, and for
/// the window of models memchat does not know) and its windows apply to
/// `config` at once; the mock's is not kept (it would hide the real one).
pub async fn list_models(config: &mut Config) -> Result<catalog::Listing, crate::chat::TurnError> {
    let settings = match &config.backend {
        Backend::Mock { .. } => None,
        Backend::OpenAi(settings) => Some(settings),
    };
    let listing = catalog::fetch(settings).await?;
    if settings.is_some() {
        catalog::save(&config.memory_dir, &listing)?;
        config.listed_windows = listing
            .models
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.window?)))
            .collect();
    }
    Ok(listing)
}

/// `memchat models`: the listing as a table, the configured model marked.
pub async fn models_command(
    mut config: Config,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let listing = list_models(&mut config).await?;
    let current = match config.backend {
        Backend::Mock { .. } => crate::client::mock::MOCK_NAME.to_string(),
        Backend::OpenAi(_) => config.model.clone(),
    };
    out.write_all(catalog::table(&listing, &current).as_bytes())?;
    if current == crate::client::mock::MOCK_NAME {
        out.write_all(MOCK_MODELS_NOTE.as_bytes())?;
    }
    Ok(())
}

/// What `/models` and `memchat models` add under the mock's listing.
pub const MOCK_MODELS_NOTE: &str =
    "(--mock: the mock answers whatever model is named; the name only sizes the budget)\n";

/// Reads the files `-f` names, before any session is opened: a binary or
/// unreadable file stops the run (exit 2); binary files inside a named
/// directory are skipped with a warning.
pub fn read_attachments(
    paths: &[std::path::PathBuf],
    output: &Output,
) -> Result<Vec<Attachment>, config::UsageError> {
    let mut files = Vec::new();
    for path in paths {
        let found = attach::read(path).map_err(config::UsageError)?;
        for skipped in &found.skipped {
            output.warn(&format!("skipped {skipped}: not a text file"));
        }
        files.extend(found.attachments);
    }
    Ok(files)
}

/// Attaches `files` to the engine's next message, refused before anything
/// is stored when they cannot fit; says what was attached.
pub fn attach_files(
    engine: &mut Engine,
    files: Vec<Attachment>,
    output: &Output,
) -> Result<(), crate::chat::TurnError> {
    if files.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let tokens = engine.attach(files)?;
    output.info(&format!(
        "attached {} ({tokens} tokens): {}",
        crate::render::counted(names.len() as u64, "file"),
        names.join(", ")
    ));
    Ok(())
}
