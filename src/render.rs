//! Output rules: replies and command output go to stdout (any `W: Write`),
//! notices, warnings and errors to stderr, prefixed `memchat:`. Colour only on
//! a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};

const INFO: Style = Style::new().dimmed();
const WARNING: Style = AnsiColor::Yellow.on_default();
const ERROR: Style = AnsiColor::Red.on_default();
/// Moves to the line's start and clears it (a cursor control, not a style).
const ERASE_LINE: &str = "\r\x1b[2K";
/// Quick replies should not flash a spinner: it appears after this long.
const SPINNER_DELAY: std::time::Duration = std::time::Duration::from_millis(150);
/// Time per spinner frame: ten frames turn about once a second.
const SPINNER_FRAME: std::time::Duration = std::time::Duration::from_millis(80);

/// When to use colour (and Markdown styling): `auto` means on a terminal
/// without `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    #[default]
    Auto,
    Always,
    Never,
}

impl std::str::FromStr for ColorMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ColorMode::Auto),
            "always" => Ok(ColorMode::Always),
            "never" => Ok(ColorMode::Never),
            other => Err(format!(
                "color must be auto, always or never, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for ColorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColorMode::Auto => "auto",
            ColorMode::Always => "always",
            ColorMode::Never => "never",
        })
    }
}

/// The process-wide colour choice, set once from the configuration.
static COLOR_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Records the configured colour choice.
pub fn set_color_mode(mode: ColorMode) {
    let value = match mode {
        ColorMode::Auto => 0,
        ColorMode::Always => 1,
        ColorMode::Never => 2,
    };
    COLOR_MODE.store(value, std::sync::atomic::Ordering::Relaxed);
}

/// Whether to style output going to a stream that is (or is not) a terminal.
pub fn use_color(is_terminal: bool) -> bool {
    match COLOR_MODE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Writes notices to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Notices {
    color: bool,
}

impl Notices {
    pub fn for_stderr() -> Self {
        Notices {
            color: use_color(std::io::stderr().is_terminal()),
        }
    }

    fn emit(&self, style: Style, label: &str, message: &str) {
        let style = if self.color { style } else { Style::new() };
        // A plain style renders as nothing, its reset too.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{style}memchat: {label}{message}{style:#}"
        );
    }

    /// Something the user should know (a compaction, an assumption).
    pub fn info(&self, message: &str) {
        self.emit(INFO, "", message);
    }

    /// Something went wrong but memchat carries on.
    pub fn warn(&self, message: &str) {
        self.emit(WARNING, "warning: ", message);
    }

    /// Something failed.
    pub fn error(&self, message: &str) {
        self.emit(ERROR, "error: ", message);
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

/// A spinner on stderr while waiting for the first token (terminal only):
/// a thread redraws it until the first byte of the reply arrives.
pub struct Spinner {
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drawn: std::sync::Arc<std::sync::Mutex<bool>>,
}

impl Spinner {
    pub fn start() -> Spinner {
        use std::sync::atomic::Ordering;
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drawn = std::sync::Arc::new(std::sync::Mutex::new(false));
        let (stop, lock) = (stopped.clone(), drawn.clone());
        // The spinner is drawn on a terminal only, but is plain under NO_COLOR.
        let style = if use_color(std::io::stderr().is_terminal()) {
            INFO
        } else {
            Style::new()
        };
        std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            std::thread::sleep(SPINNER_DELAY);
            for frame in FRAMES.iter().cycle() {
                {
                    let Ok(mut drawn) = lock.lock() else { return };
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let _ = write!(
                        std::io::stderr(),
                        "\r{style}{frame} waiting for the model…{style:#}"
                    );
                    *drawn = true;
                }
                std::thread::sleep(SPINNER_FRAME);
            }
        });
        Spinner { stopped, drawn }
    }

    /// Stops and erases the spinner; idempotent.
    pub fn stop(&self) {
        use std::sync::atomic::Ordering;
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut drawn) = self.drawn.lock()
            && *drawn
        {
            let _ = write!(std::io::stderr(), "{ERASE_LINE}");
            *drawn = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a reply goes: stdout, rendered as Markdown on a terminal (unless
/// `NO_COLOR`), with a spinner on stderr until the first byte. Bound for a
/// terminal, the model's control characters are shown, not executed
/// ([`crate::visible`]); a pipe gets them byte for byte.
pub struct ReplyOutput<W: Write> {
    inner: ReplyInner<W>,
    spinner: Option<Spinner>,
    neutralizer: Option<crate::visible::Neutralizer>,
}

enum ReplyInner<W: Write> {
    Raw(W),
    Markdown(crate::markdown::MarkdownWriter<W>),
}

impl ReplyOutput<std::io::StdoutLock<'static>> {
    /// The reply output for this process's stdout.
    pub fn stdout(spinner: bool) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        let markdown = use_color(terminal);
        let spinner = spinner && std::io::stderr().is_terminal();
        // Markdown output is meant for a terminal even when forced elsewhere.
        ReplyOutput::new(std::io::stdout().lock(), markdown, spinner)
            .neutralizing(terminal || markdown)
    }
}

impl<W: Write> ReplyOutput<W> {
    pub fn new(inner: W, markdown: bool, spinner: bool) -> Self {
        ReplyOutput {
            inner: if markdown {
                ReplyInner::Markdown(crate::markdown::MarkdownWriter::new(inner))
            } else {
                ReplyInner::Raw(inner)
            },
            spinner: spinner.then(Spinner::start),
            neutralizer: None,
        }
    }

    /// Shows control characters in what is written instead of passing them.
    pub fn neutralizing(mut self, yes: bool) -> Self {
        self.neutralizer = yes.then(crate::visible::Neutralizer::default);
        self
    }

    /// Ends the reply: stops the spinner, writes anything held back.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(spinner) = self.spinner.take() {
            spinner.stop();
        }
        if let Some(neutralizer) = &mut self.neutralizer {
            let mut rest = String::new();
            neutralizer.finish(&mut rest);
            self.write_inner(rest.as_bytes())?;
        }
        match &mut self.inner {
            ReplyInner::Raw(w) => w.flush(),
            ReplyInner::Markdown(w) => w.finish(),
        }
    }

    fn write_inner(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &mut self.inner {
            ReplyInner::Raw(w) => w.write_all(buf),
            ReplyInner::Markdown(w) => w.write_all(buf),
        }
    }
}

impl<W: Write> Write for ReplyOutput<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(spinner) = self.spinner.take() {
            spinner.stop();
        }
        if let Some(neutralizer) = &mut self.neutralizer {
            // The engine and the commands write whole UTF-8 texts.
            let mut shown = String::with_capacity(buf.len());
            neutralizer.push(&String::from_utf8_lossy(buf), &mut shown);
            self.write_inner(shown.as_bytes())?;
            return Ok(buf.len());
        }
        match &mut self.inner {
            ReplyInner::Raw(w) => w.write(buf),
            ReplyInner::Markdown(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            ReplyInner::Raw(w) => w.flush(),
            ReplyInner::Markdown(w) => w.flush(),
        }
    }
}

impl<W: Write> Drop for ReplyOutput<W> {
    fn drop(&mut self) {
        let _ = self.finish();
    }
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
