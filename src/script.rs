//! Script mode: a piped script without a prompt, read the way sqlite3 or
//! psql read one. Each non-empty line is a turn (a trailing `\` or an open
//! code fence continues it), a line starting with `/` is a command, replies
//! go to stdout in order. The first model failure stops the script (later
//! turns would build on a reply that never came).
//!
//! Reading is bounded: a line, and a message built from several lines, may
//! hold at most [`MAX_CONTENT_BYTES`] (what one message may hold). A longer
//! one stops the script with its line number before more of it is read, so
//! an absurd line never needs memory in proportion to its length.

use std::io::BufRead;

use crate::chat::Engine;
use crate::commands;
use crate::config::Config;
use crate::exit::Exit;
use crate::frontend::{self, Handled};
use crate::input::Assembler;
use crate::interrupt::Interrupt;
use crate::memory::format::MAX_CONTENT_BYTES;
use crate::render::Output;

/// One line of input, read no further than a cap.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line, without its `\n`.
    Text(Vec<u8>),
    /// The line has more than the cap; reading stopped at the cap.
    TooLong,
    /// End of input.
    End,
}

/// Reads the next line, holding at most `cap` bytes of it: the reader's
/// buffer is scanned piece by piece and a line over `cap` is abandoned
/// there, never completed in memory.
fn read_line(input: &mut impl BufRead, cap: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Text(line)
            });
        }
        let (piece, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..end], Some(end + 1)),
            None => (buffer, None),
        };
        if line.len() + piece.len() > cap {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(piece);
        let used = done.unwrap_or(piece.len());
        input.consume(used);
        if done.is_some() {
            return Ok(Line::Text(line));
        }
    }
}

/// Runs every turn and command of `input`.
pub async fn run(
    engine: &mut Engine,
    config: &Config,
    mut input: impl BufRead,
    interrupt: &mut Interrupt,
    output: &Output,
) -> anyhow::Result<Exit> {
    let mut config = config.clone();
    let mut assembler = Assembler::default();
    let mut stdout = output.reply_to_stdout(false);
    let mut line_no = 0usize;
    loop {
        if interrupt.fired() {
            return Ok(Exit::Interrupted);
        }
        let text = match read_line(&mut input, MAX_CONTENT_BYTES)? {
            Line::TooLong => {
                output.error(&format!(
                    "stdin line {} is longer than {MAX_CONTENT_BYTES} bytes, the most one message \
                     may hold; the script stops there: nothing was saved from it on",
                    line_no + 1
                ));
                return Ok(Exit::Usage);
            }
            Line::Text(line) => {
                line_no += 1;
                let Ok(line) = String::from_utf8(line) else {
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
                        None if assembler.held_bytes() > MAX_CONTENT_BYTES => {
                            output.error(&format!(
                                "the message continued up to stdin line {line_no} is longer than \
                                 {MAX_CONTENT_BYTES} bytes, the most one message may hold; \
                                 the script stops there: nothing was saved from it on"
                            ));
                            return Ok(Exit::Usage);
                        }
                        None => continue,
                    }
                }
            }
            Line::End => match assembler.finish() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<Line> {
        // A tiny buffer: lines span many fills.
        let mut reader = std::io::BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, cap).unwrap();
            let end = matches!(line, Line::End | Line::TooLong);
            out.push(line);
            if end {
                return out;
            }
        }
    }

    #[test]
    fn lines_are_read_whole_up_to_the_cap_and_no_further() {
        let text = |s: &str| Line::Text(s.as_bytes().to_vec());
        assert_eq!(
            lines(b"one\n\nthree four\nlast", 10),
            [
                text("one"),
                text(""),
                text("three four"),
                text("last"),
                Line::End
            ]
        );
        assert_eq!(lines(b"exactly10!\n", 10), [text("exactly10!"), Line::End]);
        assert_eq!(
            lines(b"ok\neleven byte\nnext\n", 10),
            [text("ok"), Line::TooLong]
        );
        assert_eq!(lines(b"eleven byte", 10), [Line::TooLong]);
    }
}
