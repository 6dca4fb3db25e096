//! The `memchat` binary: parse the command line, resolve the configuration,
//! dispatch to a mode, map the outcome to an exit code. Everything else
//! lives in the library (`lib.rs` shows its floors).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::parser::ValueSource;
use memchat::cli::{self, Cli, Command};
use memchat::config::{self, Config};
use memchat::exit::{self, Exit};
use memchat::interrupt::{Interrupt, Starting};
use memchat::render::Output;
use memchat::{complete, manage, manpage, oneshot, repl, script, setup, visible};

fn main() -> ExitCode {
    // A Tab in the shell runs memchat to ask for completions: answer, exit.
    complete::answer_if_asked();
    let (cli, matches) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    // Where each flag's value came from, for --print-config.
    let flag_source = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some("command line".to_string()),
        Some(ValueSource::EnvVariable) => Some(config::ENVIRONMENT.to_string()),
        _ => None,
    };
    // One thread is plenty for one conversation, and starts fastest.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("memchat: error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::ModelFailed.code());
        }
    };
    match runtime.block_on(run(cli, &flag_source)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let exit = exit::exit_for_error(&e);
            if exit != Exit::Success {
                eprintln!("memchat: error: {}", exit::shown_error(&e));
            }
            ExitCode::from(exit.code())
        }
    }
}

/// Runs the parsed command line: a management command, or a chat mode.
async fn run(cli: Cli, flag_source: config::FlagSource<'_>) -> anyhow::Result<Exit> {
    setup::survive_file_size_limit();
    let file_path = config::config_file_path()?;
    let file = config::load_file(file_path.as_deref())?;
    let output = &Output::for_process(config::color_mode(cli.chat.color, &file)?);
    let api_key = std::env::var("OPENAI_API_KEY").ok();
    if let Some(Command::Models) = &cli.command {
        // Asks the server: resolved like a chat, so the same flags reach it.
        let config = config::resolve(&cli.chat, &file, file_path.as_deref(), api_key, flag_source)?;
        config.ready()?;
        let mut out = visible::Writer::new(std::io::stdout().lock(), output.stdout_is_terminal());
        setup::models_command(config, &mut out).await?;
        out.finish()?;
        return Ok(Exit::Success);
    }
    if let Some(command) = &cli.command {
        return manage_command(command, &cli, &file, output);
    }
    let mut args = cli.chat.clone();
    let stdin_is_terminal = std::io::stdin().is_terminal();
    // A one-shot's prompt (with what stdin holds) is read and checked once
    // the configuration is (a bad flag fails at once, whatever feeds stdin)
    // and before anything is opened: it then takes its turn at once, so a
    // PostgreSQL store creates and locks the session with its first round
    // trip. Not when it attaches files (read after the store opens, the lock
    // would be held meanwhile).
    let read_prompt = || -> anyhow::Result<(Option<String>, bool)> {
        let prompt = oneshot::prompt(&cli.prompt, stdin_is_terminal)?;
        let turn_at_once = prompt.is_some() && cli.chat.files.is_empty();
        Ok((prompt, turn_at_once))
    };
    let mut prompt = None;
    let mut turn_at_once = false;
    // `--continue` finds the session in the store the chat then uses (one
    // connection, which loads that session as it finds it): the
    // configuration is checked, and the prompt read, before that.
    let mut store = None;
    if args.continue_last {
        if !args.print_config {
            // Checked for a session name that surely passes (the one
            // continued replaces it, whatever the file says).
            let mut unnamed = args.clone();
            unnamed.session = Some(memchat::memory::DEFAULT_SESSION.to_string());
            let unnamed = config::resolve(
                &unnamed,
                &file,
                file_path.as_deref(),
                api_key.clone(),
                flag_source,
            )?;
            unnamed.ready()?;
            (prompt, turn_at_once) = read_prompt()?;
        }
        let (name, opened) = setup::session_to_continue(
            config::store_url(&args, &file)?.as_ref(),
            args.memory_dir.as_deref(),
            file.memory_dir.as_deref(),
            config::lock_wait(&args),
            turn_at_once,
            output,
        )?;
        args.session = name.or(args.session);
        store = Some(opened);
    }
    let mut config = config::resolve(&args, &file, file_path.as_deref(), api_key, flag_source)?;
    if args.print_config {
        setup::config_with_session(&mut config, store)?;
        print!("{}", config.describe());
        return Ok(Exit::Success);
    }
    config.ready()?;
    for notice in &config.notices {
        output.info(notice);
    }
    if !args.continue_last {
        (prompt, turn_at_once) = read_prompt()?;
    }
    let opening = Opening {
        prompt,
        stdin_is_terminal,
        turn_at_once,
        store,
    };
    chat(config, opening, args.new, output).await
}

/// What a chat starts with, found before its configuration was resolved.
struct Opening {
    /// A one-shot's prompt; `None` for the REPL or a script.
    prompt: Option<String>,
    stdin_is_terminal: bool,
    /// Whether the first turn starts as soon as the session is open.
    turn_at_once: bool,
    /// The store, when `--continue` opened it already.
    store: Option<std::sync::Arc<dyn memchat::store::Store>>,
}

/// A management command (`memchat sessions`, `show`, ..., `completions`).
fn manage_command(
    command: &Command,
    cli: &Cli,
    file: &config::FileConfig,
    output: &Output,
) -> anyhow::Result<Exit> {
    // What a session holds came from outside (the model): on a terminal its
    // control characters are shown, not executed; a pipe gets the bytes.
    let terminal = output.stdout_is_terminal();
    let mut out = visible::Writer::new(std::io::stdout().lock(), terminal);
    match config::management(command, &cli.chat, file)? {
        Some(management) => manage::run(management, output, &mut out)?,
        None => match command {
            Command::Completions { shell } => complete::write_script(*shell, &mut out)?,
            Command::Man => manpage::render(&mut out)?,
            Command::Roles => write!(out, "{}", config::roles_listing(&file.roles))?,
            // `config::management` made every other command plain data.
            _ => {}
        },
    }
    out.finish()?;
    Ok(Exit::Success)
}

/// A chat mode: one-shot with a prompt, the REPL on a terminal, else a
/// script from stdin. `new` starts the session afresh first.
async fn chat(
    mut config: Config,
    opening: Opening,
    new: bool,
    output: &Output,
) -> anyhow::Result<Exit> {
    let Opening {
        prompt,
        stdin_is_terminal,
        turn_at_once,
        store,
    } = opening;
    // Before the attachments are read, so that a PostgreSQL store connects
    // (and loads the session) meanwhile.
    let store = match store {
        Some(store) => store,
        None => setup::open_store(&config, turn_at_once)?,
    };
    // On PostgreSQL the signal handlers' thread starts while the store
    // connects (after the connection's own thread, which goes first); until
    // they are armed (below), every signal keeps its default action. Not on
    // files: there is nothing to overlap, and a thread started before the
    // session opens would cost its address space (a malloc arena) to runs
    // that end in a store error, such as a run under a tight `ulimit -v`.
    let signals_starting = config.store.is_some().then(Interrupt::start);
    let files = setup::read_attachments(&config.files, output)?;
    let mut engine = setup::open_engine(&mut config, store, output)?;
    setup::attach_files(&mut engine, files, output)?;
    if new {
        let moved = engine.clear()?;
        if moved > 0 {
            output.info(&format!(
                "started afresh: {} moved to the archive",
                memchat::render::counted(moved as u64, "record")
            ));
        }
    }
    let mut interrupt = signals_starting.map_or_else(Interrupt::start_armed, Starting::arm);
    // A SIGTERM or SIGHUP during a turn ends any mode once the turn is saved;
    // the exit status says which signal it was.
    let signals = interrupt.clone();
    let outcome = match prompt {
        Some(prompt) => {
            oneshot::run(&mut engine, &mut config, &prompt, &mut interrupt, output).await
        }
        None if stdin_is_terminal => repl::run(engine, config, interrupt, output).await,
        None => {
            let stdin = std::io::stdin().lock();
            script::run(&mut engine, &config, stdin, &mut interrupt, output).await
        }
    };
    match outcome {
        Ok(exit) => Ok(signals.termination().map_or(exit, Exit::from)),
        // A signal ended what the run waited on (an attempt to connect to
        // the store again): the error is shown, and the status is the
        // signal's, as for any run a signal stopped.
        Err(e) if signals.fired() => {
            eprintln!("memchat: error: {}", exit::shown_error(&e));
            Ok(signals.termination().map_or(Exit::Interrupted, Exit::from))
        }
        Err(e) => Err(e),
    }
}
