//! The interactive front-end, on rustyline: line editing, input history kept
//! across runs ([`crate::input_history`]: 0600, never through a link; Ctrl-R
//! searches it), multi-line input (Alt-Enter, a
//! trailing `\`, an open code fence, bracketed paste), Ctrl-C clears the line
//! at the prompt and stops only the reply while one streams, Ctrl-D exits.
//!
//! `readline` blocks, so the editor moves into `spawn_blocking` for each
//! line and comes back with it.
//!
//! Every line typed is sent or said to be unsent: lines typed while a reply
//! streams survive a Ctrl-C ([`crate::typeahead`]), and lines that arrived
//! after `/exit` or Ctrl-D are named on stderr as not sent ([`leftover`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{History, MemHistory};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, Context, Editor, EventHandler, ExternalPrinter, Helper, KeyCode, KeyEvent, Modifiers,
    Prompt,
};

use crate::chat::{Engine, TurnError};
use crate::commands;
use crate::config::Config;
use crate::exit::Exit;
use crate::frontend::{self, Handled};
use crate::input;
use crate::input_history::{self, InputHistory};
use crate::interrupt::Interrupt;
use crate::render::Output;

/// File name of the input history inside the memory directory.
pub const HISTORY_FILE: &str = ".input-history";
/// A summary still running this long after the user sent the next line gets
/// a notice: a quick one finishes unseen, a slow one is explained.
const SLOW_SUMMARY_NOTICE: std::time::Duration = std::time::Duration::from_millis(300);

mod keys;
mod leftover;

/// Tells rustyline when Enter should continue the message instead of
/// sending it, and what Tab offers (see [`keys`]); shows [`leftover`] each
/// line it draws.
struct ReplHelper {
    memory_dir: PathBuf,
    /// The config file's roles, for `/role`.
    roles: Vec<String>,
    leftover: Arc<leftover::Keys>,
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if input::is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}
impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(keys::candidates(line, pos, &self.memory_dir, &self.roles))
    }
}
impl Hinter for ReplHelper {
    type Hint = String;

    /// No hints: this is the editor's call at each draw of the line.
    fn hint(&self, line: &str, _pos: usize, _ctx: &Context<'_>) -> Option<String> {
        self.leftover.drawn(line);
        None
    }
}
impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}
impl Helper for ReplHelper {}

/// The editor keeps the history in memory; memchat keeps the file.
type ReplEditor = Editor<ReplHelper, MemHistory>;

/// The editor, with the input history at `path` loaded into it, Tab
/// completion over `memory_dir`, and Ctrl-X Ctrl-E reporting to `edit`.
fn make_editor(
    path: &Path,
    memory_dir: &Path,
    roles: Vec<String>,
    edit: &keys::EditRequest,
    ends: &Arc<leftover::Keys>,
    output: &Output,
) -> anyhow::Result<(ReplEditor, InputHistory)> {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(input_history::MAX_ENTRIES)?
        .build();
    let mut memory = MemHistory::with_config(&config);
    let loaded = InputHistory::open(path);
    if let Some(warning) = &loaded.warning {
        output.warn(warning);
    }
    for entry in &loaded.entries {
        memory.add(entry)?;
    }
    let mut editor = ReplEditor::with_history(config, memory)?;
    editor.set_helper(Some(ReplHelper {
        memory_dir: memory_dir.to_path_buf(),
        roles,
        leftover: ends.clone(),
    }));
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        EventHandler::Simple(Cmd::Newline),
    );
    editor.bind_sequence(
        keys::edit_keys(),
        EventHandler::Conditional(Box::new(edit.clone())),
    );
    editor.bind_sequence(
        KeyEvent::ctrl('D'),
        EventHandler::Conditional(Box::new(leftover::EndOfInputKey(ends.clone()))),
    );
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(leftover::ClearKey(ends.clone()))),
    );
    Ok((editor, loaded.history))
}

/// Adds an entered line to the history, in the editor and in the file (a
/// line repeating the one before is not added twice). A file that cannot be
/// written is said once.
fn remember(line: &str, editor: &mut ReplEditor, history: &mut InputHistory, output: &Output) {
    if editor.add_history_entry(line).unwrap_or(false)
        && let Err(warning) = history.append(line)
    {
        output.warn(&warning);
    }
}

/// How the prompt looks: the session and how full the budget is, the figure
/// right-aligned in `width` columns.
fn prompt_text(name: &str, percent: u64, width: usize) -> String {
    format!("{name} {percent:>width$}%> ")
}

/// The prompt of the line being read. A compaction that finishes while the
/// user types gives it the new figure, which the editor shows at its next
/// redraw (at once: the compaction's notice is printed above the prompt,
/// which redraws it), so prompt and notice agree.
struct LivePrompt {
    name: String,
    width: usize,
    first: String,
    updated: OnceLock<String>,
}

impl LivePrompt {
    fn new(engine: &Engine) -> Arc<LivePrompt> {
        let name = engine.session().name().to_string();
        let percent = engine.fill_percent_estimate();
        let width = percent.to_string().len();
        Arc::new(LivePrompt {
            first: prompt_text(&name, percent, width),
            name,
            width,
            updated: OnceLock::new(),
        })
    }

    /// The figure after a compaction, in the columns the first one took:
    /// the editor placed the cursor by the prompt's width. A compaction only
    /// lowers the figure; one that would not fit is left for the next prompt.
    fn update(&self, engine: &Engine) {
        let percent = engine.fill_percent_estimate();
        if percent.to_string().len() <= self.width {
            let _ = self
                .updated
                .set(prompt_text(&self.name, percent, self.width));
        }
    }
}

impl Prompt for LivePrompt {
    fn raw(&self) -> &str {
        self.updated.get().unwrap_or(&self.first)
    }
}

/// Shows where a resumed conversation left off.
fn print_resume(engine: &Engine, output: &Output) {
    let messages = engine.session().messages();
    if messages.is_empty() && engine.session().summary().is_none() {
        output.info(&format!(
            "new session {:?}; /help lists the commands, Ctrl-D leaves",
            engine.session().name()
        ));
        return;
    }
    output.info(&format!(
        "resuming session {:?} ({} in memory{}); /history shows more",
        engine.session().name(),
        crate::render::counted(messages.len() as u64, "message"),
        if engine.session().summary().is_some() {
            ", plus a summary of older turns"
        } else {
            ""
        }
    ));
    // The history is the model's text: shown, never executed, on the terminal.
    eprint!(
        "{}",
        crate::visible::text(&commands::history_text(engine, 2))
    );
}

/// A store error inside the REPL (a `/session` to a locked or corrupt
/// session, a full disk) ends nothing: it is reported and the prompt comes
/// back on the session the user had, which the failed step left as it was.
/// With the message the turn was for (`sent`): whether it was stored, as
/// the session now holds it. A turn that could not take the session's lock
/// stored nothing, and `/retry` would then answer the session's last
/// message, another client's perhaps: the user is told where theirs is.
fn report_store_error(error: &TurnError, engine: &Engine, output: &Output, sent: Option<&str>) {
    let fate = match sent {
        Some(text)
            if engine.unanswered() == Some(text)
                && error.to_string().contains(crate::store::WRITTEN_MEANWHILE) =>
        {
            "; your message is saved, unanswered, and another memchat's came after it: \
             /retry would answer theirs"
                .to_string()
        }
        Some(text) if engine.unanswered() == Some(text) => format!("; {}", frontend::RETRY_HINT),
        Some(_) => "; your message was not stored (the up arrow brings it back)".to_string(),
        None => String::new(),
    };
    output.error(&format!(
        "{error} (still on session {:?}){fate}",
        engine.session().name()
    ));
}

/// What a compaction run alongside the prompt has to say afterwards.
enum Late {
    Report(crate::chat::CompactionReport),
    Failed(crate::memory::StoreError),
    Postponed,
}

/// The line being read while a compaction runs: where its notice goes, and
/// the prompt to update with the figure after it.
struct Reading<'a, P> {
    printer: &'a mut Option<P>,
    prompt: &'a LivePrompt,
}

/// A line read from the editor, with the editor handed back.
type ReadLine = (ReplEditor, rustyline::Result<String>);

/// Runs the interactive chat until `/exit` or Ctrl-D.
pub async fn run(
    mut engine: Engine,
    mut config: Config,
    mut interrupt: Interrupt,
    output: &Output,
) -> anyhow::Result<Exit> {
    // Load the tokenizer while the user types its first line.
    engine.counter().warm();
    // Lines typed while a reply streams survive a Ctrl-C.
    let _typeahead = crate::typeahead::KeepTypeahead::on_stdin();
    let edit = keys::EditRequest::default();
    let ends = Arc::new(leftover::Keys::default());
    let history_file = config.memory_dir.join(HISTORY_FILE);
    let roles = config.roles.keys().cloned().collect();
    let (mut editor, mut history) = make_editor(
        &history_file,
        &config.memory_dir,
        roles,
        &edit,
        &ends,
        output,
    )?;
    // Compaction runs while the user types the next line (it may wait on the
    // model for a summary); its notice is printed above the prompt when the
    // terminal allows, otherwise once the line is in.
    engine.defer_compaction(true);
    let mut printer = if output.stdout_is_terminal() {
        editor.create_external_printer().ok()
    } else {
        None
    };
    let mut compaction_due = false;
    // Whether the last line's report said that a signal ends memchat (a
    // turn's report does; a line that failed, such as one whose attempt to
    // connect to the store a SIGTERM ended, said only why it failed).
    let mut signal_reported = false;
    print_resume(&engine, output);
    loop {
        if let Some(signal) = interrupt.termination() {
            // SIGTERM or SIGHUP arrived during the last turn, now saved.
            if !signal_reported {
                output.warn(&format!("{} received; exiting", signal.signal_name()));
            }
            return Ok(signal.into());
        }
        let live = LivePrompt::new(&engine);
        let shown = Arc::clone(&live);
        ends.before_line();
        let readline = tokio::task::spawn_blocking(move || {
            let line = editor.readline(&*shown);
            (editor, line)
        });
        let (joined, late) = if std::mem::take(&mut compaction_due) {
            let reading = Reading {
                printer: &mut printer,
                prompt: &live,
            };
            read_while_compacting(readline, &mut engine, reading, &mut interrupt, output).await
        } else {
            (readline.await, None)
        };
        let (back, line) = joined?;
        editor = back;
        report_late(late, output);
        let line = match (line, ends.ending()) {
            (Ok(_), leftover::Ending::Cleared) | (Err(ReadlineError::Interrupted), _) => continue,
            (Ok(_), leftover::Ending::EndOfInput) | (Err(ReadlineError::Eof), _) => {
                return leave(editor, &ends, "Ctrl-D", output).await;
            }
            (Ok(line), leftover::Ending::Enter) => line,
            (Err(e), _) => return Err(e.into()),
        };
        // Ctrl-X Ctrl-E: the line is a draft for the editor.
        let (line, edited) = match edit.take() {
            Some(draft) => match crate::editor::compose(&draft) {
                Ok(Some(text)) => (text, true),
                Ok(None) => {
                    output.info("the message is empty; nothing was sent");
                    continue;
                }
                Err(e) => {
                    output.error(&e);
                    continue;
                }
            },
            None => (line, false),
        };
        if line.trim().is_empty() {
            continue;
        }
        remember(&line, &mut editor, &mut history, output);
        interrupt.reset();
        let handled = if edited {
            send_edited(&line, &mut engine, &mut config, &mut interrupt, output).await
        } else {
            handle(&line, &mut engine, &mut config, &mut interrupt, output).await
        };
        signal_reported = matches!(
            handled,
            Handled::Turn {
                exit: Exit::Terminated | Exit::Hangup,
                ..
            }
        );
        match handled {
            Handled::Exit => return leave(editor, &ends, "/exit", output).await,
            Handled::Turn {
                compaction_due: due,
                ..
            } => compaction_due = due,
            Handled::Done | Handled::Refused(_) => {}
        }
    }
}

/// Ends the REPL after `what` (`/exit`, Ctrl-D), first naming any lines
/// that arrived after it, which are not sent.
async fn leave(
    mut editor: ReplEditor,
    ends: &Arc<leftover::Keys>,
    what: &str,
    output: &Output,
) -> anyhow::Result<Exit> {
    let ends = ends.clone();
    let lines = tokio::task::spawn_blocking(move || leftover::drain(&mut editor, &ends)).await?;
    if let Some(notice) = leftover::notice(what, &lines) {
        output.warn(&notice);
    }
    Ok(Exit::Success)
}

/// Waits for the line being typed while the compaction the last reply made
/// due runs. If the line comes first, the summary is still awaited (the next
/// request needs it), but Ctrl-C postpones it to the next turn.
async fn read_while_compacting<P: ExternalPrinter>(
    readline: tokio::task::JoinHandle<ReadLine>,
    engine: &mut Engine,
    reading: Reading<'_, P>,
    interrupt: &mut Interrupt,
    output: &Output,
) -> (Result<ReadLine, tokio::task::JoinError>, Option<Late>) {
    let Reading {
        printer,
        prompt: live,
    } = reading;
    let compaction = async {
        match engine.compact(false).await {
            Ok(Some(report)) => {
                live.update(engine);
                let text = format!("memchat: {report}\n");
                let printed = printer.as_mut().is_some_and(|p| p.print(text).is_ok());
                if printed {
                    None
                } else {
                    Some(Late::Report(report))
                }
            }
            Ok(None) => None,
            Err(e) => Some(Late::Failed(e)),
        }
    };
    let mut compaction = std::pin::pin!(compaction);
    let mut readline = readline;
    tokio::select! {
        late = &mut compaction => (readline.await, late),
        joined = &mut readline => {
            interrupt.reset();
            let late = tokio::select! {
                late = &mut compaction => late,
                () = tokio::time::sleep(SLOW_SUMMARY_NOTICE) => {
                    output.info("finishing the summary of older turns (Ctrl-C postpones it)");
                    tokio::select! {
                        late = &mut compaction => late,
                        () = interrupt.wait() => Some(Late::Postponed),
                    }
                }
            };
            (joined, late)
        }
    }
}

/// Says what a compaction alongside the prompt could not print above it.
fn report_late(late: Option<Late>, output: &Output) {
    match late {
        Some(Late::Report(report)) => output.info(&report.to_string()),
        Some(Late::Failed(e)) => output.error(&format!("compaction failed: {e}")),
        Some(Late::Postponed) => output.info("compaction postponed to the next turn"),
        None => {}
    }
}

/// Sends what the editor left as a message, as it is (a leading `/` is not
/// a command, a trailing `\` is not a continuation).
async fn send_edited(
    text: &str,
    engine: &mut Engine,
    config: &mut Config,
    interrupt: &mut Interrupt,
    output: &Output,
) -> Handled {
    output.info(&format!("sending: {}", crate::titles::shorten(text)));
    // `//` keeps a leading slash from being read as a command.
    let line = if text.starts_with('/') {
        format!("/{text}")
    } else {
        text.to_string()
    };
    let mut stdout = output.reply_to_stdout(true);
    match frontend::handle_line(&line, engine, config, &mut stdout, interrupt, output).await {
        Ok(Handled::Refused(reason)) | Err(TurnError::Refused(reason)) => {
            output.error(&reason);
            Handled::Refused(reason)
        }
        Ok(handled) => handled,
        Err(e) => {
            report_store_error(&e, engine, output, None);
            Handled::Done
        }
    }
}

/// Handles one entered line. Refusals and store errors are said and the chat
/// goes on; so do model failures and interruptions (reported by the shared
/// handler).
async fn handle(
    line: &str,
    engine: &mut Engine,
    config: &mut Config,
    interrupt: &mut Interrupt,
    output: &Output,
) -> Handled {
    let is_command = commands::is_command(line.trim_start());
    // A spinner while a reply is awaited: for messages and `/retry`.
    let spinner = !is_command || line.trim_start().starts_with("/retry");
    let mut stdout = output.reply_to_stdout(spinner);
    // The editor hands over a message with its continuation backslashes.
    let text = if is_command {
        line.to_string()
    } else {
        input::strip_continuations(line)
    };
    let handled =
        frontend::handle_line(&text, engine, config, &mut stdout, interrupt, output).await;
    match handled {
        Ok(Handled::Refused(reason)) | Err(TurnError::Refused(reason)) => {
            output.error(&reason);
            Handled::Refused(reason)
        }
        Ok(handled) => handled,
        Err(e) => {
            let sent = (!is_command).then(|| commands::unescape(&text));
            report_store_error(&e, engine, output, sent);
            Handled::Done
        }
    }
}
