//! Script mode: a piped script without a prompt, read the way sqlite3 or
//! psql read one. Each non-empty line is a turn (a trailing `\` or an open
//! code fence continues it), a line starting with `/` is a command, replies
//! go to stdout in order. The first model failure stops the script (later
//! turns would build on a reply that never came).

use std::io::BufRead;

use crate::chat::Engine;
use crate::commands;
use crate::config::Config;
use crate::exit::Exit;
use crate::frontend::{self, Handled};
use crate::input::Assembler;
use crate::interrupt::Interrupt;
use crate::render::Output;

/// Runs every turn and command of `input`.
pub async fn run(
    engine: &mut Engine,
    config: &Config,
    input: impl BufRead,
    interrupt: &mut Interrupt,
    output: &Output,
) -> anyhow::Result<Exit> {
    let mut config = config.clone();
    let mut assembler = Assembler::default();
    let mut stdout = output.reply_to_stdout(false);
    let mut lines = input.split(b'\n');
    let mut line_no = 0usize;
    loop {
        if interrupt.fired() {
            return Ok(Exit::Interrupted);
        }
        let text = match lines.next() {
            Some(line) => {
                line_no += 1;
                let Ok(line) = String::from_utf8(line?) else {
                    output.error(&format!(
                        "stdin line {line_no} is not UTF-8 text; stopping the script"
                    ));
                    return Ok(Exit::Usage);
                };
                // Commands are whole lines, outside any message being built.
                if !assembler.is_building() && commands::is_command(line.trim_start()) {
                    line
                } else {
                    match assembler.push(&line) {
                        Some(message) => message,
                        None => continue,
                    }
                }
            }
            None => match assembler.finish() {
                Some(message) => message,
                None => return Ok(Exit::Success),
            },
        };
        let handled =
            frontend::handle_line(&text, engine, &mut config, &mut stdout, interrupt, output)
                .await?;
        match handled {
            Handled::Done => {}
            Handled::Exit => return Ok(Exit::Success),
            Handled::Turn { exit, .. } if exit != Exit::Success => return Ok(exit),
            Handled::Turn { .. } => {}
            Handled::Refused(reason) => {
                output.error(&format!("line {line_no}: {reason}"));
                return Ok(Exit::Usage);
            }
        }
    }
}
