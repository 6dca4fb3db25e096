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

use std::io::IsTerminal;

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};

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
