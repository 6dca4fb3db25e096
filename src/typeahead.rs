//! Keystrokes that reach the terminal before memchat asks for them. Two
//! things would lose them without a word: the terminal discards its whole
//! input queue when Ctrl-C raises SIGINT (a line typed while a reply streams,
//! then Ctrl-C, vanished), and lines still queued when the REPL ends would
//! go to the shell or nowhere. [`KeepTypeahead`] sets `NOFLSH` for the
//! REPL's lifetime so Ctrl-C keeps the queue; [`take_queued`] reads what is
//! still queued, to be shown as not sent.
//!
//! `NOFLSH` only matters while the terminal is in its normal (canonical)
//! mode, which is while a reply streams or a command runs: at the prompt the
//! line editor reads Ctrl-C as a key. The editor copies the terminal's modes
//! when it starts a line and restores them after, so the flag set here stays
//! on for every line.
//!
//! The modes found at the start are also kept for [`restore_terminal`]: an
//! exit that skips the REPL's own cleanup (SIGTERM at the prompt, while the
//! editor holds the terminal in raw mode) must not leave the shell a
//! terminal without echo or line editing.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};

/// The terminal's modes as the REPL found them, while it runs.
static FOUND: Mutex<Option<Termios>> = Mutex::new(None);

/// While alive, the terminal on stdin keeps its input queue on Ctrl-C
/// (`NOFLSH`); dropping it puts the flag back as it was.
#[derive(Debug)]
pub struct KeepTypeahead {
    original: Option<Termios>,
}

impl KeepTypeahead {
    /// Sets `NOFLSH` on stdin's terminal (nothing when stdin is no terminal).
    pub fn on_stdin() -> KeepTypeahead {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return KeepTypeahead { original: None };
        }
        let Ok(original) = termios::tcgetattr(&stdin) else {
            return KeepTypeahead { original: None };
        };
        let mut keep = original.clone();
        keep.local_modes |= LocalModes::NOFLSH;
        // TCSADRAIN, like the line editor: never discards pending input.
        if termios::tcsetattr(&stdin, OptionalActions::Drain, &keep).is_err() {
            return KeepTypeahead { original: None };
        }
        *FOUND.lock().unwrap_or_else(PoisonError::into_inner) = Some(original.clone());
        KeepTypeahead {
            original: Some(original),
        }
    }
}

impl Drop for KeepTypeahead {
    fn drop(&mut self) {
        let Some(original) = &self.original else {
            return;
        };
        FOUND.lock().unwrap_or_else(PoisonError::into_inner).take();
        let stdin = std::io::stdin();
        // Only the flag is put back: the modes may have changed meanwhile.
        if let Ok(mut now) = termios::tcgetattr(&stdin) {
            now.local_modes.set(
                LocalModes::NOFLSH,
                original.local_modes.contains(LocalModes::NOFLSH),
            );
            let _ = termios::tcsetattr(&stdin, OptionalActions::Drain, &now);
        }
    }
}

/// Reads, without waiting, whatever the terminal on stdin still holds:
/// whole lines and an unfinished one alike (the terminal's line editing is
/// switched off for the read, then restored). Empty when stdin is no
/// terminal or holds nothing.
pub fn take_queued() -> Vec<u8> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Vec::new();
    }
    let Ok(original) = termios::tcgetattr(&stdin) else {
        return Vec::new();
    };
    let mut raw = original.clone();
    raw.local_modes
        .remove(LocalModes::ICANON | LocalModes::ECHO);
    // VMIN 0, VTIME 0: a read returns at once with what is there.
    raw.special_codes[SpecialCodeIndex::VMIN] = 0;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    if termios::tcsetattr(&stdin, OptionalActions::Now, &raw).is_err() {
        return Vec::new();
    }
    let mut queued = Vec::new();
    let mut buffer = [0u8; 4096];
    // Bounded: a terminal flooding input cannot keep memchat here.
    while queued.len() < 1024 * 1024 {
        match rustix::io::read(&stdin, &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => queued.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = termios::tcsetattr(&stdin, OptionalActions::Now, &original);
    queued
}

/// Puts the terminal back as the REPL found it (line editing, echo, no
/// `NOFLSH`, bracketed paste off), for an exit that skips the REPL's own
/// cleanup. Nothing when no REPL runs.
pub fn restore_terminal() {
    let Some(found) = FOUND.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return;
    };
    let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &found);
    if std::io::stdout().is_terminal() {
        // The editor's bracketed paste, switched on for each line. Written
        // to the terminal itself, not through stdout: the signal handlers'
        // thread calls this while the main thread may hold stdout's lock
        // for as long as it waits (a command's store call), and would
        // block here until then instead of exiting.
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            let _ = tty.write_all(b"\x1b[?2004l");
        }
    }
}
