//! Lines the user typed that the REPL will never send: those that arrived
//! together with `/exit` or Ctrl-D (a paste, or lines typed while a reply
//! streamed) and still wait in the line editor's read-ahead buffer or in
//! the terminal. They are collected when the REPL ends and named on stderr
//! as not sent, instead of vanishing (or being run by the shell).
//!
//! rustyline offers no way to see its read-ahead buffer, so it is emptied
//! through the editor itself: one more line is read, and at its first draw
//! (the hinter is asked for a hint before any key is read) stdin is pointed
//! at `/dev/null`. The editor then works through the keys it already holds,
//! handing back each whole line, and meets end of input where it would have
//! waited for the terminal. The real stdin and the terminal's modes are put
//! back after each line. What the terminal itself still queues is read
//! without waiting ([`crate::typeahead::take_queued`]).
//!
//! The same concern shapes two keys: rustyline drops its read-ahead buffer
//! when a line ends in Ctrl-C or Ctrl-D, so both are bound to end the line
//! normally, with a flag saying which key it was.

use std::io::{IsTerminal, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustyline::{Cmd, ConditionalEventHandler, Event, EventContext, RepeatCount};

/// How many lines of leftovers are named in the notice.
const NAMED: usize = 3;
/// How many words of each named line are shown.
const WORDS: usize = 5;
/// The most lines read back from the editor (it holds at most a few KiB).
const MAX_DRAINED: usize = 10_000;

/// What the key handlers and the helper share with the REPL loop.
#[derive(Debug, Default)]
pub struct Keys {
    /// Ctrl-D on an empty line ended the last line.
    eof: AtomicBool,
    /// Ctrl-C ended the last line: it is discarded.
    cleared: AtomicBool,
    /// The line being read is a drain: cut stdin at its first draw.
    draining: AtomicBool,
    /// The real stdin, saved while `/dev/null` stands in for it.
    saved_stdin: Mutex<Option<OwnedFd>>,
    /// The line as last drawn during a drain (an unfinished one is lost
    /// with the editor's end-of-input error otherwise).
    drawn: Mutex<String>,
}

/// How the last line the editor handed back was ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Enter: the line is the user's.
    Enter,
    /// Ctrl-C: the line is discarded.
    Cleared,
    /// Ctrl-D on an empty line: the end of input.
    EndOfInput,
}

impl Keys {
    /// Forgets how the previous line ended; call before each line.
    pub fn before_line(&self) {
        self.eof.store(false, Ordering::SeqCst);
        self.cleared.store(false, Ordering::SeqCst);
    }

    /// How the line just read was ended.
    pub fn ending(&self) -> Ending {
        if self.cleared.load(Ordering::SeqCst) {
            Ending::Cleared
        } else if self.eof.load(Ordering::SeqCst) {
            Ending::EndOfInput
        } else {
            Ending::Enter
        }
    }

    /// Called by the helper each time the editor draws the line: during a
    /// drain, the first draw cuts stdin, and every draw notes the line.
    pub fn drawn(&self, line: &str) {
        if !self.draining.load(Ordering::SeqCst) {
            return;
        }
        let mut saved = self
            .saved_stdin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if saved.is_none() {
            *saved = cut_stdin();
        }
        let mut drawn = self.drawn.lock().unwrap_or_else(PoisonError::into_inner);
        line.clone_into(&mut drawn);
    }

    /// Puts the real stdin back after a drained line; returns the line as
    /// last drawn.
    fn end_drain(&self) -> String {
        self.draining.store(false, Ordering::SeqCst);
        if let Some(stdin) = self
            .saved_stdin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = rustix::stdio::dup2_stdin(&stdin);
        }
        std::mem::take(&mut *self.drawn.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Points stdin at `/dev/null`, returning the real one; `None` (and stdin
/// untouched) if that cannot be done.
fn cut_stdin() -> Option<OwnedFd> {
    let null = std::fs::File::open("/dev/null").ok()?;
    let real = rustix::io::dup(std::io::stdin()).ok()?;
    rustix::stdio::dup2_stdin(&null).ok()?;
    Some(real)
}

/// Ctrl-D on an empty line: end the line (keeping what the editor read
/// ahead) and flag the end of input. On a non-empty line, the usual key.
pub struct EndOfInputKey(pub Arc<Keys>);

impl ConditionalEventHandler for EndOfInputKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().is_empty() {
            self.0.eof.store(true, Ordering::SeqCst);
            Some(Cmd::AcceptLine)
        } else {
            None
        }
    }
}

/// Ctrl-C at the prompt: end the line (keeping what the editor read ahead)
/// and flag it as discarded.
pub struct ClearKey(pub Arc<Keys>);

impl ConditionalEventHandler for ClearKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        self.0.cleared.store(true, Ordering::SeqCst);
        Some(Cmd::AcceptLine)
    }
}

/// Reads back every line the editor holds but was not asked for, then
/// whatever the terminal still queues. Lines ended by Ctrl-C are left out
/// (the user discarded them); an unfinished last line is kept.
pub fn drain<H: rustyline::Helper, I: rustyline::history::History>(
    editor: &mut rustyline::Editor<H, I>,
    keys: &Keys,
) -> Vec<String> {
    let mut lines = Vec::new();
    // An unfinished line the editor held, which the terminal's queue may
    // continue.
    let mut rest = String::new();
    let stdin = std::io::stdin();
    let Ok(modes) = rustix::termios::tcgetattr(&stdin) else {
        return lines;
    };
    // Without line editing (TERM=dumb and the like) the editor never draws:
    // it reads whole lines through std's buffered stdin. Cut stdin first
    // then; what std already holds still comes back, line by line.
    let direct = !editor_draws(&stdin);
    for _ in 0..MAX_DRAINED {
        keys.before_line();
        if direct {
            *keys
                .saved_stdin
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = cut_stdin();
        } else {
            keys.draining.store(true, Ordering::SeqCst);
        }
        let read = editor.readline("");
        let drawn = keys.end_drain();
        // The editor could not restore the modes through /dev/null.
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Drain, &modes);
        match read {
            Ok(line) => {
                if keys.ending() == Ending::Enter && !line.trim().is_empty() {
                    lines.push(line);
                }
            }
            Err(_) => {
                // End of input: the held keys are used up.
                if !direct && drawn.is_empty() && std::io::stdout().is_terminal() {
                    // Take back the empty line the editor drew and ended.
                    let _ = std::io::stdout().write_all(b"\x1b[A");
                    let _ = std::io::stdout().flush();
                }
                rest = drawn;
                break;
            }
        }
    }
    rest.push_str(&String::from_utf8_lossy(&crate::typeahead::take_queued()));
    lines.extend(
        rest.split(['\r', '\n'])
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string),
    );
    lines
}

/// Whether the line editor edits (and so draws) lines on this terminal:
/// rustyline reads plain lines when stdin is no terminal or `TERM` names one
/// it does not support (its list: dumb, cons25, emacs).
fn editor_draws(stdin: &std::io::Stdin) -> bool {
    const UNSUPPORTED: [&str; 3] = ["dumb", "cons25", "emacs"];
    let unsupported = std::env::var("TERM")
        .is_ok_and(|term| UNSUPPORTED.iter().any(|u| u.eq_ignore_ascii_case(&term)));
    stdin.is_terminal() && !unsupported
}

/// The notice for lines not sent after `what` (`/exit`, Ctrl-D): how many
/// and how each of the first few begins, shown harmlessly. `None` when
/// there are none.
pub fn notice(what: &str, entries: &[String]) -> Option<String> {
    let lines: Vec<&str> = entries
        .iter()
        .flat_map(|e| e.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let named: Vec<String> = lines
        .iter()
        .take(NAMED)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut start = words
                .iter()
                .take(WORDS)
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            if words.len() > WORDS {
                start.push('…');
            }
            format!("\"{}\"", crate::visible::text(&start))
        })
        .collect();
    let more = lines.len().saturating_sub(NAMED);
    Some(format!(
        "{} typed after {what} {} not sent: {}{}",
        crate::render::counted(lines.len() as u64, "line"),
        if lines.len() == 1 { "was" } else { "were" },
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_counts_lines_and_names_how_the_first_begin() {
        assert_eq!(notice("/exit", &[]), None);
        assert_eq!(notice("/exit", &[" ".into()]), None);
        assert_eq!(
            notice("/exit", &["one".into()]).unwrap(),
            "1 line typed after /exit was not sent: \"one\""
        );
        let entries = [
            "a b c d e f g".to_string(),
            "two\nthree".to_string(),
            "four".to_string(),
            "evil \u{1b}]0;title\u{7}".to_string(),
        ];
        assert_eq!(
            notice("Ctrl-D", &entries).unwrap(),
            "5 lines typed after Ctrl-D were not sent: \"a b c d e…\", \"two\", \"three\" and \
             2 more"
        );
        let shown = notice("/exit", &entries[3..]).unwrap();
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }
}
