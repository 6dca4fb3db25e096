//! Script mode: a piped script without a prompt, read the way sqlite3 or
//! psql read one. Each non-empty line is a turn (a trailing `\` or an open
//! code fence continues it), a line starting with `/` is a command, replies
//! go to stdout in order. The first model failure stops the script (later
//! turns would build on a reply that never came).

use std::io::BufRead;

use crate::chat::{Engine, TurnError};
use crate::commands::{self, Flow};
use crate::config::Config;
use crate::input::Assembler;
use crate::interrupt::Interrupt;
use crate::render;
use crate::render::Notices;
use crate::run::{Exit, report_turn};

/// Runs every turn and command of `input`.
pub async fn run(
    engine: &mut Engine,
    config: &Config,
    input: impl BufRead,
    interrupt: &mut Interrupt,
    notices: Notices,
) -> anyhow::Result<Exit> {
    let mut config = config.clone();
    let mut assembler = Assembler::default();
    let mut stdout = render::ReplyOutput::stdout(false);
    let mut lines = input.split(b'\n');
    let mut line_no = 0usize;
    loop {
        if interrupt.fired() {
            return Ok(Exit::Interrupted);
        }
        let message = match lines.next() {
            Some(line) => {
                line_no += 1;
                let bytes = line?;
                let Ok(line) = String::from_utf8(bytes) else {
                    notices.error(&format!(
                        "stdin line {line_no} is not UTF-8 text; stopping the script"
                    ));
                    return Ok(Exit::Usage);
                };
                // Commands are whole lines, outside any message being built.
                if !assembler.is_building() && commands::is_command(line.trim_start()) {
                    let flow = match commands::parse(line.trim()) {
                        Ok(command) => {
                            commands::execute(command, engine, &mut config, &mut stdout, interrupt)
                                .await
                        }
                        Err(e) => {
                            notices.error(&format!("line {line_no}: {e}"));
                            return Ok(Exit::Usage);
                        }
                    };
                    match flow {
                        Ok(Flow::Continue) => continue,
                        Ok(Flow::Exit) => return Ok(Exit::Success),
                        Ok(Flow::Replied(report)) => {
                            let exit = report_turn(Ok(report), &mut stdout, notices)?;
                            if exit != Exit::Success {
                                return Ok(exit);
                            }
                            continue;
                        }
                        Err(e) => {
                            let exit = report_turn(Err(e), &mut stdout, notices)?;
                            return Ok(exit);
                        }
                    }
                }
                match assembler.push(&line) {
                    Some(message) => message,
                    None => continue,
                }
            }
            None => match assembler.finish() {
                Some(message) => message,
                None => return Ok(Exit::Success),
            },
        };
        let result = engine
            .send(commands::unescape(&message), &mut stdout, interrupt)
            .await;
        let exit = match result {
            Err(TurnError::Refused(reason)) => {
                notices.error(&format!("line {line_no}: {reason}"));
                Exit::Usage
            }
            other => report_turn(other, &mut stdout, notices)?,
        };
        if exit != Exit::Success {
            return Ok(exit);
        }
    }
}
