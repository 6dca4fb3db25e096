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
use crate::render::{self, Output};
use crate::usage::{self, Price};

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
    output: &Output,
) -> Result<Handled, TurnError> {
    let result = if commands::is_command(line.trim_start()) {
        let command = match commands::parse(line.trim()) {
            Ok(command) => command,
            Err(e) => return Ok(Handled::Refused(e)),
        };
        match commands::execute(command, engine, config, out, interrupt, output).await {
            Ok(Flow::Continue) => return Ok(Handled::Done),
            Ok(Flow::Exit) => return Ok(Handled::Exit),
            Ok(Flow::Replied(report)) => Ok(report),
            Err(e @ TurnError::Model(_)) => Err(e),
            Err(e) => {
                // A reply streamed by `/retry` may have left its line open.
                let _ = out.end_line();
                return Err(e);
            }
        }
    } else {
        match engine.send(commands::unescape(line), out, interrupt).await {
            Err(TurnError::Refused(reason)) => return Ok(Handled::Refused(reason)),
            other => other,
        }
    };
    let compaction_due = result.as_ref().is_ok_and(|r| !r.by_user);
    let exit = report_turn(result, out, output, usage_shown(config).as_ref())?;
    Ok(Handled::Turn {
        exit,
        compaction_due,
    })
}

/// What a failed turn tells the user to do next. Both ways send the saved
/// message once: `/retry` answers the unanswered message, and the same
/// message sent again is recognised as already saved (see
/// [`crate::chat::Engine::send`]). From the shell, `/retry` is a one-shot
/// prompt like any in-chat command (`memchat -s NAME /retry`).
pub const RETRY_HINT: &str =
    "your message is saved; send /retry (from the shell: memchat /retry) or the same message again";

/// What `--show-usage` prints after each reply: `None` without the flag,
/// else the configured model's price, if it has one.
pub fn usage_shown(config: &Config) -> Option<Option<Price>> {
    config
        .show_usage
        .then(|| usage::price_for(&config.prices, &config.model).copied())
}

/// Prints what a turn left to say and returns the exit status it implies.
/// With `show_usage` (see [`usage_shown`]), a usage line follows the reply.
/// Model errors are reported here; store and refusal errors propagate.
/// The reply output is finished first (spinner stopped, held-back Markdown
/// written) so output never interleave with it.
pub fn report_turn<W: Write>(
    result: Result<TurnReport, TurnError>,
    out: &mut render::ReplyOutput<W>,
    output: &Output,
    show_usage: Option<&Option<Price>>,
) -> Result<Exit, TurnError> {
    let _ = out.finish();
    let report = match result {
        Ok(report) => report,
        Err(TurnError::Model(e)) => {
            let _ = out.end_line();
            output.error(&format!("{e} ({RETRY_HINT})"));
            return Ok(Exit::ModelFailed);
        }
        Err(e) => {
            let _ = out.end_line();
            return Err(e);
        }
    };
    let _ = render::finish_reply(out, &report.reply);
    report_notices(&report, output);
    if let Some(price) = show_usage {
        match report.usage {
            Some(u) => output.info(&usage::reply_line(
                u.prompt_tokens,
                u.completion_tokens,
                price.as_ref(),
            )),
            None if !report.reply.is_empty() => {
                output.info("usage: the server sent no usage report for this reply");
            }
            None => {}
        }
    }
    Ok(turn_status(&report, output))
}

/// The output a finished turn carries: the engine's, skipped chunks, a
/// compaction.
fn report_notices(report: &TurnReport, output: &Output) {
    for notice in &report.notices {
        output.info(notice);
    }
    if let Some(why) = &report.truncated {
        output.warn(&format!("{why}; the reply is saved, marked truncated"));
    }
    if report.skipped_chunks > 0 {
        output.warn(&format!(
            "{} malformed chunks from the server were skipped",
            report.skipped_chunks
        ));
    }
    if let Some(compaction) = &report.compaction {
        if compaction.fallback_reason.is_some() {
            output.warn(&compaction.to_string());
        } else {
            output.info(&compaction.to_string());
        }
    }
}

/// How the reply ended, said once, as an exit status.
fn turn_status(report: &TurnReport, output: &Output) -> Exit {
    if let Some(signal) = report.signal {
        output.warn(&format!(
            "{} received; {}; exiting",
            signal.signal_name(),
            if report.interrupted && report.reply.is_empty() {
                "no reply had begun, so there is no partial reply to save"
            } else if report.interrupted {
                "the partial reply is saved, marked interrupted"
            } else {
                "the reply is saved"
            }
        ));
        return signal.into();
    }
    if report.by_user {
        if report.interrupted && report.reply.is_empty() {
            output.warn(
                "interrupted before the reply began; nothing to save (your message is saved; \
                 /retry asks again)",
            );
        } else if report.interrupted {
            output.warn("interrupted; the partial reply is saved, marked interrupted");
        } else {
            output.warn("interrupted; the reply is saved");
        }
        return Exit::Interrupted;
    }
    if let Some(e) = &report.stream_error {
        output.error(&format!(
            "the reply was cut off: {e}; the partial reply is saved, marked interrupted"
        ));
        return Exit::ModelFailed;
    }
    if report.interrupted {
        // The stream closed without a finish reason: the text is incomplete.
        output.error(
            "the connection closed before the reply was finished; the partial reply is saved, \
             marked interrupted (/retry asks again)",
        );
        return Exit::ModelFailed;
    }
    Exit::Success
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;

    /// The exit status a turn's outcome implies, and the notices it printed.
    fn reported(result: Result<TurnReport, TurnError>) -> (Exit, String) {
        let output = Output::capturing();
        let mut out = render::ReplyOutput::new(Vec::new(), false, None);
        let exit = report_turn(result, &mut out, &output, None).unwrap();
        (exit, output.captured())
    }

    #[test]
    fn a_model_failure_is_reported_and_exits_1() {
        let (exit, notices) = reported(Err(TurnError::Model(ClientError::Timeout { secs: 5 })));
        assert_eq!(exit, Exit::ModelFailed);
        assert!(
            notices.contains("timed out: the server sent nothing for 5s"),
            "{notices}"
        );
        assert!(notices.contains("your message is saved"), "{notices}");
    }

    #[test]
    fn an_interrupted_reply_exits_130_and_says_what_was_kept() {
        let report = TurnReport {
            reply: "half".into(),
            interrupted: true,
            by_user: true,
            ..TurnReport::default()
        };
        let (exit, notices) = reported(Ok(report));
        assert_eq!(exit, Exit::Interrupted);
        assert!(notices.contains("partial reply is saved"), "{notices}");
    }

    #[test]
    fn a_reply_cut_by_the_connection_exits_1() {
        let report = TurnReport {
            reply: "half".into(),
            interrupted: true,
            ..TurnReport::default()
        };
        let (exit, notices) = reported(Ok(report));
        assert_eq!(exit, Exit::ModelFailed);
        assert!(notices.contains("connection closed"), "{notices}");
        let (exit, notices) = reported(Ok(TurnReport::default()));
        assert_eq!((exit, notices.as_str()), (Exit::Success, ""));
    }

    #[test]
    fn store_and_refusal_errors_are_left_to_the_caller() {
        let output = Output::capturing();
        let mut out = render::ReplyOutput::new(Vec::new(), false, None);
        let refused = report_turn(
            Err(TurnError::Refused("no".into())),
            &mut out,
            &output,
            None,
        );
        assert!(matches!(refused, Err(TurnError::Refused(_))));
        assert_eq!(output.captured(), "", "nothing said twice");
    }
}
