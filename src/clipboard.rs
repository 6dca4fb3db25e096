//! Putting text on the clipboard (`/copy`, `/code N copy`), in this order:
//! 1. a clipboard command whose display is there: `wl-copy` when
//!    `WAYLAND_DISPLAY` is set, `xclip` then `xsel` when `DISPLAY` is set,
//!    `pbcopy` on macOS. A command that is missing or fails is passed over.
//! 2. the terminal itself, through OSC 52, when stdout is a terminal: this
//!    is what works over SSH (the terminal at the other end sets its own
//!    clipboard), and inside tmux the sequence is wrapped for its passthrough
//!    (tmux needs `set -g allow-passthrough on`, or `set-clipboard on`).
//!    Terminals that refuse OSC 52 (or cap its size) ignore it silently, so
//!    this is said as "sent to the terminal", not as done.
//!
//! With neither, copying fails with a message saying what was tried.

use std::io::Write;
use std::process::{Command, Stdio};

/// How the text reached a clipboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Through this command.
    Command(&'static str),
    /// Sent to the terminal as OSC 52 (the terminal decides).
    Terminal,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Copied::Command(name) => write!(f, "copied to the clipboard ({name})"),
            Copied::Terminal => write!(
                f,
                "sent to the terminal's clipboard (OSC 52; a terminal that does not allow it \
                 ignores it)"
            ),
        }
    }
}

/// The clipboard commands to try, in order, for this environment.
fn commands() -> Vec<(&'static str, &'static [&'static str])> {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let mut out: Vec<(&'static str, &'static [&'static str])> = Vec::new();
    if set("WAYLAND_DISPLAY") {
        out.push(("wl-copy", &[]));
    }
    if set("DISPLAY") {
        out.push(("xclip", &["-selection", "clipboard"]));
        out.push(("xsel", &["--clipboard", "--input"]));
    }
    if cfg!(target_os = "macos") {
        out.push(("pbcopy", &[]));
    }
    out
}

/// Copies `text`; `terminal` says whether stdout is a terminal (for OSC 52).
pub fn copy(text: &str, terminal: bool) -> Result<Copied, String> {
    let mut tried = Vec::new();
    for (name, args) in commands() {
        if run(name, args, text) {
            return Ok(Copied::Command(name));
        }
        tried.push(name);
    }
    if terminal {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(osc52(text, std::env::var_os("TMUX").is_some()).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to the terminal: {e}"))?;
        return Ok(Copied::Terminal);
    }
    let tried = if tried.is_empty() {
        "no clipboard command applies (no WAYLAND_DISPLAY or DISPLAY)".to_string()
    } else {
        format!("{} did not work", tried.join(", "))
    };
    Err(format!(
        "cannot copy: {tried}, and stdout is not a terminal for OSC 52"
    ))
}

/// How long a clipboard command may take: they hand the text to a process
/// of their own and exit at once; one still running after this is stuck
/// (a display that does not answer), is stopped, and counts as failed.
const COMMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a clipboard command with `text` on its stdin; whether it worked.
fn run(name: &str, args: &[&str], text: &str) -> bool {
    let Ok(mut child) = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let written = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(text.as_bytes()).is_ok());
    // xclip and wl-copy fork a process that keeps the selection and exit.
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success() && written,
            Ok(None) if started.elapsed() < COMMAND_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The OSC 52 sequence that sets the clipboard to `text`, wrapped for tmux's
/// passthrough when `tmux` (each ESC inside doubled, as tmux requires).
pub fn osc52(text: &str, tmux: bool) -> String {
    let sequence = format!("\x1b]52;c;{}\x07", base64(text.as_bytes()));
    if tmux {
        format!("\x1bPtmux;{}\x1b\\", sequence.replace('\x1b', "\x1b\x1b"))
    } else {
        sequence
    }
}

/// Standard base64 with padding (RFC 4648), which OSC 52 carries.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn osc52_is_wrapped_for_tmux() {
        assert_eq!(osc52("hi", false), "\x1b]52;c;aGk=\x07");
        assert_eq!(osc52("hi", true), "\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\");
    }
}
