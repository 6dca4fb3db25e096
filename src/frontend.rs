//! What the REPL and script mode share: handling one line (a `/command` or a
//! message) against the engine, and reporting a turn's outcome on stderr with
//! the exit status it implies. The front-ends differ only in where lines come
//! from and what they do with a refusal (the REPL says it and goes on, a
//! script stops).

use std::io::Write;

use crate::chat::{Engine, TurnError, TurnReport};
use crate::commands::{self, Flow};
use crate::config::Config;
use crate::exit::Exit;
use crate::interrupt::Interrupt;
use crate::render::{self, Notices};

/// What became of one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// A command ran and said what it had to say.
    Done,
    /// `/exit`.
    Exit,
    /// A turn ran (a message, or `/retry`) and was reported.
    Turn {
        /// The status the turn implies (a model failure, an interruption).
        exit: Exit,
        /// A reply came back: compaction may be due before the next request.
        compaction_due: bool,
    },
    /// Refused before anything was written: a line that is not a command,
    /// or a message that is empty or could never fit. Not yet reported.
    Refused(String),
}

/// Handles one whole line: a command (starting with `/`, not `//`) runs
/// through the command table, anything else is sent as a message (`//text`
/// sends `/text`). Errors a command raises (a refusal, the store) come back
/// as `Err` for the front-end to judge; a model failure is reported here.
pub async fn handle_line<W: Write>(
    line: &str,
    engine: &mut Engine,
    config: &mut Config,
    out: &mut render::ReplyOutput<W>,
    interrupt: &mut Interrupt,
    notices: Notices,
) -> Result<Handled, TurnError> {
    let result = if commands::is_command(line.trim_start()) {
        let command = match commands::parse(line.trim()) {
            Ok(command) => command,
            Err(e) => return Ok(Handled::Refused(e)),
        };
        match commands::execute(command, engine, config, out, interrupt, notices).await {
            Ok(Flow::Continue) => return Ok(Handled::Done),
            Ok(Flow::Exit) => return Ok(Handled::Exit),
            Ok(Flow::Replied(report)) => Ok(report),
            Err(e @ TurnError::Model(_)) => Err(e),
            Err(e) => return Err(e),
        }
    } else {
        match engine.send(commands::unescape(line), out, interrupt).await {
            Err(TurnError::Refused(reason)) => return Ok(Handled::Refused(reason)),
            other => other,
        }
    };
    let compaction_due = result.as_ref().is_ok_and(|r| !r.by_user);
    let exit = report_turn(result, out, notices)?;
    Ok(Handled::Turn {
        exit,
        compaction_due,
    })
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
    report_notices(&report, notices);
    Ok(turn_status(&report, notices))
}

/// The notices a finished turn carries: the engine's, skipped chunks, a
/// compaction.
fn report_notices(report: &TurnReport, notices: Notices) {
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
}

/// How the reply ended, said once, as an exit status.
fn turn_status(report: &TurnReport, notices: Notices) -> Exit {
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
        return signal.into();
    }
    if report.by_user {
        if report.interrupted {
            notices.warn("interrupted; the partial reply is saved, marked interrupted");
        } else {
            notices.warn("interrupted; the reply is saved");
        }
        return Exit::Interrupted;
    }
    if let Some(e) = &report.stream_error {
        notices.error(&format!(
            "the reply was cut off: {e}; the partial reply is saved, marked interrupted"
        ));
        return Exit::ModelFailed;
    }
    if report.interrupted {
        // The stream closed without a finish reason: the text is incomplete.
        notices.error(
            "the connection closed before the reply was finished; the partial reply is saved, \
             marked interrupted (/retry asks again)",
        );
        return Exit::ModelFailed;
    }
    Exit::Success
}
