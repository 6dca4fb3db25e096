//! Running one invocation: open the session, build the engine from the
//! `Config`, pick the mode (REPL, one-shot, script, management command) and
//! turn the outcome into an exit status.

use std::io::{IsTerminal, Read, Write};

use anyhow::Context;

use crate::chat::{Engine, TurnError, TurnReport};

use crate::cli::{Cli, Command, FormatArg};
use crate::client::ChatModel;
use crate::client::mock::MockModel;
use crate::client::openai::OpenAiModel;
use crate::config::{self, Backend, Config, UsageError};
use crate::interrupt::{Interrupt, Termination};
use crate::manage::{self, ExportFormat};
use crate::memory::format::Role;
use crate::memory::{self, Session, StoreError};
use crate::render::{self, Notices};
use crate::tokens::TokenCounter;
use crate::{repl, script};

/// Exit statuses, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The model or the network failed (after retries).
    ModelFailed = 1,
    /// A usage or configuration error.
    Usage = 2,
    /// The memory store failed: corrupt, locked, unwritable.
    Store = 3,
    /// Ctrl-C.
    Interrupted = 130,
    /// SIGHUP (the terminal closed), after saving the partial reply.
    Hangup = 129,
    /// SIGTERM, after saving the partial reply.
    Terminated = 143,
}

impl From<Termination> for Exit {
    fn from(signal: Termination) -> Exit {
        match signal {
            Termination::Hangup => Exit::Hangup,
            Termination::Terminate => Exit::Terminated,
        }
    }
}

/// The exit status for an error, by its kind.
pub fn exit_for_error(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if cause.is::<StoreError>() {
            return Exit::Store;
        }
        if cause.is::<UsageError>() || cause.is::<clap::Error>() {
            return Exit::Usage;
        }
        if let Some(turn) = cause.downcast_ref::<TurnError>() {
            return match turn {
                TurnError::Store(_) => Exit::Store,
                TurnError::Model(_) => Exit::ModelFailed,
                TurnError::Refused(_) => Exit::Usage,
            };
        }
    }
    Exit::ModelFailed
}

/// Past a file size limit (`ulimit -f`) the kernel sends SIGXFSZ, whose
/// default action kills the process mid-write. With a handler installed the
/// write fails with EFBIG instead, and the store reports it and cuts the file
/// back: a clear error rather than a dead process.
fn survive_file_size_limit() {
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

/// Runs the parsed command line. `flag_source` says whether a flag's value
/// came from the command line or the environment (for `--print-config`).
pub async fn run(cli: Cli, flag_source: config::FlagSource<'_>) -> anyhow::Result<Exit> {
    survive_file_size_limit();
    let file_path = config::config_file_path();
    let file = config::load_file(file_path.as_deref())?;
    let color = match (&cli.chat.color, &file.color) {
        (Some(mode), _) => *mode,
        (None, Some(text)) => text.parse().map_err(UsageError)?,
        (None, None) => render::ColorMode::Auto,
    };
    render::set_color_mode(color);
    let notices = Notices::for_stderr();
    if let Some(command) = &cli.command {
        return run_command(command, &cli, &file);
    }
    let mut chat_args = cli.chat.clone();
    if chat_args.continue_last {
        let dir = config::resolve_memory_dir(
            chat_args.memory_dir.as_deref(),
            file.memory_dir.as_deref(),
        )?;
        match manage::most_recent(&dir)? {
            Some(name) => {
                notices.info(&format!("continuing session {name:?}"));
                chat_args.session = Some(name);
            }
            None => notices.info("no session to continue yet; starting the default one"),
        }
    }
    let api_key = std::env::var("OPENAI_API_KEY").ok();
    let config = config::resolve(
        &chat_args,
        &file,
        file_path.as_deref(),
        api_key,
        flag_source,
    )?;
    if chat_args.print_config {
        print!("{}", config.describe());
        return Ok(Exit::Success);
    }
    for notice in &config.notices {
        notices.info(notice);
    }
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let prompt = one_shot_prompt(&cli.prompt, stdin_is_terminal)?;
    let mut engine = open_engine(&config, notices)?;
    if chat_args.new {
        let moved = engine.session_mut().clear()?;
        if moved > 0 {
            notices.info(&format!(
                "started afresh: {moved} records moved to the archive"
            ));
        }
    }
    let mut interrupt = Interrupt::install();
    // A SIGTERM or SIGHUP during a turn ends any mode once the turn is saved;
    // the exit status says which signal it was.
    let signals = interrupt.clone();
    let exit = match prompt {
        Some(prompt) => one_shot(&mut engine, &prompt, &mut interrupt, notices).await,
        None if stdin_is_terminal => repl::run(engine, config, interrupt, notices).await,
        None => {
            script::run(
                &mut engine,
                &config,
                std::io::stdin().lock(),
                &mut interrupt,
                notices,
            )
            .await
        }
    }?;
    Ok(signals.termination().map_or(exit, Exit::from))
}

fn valid_name(name: &str) -> Result<(), UsageError> {
    memory::validate_session_name(name).map_err(|e| UsageError(e.to_string()))
}

/// The management commands.
fn run_command(command: &Command, cli: &Cli, file: &config::FileConfig) -> anyhow::Result<Exit> {
    let dir =
        config::resolve_memory_dir(cli.chat.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let lock_wait = config::lock_wait(&cli.chat);
    // What a session holds came from outside (the model): on a terminal its
    // control characters are shown, not executed; a pipe gets the bytes.
    let terminal = std::io::stdout().is_terminal();
    let mut out = crate::visible::Writer::new(std::io::stdout().lock(), terminal);
    match command {
        Command::Sessions => {
            let (model, budget) = config::model_and_budget(&cli.chat, file)?;
            manage::list(&dir, &budget, &TokenCounter::for_model(&model), &mut out)?;
        }
        Command::Show { name, all, json } => {
            valid_name(name)?;
            manage::show(&dir, name, *all, *json, &mut out)?;
        }
        Command::Export {
            name,
            format,
            output,
        } => {
            valid_name(name)?;
            let format = match (format, output) {
                (Some(FormatArg::Json), _) => ExportFormat::Json,
                (Some(FormatArg::Markdown), _) => ExportFormat::Markdown,
                (None, Some(path)) => ExportFormat::for_path(path),
                (None, None) => ExportFormat::Json,
            };
            let text = manage::export_text(&dir, name, format)?;
            match output {
                Some(path) => {
                    manage::write_export(path, &text)?;
                    eprintln!("memchat: exported session {name:?} to {}", path.display());
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
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
            valid_name(&name).map_err(|e| UsageError(format!("{e}; choose one with --as NAME")))?;
            manage::import(&dir, source, &name, lock_wait, &mut out)?;
        }
        Command::Delete { name, yes } => {
            valid_name(name)?;
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let ask: Option<&mut dyn std::io::BufRead> = if stdin.is_terminal() {
                Some(&mut lock)
            } else {
                None
            };
            manage::delete(&dir, name, *yes, ask, lock_wait, &mut out)?;
        }
        Command::Rename { from, to } => {
            valid_name(from)?;
            valid_name(to)?;
            memory::rename_session(&dir, from, to, lock_wait)?;
            writeln!(out, "renamed session {from:?} to {to:?}")?;
        }
        Command::Repair { name } => {
            valid_name(name)?;
            let report = memory::repair::repair(&dir, name, lock_wait)?;
            out.write_all(report.describe(name).as_bytes())?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut crate::cli::command(), "memchat", &mut out);
        }
        Command::Man => {
            clap_mangen::Man::new(crate::cli::command()).render(&mut out)?;
        }
    }
    out.finish()?;
    Ok(Exit::Success)
}

/// The prompt of a one-shot run, if this is one: the prompt words, with piped
/// stdin attached after a blank line; `-` alone means all of stdin.
fn one_shot_prompt(words: &[String], stdin_is_terminal: bool) -> anyhow::Result<Option<String>> {
    if words.is_empty() {
        return Ok(None);
    }
    let read_stdin = || -> anyhow::Result<String> {
        let cap = crate::memory::format::MAX_CONTENT_BYTES;
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(cap as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        if bytes.len() > cap {
            return Err(UsageError(format!(
                "stdin holds more than {cap} bytes, the most one message may hold; nothing was saved"
            ))
            .into());
        }
        String::from_utf8(bytes).map_err(|e| {
            UsageError(format!(
                "stdin is not UTF-8 text (invalid byte at offset {}); memchat sends text only",
                e.utf8_error().valid_up_to()
            ))
            .into()
        })
    };
    if words.len() == 1 && words[0] == "-" {
        if stdin_is_terminal {
            return Err(UsageError(
                "the prompt `-` reads stdin, but stdin is a terminal; pipe the prompt in".into(),
            )
            .into());
        }
        return Ok(Some(
            read_stdin()?.trim_end_matches(['\n', '\r']).to_string(),
        ));
    }
    let mut prompt = words.join(" ");
    if !stdin_is_terminal {
        let attached = read_stdin()?;
        if !attached.trim().is_empty() {
            prompt.push_str("\n\n");
            prompt.push_str(attached.trim_end_matches('\n'));
        }
    }
    Ok(Some(prompt))
}

/// The model client for the configuration.
/// The model client for the configuration, with the token counter for its model.
pub fn model_for(config: &Config) -> anyhow::Result<(Box<dyn ChatModel>, TokenCounter)> {
    let counter = TokenCounter::for_model(&config.model);
    let model: Box<dyn ChatModel> = match &config.backend {
        Backend::Mock { delay } => Box::new(MockModel::new(counter, *delay)),
        Backend::OpenAi(settings) => Box::new(OpenAiModel::new(settings.clone())?),
    };
    Ok((model, counter))
}

/// Opens (and locks) session `name` the one way every front-end does:
/// recovered torn writes are reported, the configured system prompt applied.
pub fn open_session(config: &Config, name: &str, notices: Notices) -> Result<Session, StoreError> {
    let mut session = Session::open(&config.memory_dir, name, config.lock_wait)?;
    for notice in session.take_notices() {
        notices.warn(&notice);
    }
    if session.is_new() {
        let dir = std::path::absolute(&config.memory_dir).unwrap_or(config.memory_dir.clone());
        notices.info(&format!("new session {name:?} in {}", dir.display()));
    }
    apply_system_prompt(
        &mut session,
        config.system_prompt.as_deref(),
        config.system_explicit,
        notices,
    )?;
    Ok(session)
}

/// Opens the configured session with the configured model.
pub fn open_engine(config: &Config, notices: Notices) -> anyhow::Result<Engine> {
    let session = open_session(config, &config.session, notices)?;
    let (model, counter) = model_for(config)?;
    Ok(Engine::new(session, model, counter, config.budget))
}

/// `--system` sets the prompt of a new session; on an existing session with a
/// different prompt, an explicit flag replaces it (the old one is archived).
fn apply_system_prompt(
    session: &mut Session,
    prompt: Option<&str>,
    explicit: bool,
    notices: Notices,
) -> Result<(), StoreError> {
    let Some(prompt) = prompt.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    match session.system().map(|s| s.content.as_str()) {
        Some(current) if current == prompt => Ok(()),
        Some(_) if !explicit => Ok(()),
        current => {
            if current.is_some() {
                notices.info("system prompt replaced; the old one is in the archive");
            }
            session
                .append(Role::System, prompt.to_string(), None, false, None)
                .map(|_| ())
        }
    }
}

/// One turn, then exit.
async fn one_shot(
    engine: &mut Engine,
    prompt: &str,
    interrupt: &mut Interrupt,
    notices: Notices,
) -> anyhow::Result<Exit> {
    let mut stdout = render::ReplyOutput::stdout(true);
    let result = engine.send(prompt, &mut stdout, interrupt).await;
    Ok(report_turn(result, &mut stdout, notices)?)
}

/// Prints what a turn left to say and returns the exit status it implies.
/// Model errors are reported here; store and refusal errors propagate.
/// The reply output is finished first (spinner stopped, held-back Markdown
/// written) so notices never interleave with it.
pub fn report_turn<W: Write>(
    result: Result<TurnReport, TurnError>,
    out: &mut render::ReplyOutput<W>,
    notices: Notices,
) -> Result<Exit, TurnError> {
    let _ = out.finish();
    let report = match result {
        Ok(report) => report,
        Err(TurnError::Model(e)) => {
            notices.error(&format!(
                "{e} (your message is saved; send it again with /retry or rerun)"
            ));
            return Ok(Exit::ModelFailed);
        }
        Err(e) => return Err(e),
    };
    let _ = render::finish_reply(out, &report.reply);
    for notice in &report.notices {
        notices.info(notice);
    }
    if let Some(why) = &report.truncated {
        notices.warn(&format!(
            "{why}; it was stopped there and saved, marked truncated"
        ));
    }
    if report.skipped_chunks > 0 {
        notices.warn(&format!(
            "{} malformed chunks from the server were skipped",
            report.skipped_chunks
        ));
    }
    if let Some(compaction) = &report.compaction {
        if compaction.fallback_reason.is_some() {
            notices.warn(&compaction.to_string());
        } else {
            notices.info(&compaction.to_string());
        }
    }
    if let Some(signal) = report.signal {
        notices.warn(&format!(
            "{} received; {}; exiting",
            signal.signal_name(),
            if report.interrupted {
                "the partial reply is saved, marked interrupted"
            } else {
                "the reply is saved"
            }
        ));
        return Ok(signal.into());
    }
    if report.by_user {
        if report.interrupted {
            notices.warn("interrupted; the partial reply is saved, marked interrupted");
        } else {
            notices.warn("interrupted; the reply is saved");
        }
        return Ok(Exit::Interrupted);
    }
    if let Some(e) = &report.stream_error {
        notices.error(&format!(
            "the reply was cut off: {e}; the partial reply is saved, marked interrupted"
        ));
        return Ok(Exit::ModelFailed);
    }
    if report.interrupted {
        // The stream closed without a finish reason: the text is incomplete.
        notices.error(
            "the connection closed before the reply was finished; the partial reply is saved, \
             marked interrupted (/retry asks again)",
        );
        return Ok(Exit::ModelFailed);
    }
    Ok(Exit::Success)
}
