//! The `/command` table shared by the REPL and script mode: the table (which
//! `/help` prints), a pure parser, and the handlers.

use std::io::Write;

use std::path::PathBuf;

use crate::chat::{Engine, TokenStats, TurnError, TurnReport};
use crate::config::Config;
use crate::interrupt::Interrupt;
use crate::manage::{self, ExportFormat};
use crate::memory;
use crate::render::{self, Output};
use crate::session_settings::{self, Sizing};
use crate::setup;

mod recollect;
mod reuse;

/// One entry of the table.
pub struct CommandSpec {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

/// Messages `/history` shows without a count: a screenful, enough to see
/// where the conversation stands. (Its help text below says the same.)
pub const DEFAULT_HISTORY: usize = 10;

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "help",
        args: "",
        help: "list the commands",
    },
    CommandSpec {
        name: "exit",
        args: "",
        help: "leave (Ctrl-D works too)",
    },
    CommandSpec {
        name: "history",
        args: "[N]",
        help: "show the last N messages of the active history (default 10)",
    },
    CommandSpec {
        name: "tokens",
        args: "",
        help: "show the token budget and how much of it the history uses",
    },
    CommandSpec {
        name: "compact",
        args: "",
        help: "fold the oldest turns into the summary now",
    },
    CommandSpec {
        name: "clear",
        args: "",
        help: "start afresh: move every message to the archive (the system prompt stays)",
    },
    CommandSpec {
        name: "undo",
        args: "",
        help: "move the last exchange to the archive",
    },
    CommandSpec {
        name: "retry",
        args: "",
        help: "ask for the last reply again (the old one goes to the archive)",
    },
    CommandSpec {
        name: "system",
        args: "[TEXT]",
        help: "show the system prompt, or set it",
    },
    CommandSpec {
        name: "model",
        args: "[NAME]",
        help: "show the model, or switch to another",
    },
    CommandSpec {
        name: "models",
        args: "",
        help: "list the models the server offers, with their windows",
    },
    CommandSpec {
        name: "usage",
        args: "",
        help: "tokens the server reported for this session, turns, compactions, cost if priced",
    },
    CommandSpec {
        name: "copy",
        args: "",
        help: "copy the last reply (clipboard command, else OSC 52 to the terminal)",
    },
    CommandSpec {
        name: "code",
        args: "[N] [copy]",
        help: "show the code blocks of the last reply, or block N; `copy` copies it",
    },
    CommandSpec {
        name: "edit",
        args: "[last]",
        help: "write the next message in $VISUAL/$EDITOR (Ctrl-X Ctrl-E too); `last` edits \
               and resends the last one (the old exchange goes to the archive)",
    },
    CommandSpec {
        name: "file",
        args: "[PATH]",
        help: "attach a text file (or a directory's) to the next message; alone, list them; \
               --clear drops them",
    },
    CommandSpec {
        name: "role",
        args: "[NAME]",
        help: "show the role, or take another from the config file (prompt, model, sampling)",
    },
    CommandSpec {
        name: "session",
        args: "[NAME]",
        help: "show the session, or switch to another (created if new)",
    },
    CommandSpec {
        name: "title",
        args: "[TEXT]",
        help: "show the session's title (default: its first message), or set it",
    },
    CommandSpec {
        name: "sessions",
        args: "",
        help: "list the sessions",
    },
    CommandSpec {
        name: "search",
        args: "QUERY",
        help: "search every session, archive included, best matches first",
    },
    CommandSpec {
        name: "recall",
        args: "",
        help: "show the archived passages recall put into the last request",
    },
    CommandSpec {
        name: "export",
        args: "[FILE]",
        help: "write the whole conversation to FILE (.md, .json or .jsonl; default NAME.md)",
    },
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Exit,
    History(usize),
    Tokens,
    Compact,
    Clear,
    Undo,
    Retry,
    System(Option<String>),
    Model(Option<String>),
    Role(Option<String>),
    File(Option<String>),
    Session(Option<String>),
    Sessions,
    Export(Option<String>),
    Models,
    Usage,
    Title(Option<String>),
    Search(String),
    Recall,
    Copy,
    /// `/code [N] [copy]`: block N (1-based) or all, shown or copied.
    Code {
        block: Option<usize>,
        copy: bool,
    },
    /// `/edit`, or `/edit last`.
    Edit {
        last: bool,
    },
}

/// Whether a line is a command (starts with `/`, not `//` which escapes a
/// message that starts with a slash).
pub fn is_command(line: &str) -> bool {
    line.starts_with('/') && !line.starts_with("//")
}

/// The message a non-command line sends: `//text` sends `/text`.
pub fn unescape(line: &str) -> &str {
    line.strip_prefix('/')
        .filter(|m| m.starts_with('/'))
        .unwrap_or(line)
}

/// Parses a command line such as `/history 5`.
pub fn parse(line: &str) -> Result<Command, String> {
    let body = line.trim().trim_start_matches('/');
    let (name, rest) = match body.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (body, ""),
    };
    let no_args = |command: Command| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(format!("/{name} takes no arguments"))
        }
    };
    match name {
        "help" | "?" => no_args(Command::Help),
        "exit" | "quit" => no_args(Command::Exit),
        "history" => {
            if rest.is_empty() {
                Ok(Command::History(DEFAULT_HISTORY))
            } else {
                rest.parse::<usize>()
                    .map(Command::History)
                    .map_err(|_| format!("/history takes a number of messages, not {rest:?}"))
            }
        }
        "tokens" => no_args(Command::Tokens),
        "compact" => no_args(Command::Compact),
        "clear" => no_args(Command::Clear),
        "undo" => no_args(Command::Undo),
        "retry" => no_args(Command::Retry),
        "system" => Ok(Command::System(optional(rest))),
        "model" => Ok(Command::Model(optional(rest))),
        "role" => Ok(Command::Role(optional(rest))),
        "file" => Ok(Command::File(optional(rest))),
        "session" => Ok(Command::Session(optional(rest))),
        "sessions" => no_args(Command::Sessions),
        "export" => Ok(Command::Export(optional(rest))),
        "models" => no_args(Command::Models),
        "usage" => no_args(Command::Usage),
        "title" => Ok(Command::Title(optional(rest))),
        "search" if rest.is_empty() => Err("/search needs something to look for".into()),
        "search" => Ok(Command::Search(rest.to_string())),
        "recall" => no_args(Command::Recall),
        "copy" => no_args(Command::Copy),
        "code" => reuse::parse_code(rest),
        "edit" => match rest {
            "" => Ok(Command::Edit { last: false }),
            "last" => Ok(Command::Edit { last: true }),
            other => Err(format!("/edit takes nothing or `last`, not {other:?}")),
        },
        "" => Err("a command name must follow '/'; /help lists them".into()),
        other => Err(format!("unknown command /{other}; /help lists them")),
    }
}

fn optional(rest: &str) -> Option<String> {
    (!rest.is_empty()).then(|| rest.to_string())
}

/// What the front-end does after a command.
#[derive(Debug)]
pub enum Flow {
    Continue,
    Exit,
    /// A command that produced a reply (`/retry`), to be reported like a turn.
    Replied(TurnReport),
}

/// The help text, from the table.
pub fn help_text() -> String {
    let mut out = String::from("Commands:\n");
    for spec in COMMANDS {
        let usage = format!("/{} {}", spec.name, spec.args);
        out.push_str(&format!("  {:<16} {}\n", usage.trim_end(), spec.help));
    }
    out.push_str("Start a message with // to send a line that begins with '/'.\n");
    out
}

/// Runs a command against the engine, writing its output to `out`.
pub async fn execute(
    command: Command,
    engine: &mut Engine,
    config: &mut Config,
    out: &mut dyn Write,
    interrupt: &mut Interrupt,
    output: &Output,
) -> Result<Flow, TurnError> {
    if matches!(
        command,
        Command::History(_)
            | Command::Tokens
            | Command::Usage
            | Command::Copy
            | Command::Code { .. }
            | Command::Title(None)
            | Command::System(None)
    ) {
        // Shown as the session stands, with what another machine stored.
        engine.refresh();
    }
    match command {
        Command::Help => print(out, &help_text())?,
        Command::Exit => return Ok(Flow::Exit),
        Command::History(n) => print(out, &history_text(engine, n))?,
        Command::Tokens => print(out, &tokens_text(&engine.stats()))?,
        Command::Compact => compact(engine, out, interrupt).await?,
        Command::Clear => {
            let moved = engine.clear()?;
            print(
                out,
                &format!(
                    "memory: cleared; {} moved to the archive\n",
                    render::counted(moved as u64, "record")
                ),
            )?;
        }
        Command::Undo => {
            let moved = engine.undo()?;
            print(
                out,
                &format!(
                    "memory: {} moved to the archive\n",
                    render::counted(moved as u64, "message")
                ),
            )?;
        }
        Command::Retry => match engine.retry(out, interrupt).await? {
            Some(report) => return Ok(Flow::Replied(report)),
            None => print(out, "memory: nothing to retry\n")?,
        },
        Command::System(None) => {
            let text = engine.system_prompt().unwrap_or("(no system prompt)");
            print(out, &format!("{text}\n"))?;
        }
        Command::System(Some(text)) => {
            engine.set_system(&text)?;
            print(out, "memory: system prompt set\n")?;
        }
        Command::Model(None) => print(out, &format!("{}\n", model_shown(engine, config)))?,
        Command::Model(Some(name)) => switch_model(engine, config, &name, out, output)?,
        Command::File(path) => file(engine, path, out, output)?,
        Command::Role(None) => print(out, &role_text(config))?,
        Command::Role(Some(name)) => switch_role(engine, config, &name, out, output)?,
        Command::Session(None) => print(out, &format!("{}\n", engine.session().name()))?,
        Command::Session(Some(name)) => switch_session(engine, config, &name, out, output)?,
        Command::Sessions => {
            manage::list(engine.store().as_ref(), &Sizing::of(config), None, out)
                .map_err(refused)?;
        }
        Command::Export(file) => export(engine, file, out)?,
        Command::Models => reuse::models(engine, config, out, interrupt).await?,
        Command::Usage => reuse::usage(engine, config, out)?,
        Command::Title(text) => reuse::title(engine, text, out)?,
        Command::Search(query) => recollect::search(engine, &query, out, output)?,
        Command::Recall => recollect::recall(engine, out, output)?,
        Command::Copy => reuse::copy(engine, None, out, output)?,
        Command::Code { block, copy: true } => {
            reuse::copy(engine, Some(block), out, output)?;
        }
        Command::Code { block, copy: false } => reuse::show_code(engine, block, out)?,
        Command::Edit { last } => {
            if let Some(report) = reuse::edit(engine, last, out, interrupt, output).await? {
                return Ok(Flow::Replied(report));
            }
        }
    }
    out.flush().map_err(TurnError::Output)?;
    Ok(Flow::Continue)
}

/// Writes a command's output.
fn print(out: &mut dyn Write, text: &str) -> Result<(), TurnError> {
    out.write_all(text.as_bytes()).map_err(TurnError::Output)
}

/// A failure that leaves the conversation as it was, reported with its chain.
fn refused(error: anyhow::Error) -> TurnError {
    TurnError::Refused(format!("{error:#}"))
}

/// The `/tokens` text: the history against the budget, and every number of
/// the budget.
pub fn tokens_text(stats: &TokenStats) -> String {
    let b = stats.budget;
    let pct = stats.history * 100 / u64::from(b.cap.max(1));
    format!(
        "history   {} / {} tokens {} {pct}%\n\
         ({}, system prompt + priming {}, summary {}; counted with {})\n{}",
        stats.history,
        b.cap,
        render::gauge(stats.history, u64::from(b.cap), 20),
        render::counted(stats.messages as u64, "message"),
        stats.system,
        stats.summary,
        stats.encoding,
        b.describe(),
    )
}

/// `/compact`: fold now. Ctrl-C stops the wait for the summary; nothing is
/// changed then.
async fn compact(
    engine: &mut Engine,
    out: &mut dyn Write,
    interrupt: &mut Interrupt,
) -> Result<(), TurnError> {
    let outcome = tokio::select! {
        outcome = engine.compact(true) => Some(outcome?),
        () = interrupt.wait() => None,
    };
    let text = match outcome {
        Some(Some(report)) => format!("{report}\n"),
        Some(None) => "memory: nothing to compact (the newest turns always stay)\n".to_string(),
        None => "memory: compaction interrupted; nothing was changed\n".to_string(),
    };
    print(out, &text)
}

/// `/model NAME`: the new model's client, tokenizer and budget.
fn switch_model(
    engine: &mut Engine,
    config: &mut Config,
    name: &str,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let next = config
        .with_model(name)
        .map_err(|e| TurnError::Refused(e.to_string()))?;
    let (model, counter) = setup::model_for(&next).map_err(refused)?;
    engine.record_settings(&session_settings::of_run(&next))?;
    engine.set_model(model, counter, next.budget);
    // Notices go to stderr; stdout carries the command's answer only.
    for notice in &next.notices {
        output.info(&format!("memory: {notice}"));
    }
    *config = next;
    session_settings::note_model_switch(config, engine.session().name());
    print(
        out,
        &format!(
            "model: {} (budget {} tokens)\n",
            model_shown(engine, config),
            config.budget.cap
        ),
    )
}

/// The model as `/model` names it. With `--mock` the mock answers whatever
/// model is named; the name only sizes the budget and picks the tokenizer,
/// and `/model` says so rather than claim a switch.
fn model_shown(engine: &Engine, config: &Config) -> String {
    let answering = engine.model_name();
    if matches!(config.backend, crate::config::Backend::Mock { .. }) && config.model != answering {
        format!("{answering}, sized as {}", config.model)
    } else {
        answering
    }
}

/// `/file [PATH | --clear]`: attach, list or drop the files that go with
/// the next message.
fn file(
    engine: &mut Engine,
    path: Option<String>,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let counter = *engine.counter();
    let pending = engine.attachments();
    match path.as_deref() {
        None if pending.is_empty() => print(out, "no files attached\n"),
        None => {
            let mut text = String::from("attached, to go with your next message:\n");
            for (name, tokens) in pending.sizes(&counter) {
                text.push_str(&format!("  {name} ({tokens} tokens)\n"));
            }
            print(out, &text)
        }
        Some("--clear") => {
            let n = pending.files().len();
            pending.clear();
            let dropped = render::counted(n as u64, "attachment");
            print(out, &format!("memory: {dropped} dropped\n"))
        }
        Some(path) => {
            let path = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => PathBuf::from(path),
            };
            let found = crate::attach::read(&path).map_err(TurnError::Refused)?;
            for skipped in &found.skipped {
                output.warn(&format!("skipped {skipped}: not a text file"));
            }
            let names: Vec<String> = found.attachments.iter().map(|f| f.name.clone()).collect();
            let tokens = engine.attach(found.attachments)?;
            let files = render::counted(engine.attachments().files().len() as u64, "file");
            print(
                out,
                &format!(
                    "attached {}; your next message carries {files} ({tokens} tokens)\n",
                    names.join(", ")
                ),
            )
        }
    }
}

/// `/role`: the role in use and the settings it governs.
fn role_text(config: &Config) -> String {
    let role = config.role.as_deref().unwrap_or("(no role)");
    let show = |v: Option<f32>| v.map_or_else(|| "server default".to_string(), |v| v.to_string());
    format!(
        "{role}: model {}, temperature {}, top_p {}, max_tokens {}\n",
        config.model,
        show(config.sampling.temperature),
        show(config.sampling.top_p),
        config.budget.reply_reserve,
    )
}

/// `/role NAME`: the role's system prompt (the old one to the archive), and
/// its model and sampling where it sets them.
fn switch_role(
    engine: &mut Engine,
    config: &mut Config,
    name: &str,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let next = config
        .with_role(name)
        .map_err(|e| TurnError::Refused(e.to_string()))?;
    let (model, counter) = setup::model_for(&next).map_err(refused)?;
    let previous_budget = *engine.budget();
    engine.set_model(model, counter, next.budget);
    if let Some(prompt) = next.system_prompt.as_deref()
        && engine.system_prompt() != Some(prompt.trim())
        && let Err(e) = engine.set_system(prompt)
    {
        // Nothing changed: the old model and budget come back.
        let (model, counter) = setup::model_for(config).map_err(refused)?;
        engine.set_model(model, counter, previous_budget);
        return Err(e);
    }
    engine.set_sampling(next.sampling);
    engine.record_settings(&session_settings::of_run(&next))?;
    for notice in &next.notices {
        output.info(&format!("memory: {notice}"));
    }
    *config = next;
    session_settings::note_role_switch(config, engine.session().name());
    print(out, &format!("role: {}", role_text(config)))
}

/// `/session NAME`: opened exactly as `--session` would open it.
fn switch_session(
    engine: &mut Engine,
    config: &mut Config,
    name: &str,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    memory::validate_session_name(name).map_err(|e| TurnError::Refused(e.to_string()))?;
    if name != engine.session().name() {
        setup::switch_session(engine, config, name, output)?;
        config.session = name.to_string();
    }
    let messages = engine.session().messages().len();
    let messages = render::counted(messages as u64, "message");
    print(out, &format!("session: {name} ({messages})\n"))
}

/// `/export [FILE]`: the whole conversation, archive included.
fn export(engine: &Engine, file: Option<String>, out: &mut dyn Write) -> Result<(), TurnError> {
    let name = engine.session().name().to_string();
    let path = match file.map(PathBuf::from) {
        // A file the user named is written as named (like `>` would), in
        // the format its extension names; another extension is refused.
        Some(path) => {
            let format = ExportFormat::for_path_or_refuse(&path, "").map_err(TurnError::Refused)?;
            manage::export_text(engine.store().as_ref(), &name, format)
                .and_then(|text| manage::write_export(&path, &text))
                .map_err(refused)?;
            path
        }
        // A name memchat picks never replaces a file.
        None => manage::export_text(engine.store().as_ref(), &name, ExportFormat::Markdown)
            .and_then(|text| manage::write_new_export(&name, &text))
            .map_err(refused)?,
    };
    print(
        out,
        &format!("exported session {name:?} to {}\n", path.display()),
    )
}

/// The last `n` messages of the active history as readable text.
pub fn history_text(engine: &Engine, n: usize) -> String {
    let messages = engine.session().messages();
    let start = messages.len().saturating_sub(n);
    let mut out = String::new();
    if start == 0
        && let Some(summary) = engine.session().summary()
    {
        out.push_str(&format!("(summary of earlier turns) {}\n", summary.content));
    }
    for m in &messages[start..] {
        let mark = if m.interrupted {
            " (interrupted)"
        } else if m.truncated {
            " (truncated)"
        } else {
            ""
        };
        out.push_str(&format!("{}{mark}: {}\n", m.role.as_str(), m.content));
    }
    if out.is_empty() {
        out.push_str("(no messages yet)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_help_states_the_default() {
        let spec = COMMANDS.iter().find(|c| c.name == "history");
        assert!(spec.is_some_and(|c| c.help.contains(&format!("(default {DEFAULT_HISTORY})"))));
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse("/help"), Ok(Command::Help));
        assert_eq!(parse("/quit"), Ok(Command::Exit));
        assert_eq!(parse("/history"), Ok(Command::History(DEFAULT_HISTORY)));
        assert_eq!(parse("/history 3"), Ok(Command::History(3)));
        assert!(parse("/history x").is_err());
        assert_eq!(
            parse("/system Be terse."),
            Ok(Command::System(Some("Be terse.".into())))
        );
        assert_eq!(parse("/system"), Ok(Command::System(None)));
        assert!(parse("/tokens now").is_err());
        assert!(
            parse("/nope")
                .unwrap_err()
                .contains("unknown command /nope")
        );
    }

    #[test]
    fn every_command_in_the_table_parses() {
        for spec in COMMANDS {
            // A required argument (`QUERY`) is given one.
            let line = if spec.args.starts_with(char::is_uppercase) {
                format!("/{} x", spec.name)
            } else {
                format!("/{}", spec.name)
            };
            assert!(parse(&line).is_ok(), "{}", spec.name);
            assert!(help_text().contains(&format!("/{}", spec.name)));
        }
    }

    #[test]
    fn double_slash_escapes_a_message() {
        assert!(is_command("/help"));
        assert!(!is_command("//etc/passwd is a file"));
        assert!(!is_command("hello"));
        assert_eq!(unescape("//etc/passwd"), "/etc/passwd");
        assert_eq!(unescape("hello"), "hello");
    }
}
