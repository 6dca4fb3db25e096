//! Output rules: replies and command output go to stdout (any `W: Write`),
//! notices, warnings and errors to stderr, prefixed `memchat:`. Colour only on
//! a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

/// Writes notices to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Notices {
    color: bool,
}

impl Notices {
    pub fn for_stderr() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Notices {
            color: std::io::stderr().is_terminal() && !no_color,
        }
    }

    fn emit(&self, style: &str, label: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.color {
            writeln!(err, "\x1b[{style}mmemchat: {label}{message}\x1b[0m")
        } else {
            writeln!(err, "memchat: {label}{message}")
        };
    }

    /// Something the user should know (a compaction, an assumption).
    pub fn info(&self, message: &str) {
        self.emit("2", "", message);
    }

    /// Something went wrong but memchat carries on.
    pub fn warn(&self, message: &str) {
        self.emit("33", "warning: ", message);
    }

    /// Something failed.
    pub fn error(&self, message: &str) {
        self.emit("31", "error: ", message);
    }
}

/// Ends a reply with exactly one newline, so the next output starts clean.
pub fn finish_reply(out: &mut dyn Write, reply: &str) -> std::io::Result<()> {
    if !reply.is_empty() && !reply.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// A horizontal gauge of `used` out of `total`, `width` cells wide.
pub fn gauge(used: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        usize::try_from((used.min(total) * width as u64).div_ceil(total)).unwrap_or(width)
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_fill_proportionally() {
        assert_eq!(gauge(0, 100, 10), "[..........]");
        assert_eq!(gauge(50, 100, 10), "[#####.....]");
        assert_eq!(gauge(200, 100, 4), "[####]");
    }

    #[test]
    fn replies_end_with_one_newline() {
        let mut out = Vec::new();
        finish_reply(&mut out, "hi").unwrap();
        assert_eq!(out, b"\n");
        let mut out = Vec::new();
        finish_reply(&mut out, "hi\n").unwrap();
        assert!(out.is_empty());
    }
}
