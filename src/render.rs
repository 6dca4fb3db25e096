//! Output rules: replies and command output go to stdout (any `W: Write`),
//! notices, warnings and errors to stderr, prefixed `memchat:`. Colour only on
//! a terminal and never with `NO_COLOR`. The policy is a value, [`Output`],
//! made once from the configuration and passed in (a test captures notices
//! with [`Output::capturing`]).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

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

/// The output policy of one run, made once from the configuration and passed
/// to whatever prints: whether stdout and stderr are terminals and styled,
/// and where notices go (stderr, or a buffer a test reads). Nothing about
/// output is process-wide state.
#[derive(Debug, Clone)]
pub struct Output {
    stdout_terminal: bool,
    stdout_styled: bool,
    stderr_terminal: bool,
    stderr_styled: bool,
    sink: Sink,
}

/// Where notices go.
#[derive(Debug, Clone)]
enum Sink {
    Stderr,
    Captured(Arc<Mutex<Vec<u8>>>),
}

impl Output {
    /// The policy for this process: the colour choice applied to the
    /// terminals it has; `auto` styles a terminal unless `NO_COLOR` is set.
    pub fn for_process(mode: ColorMode) -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_terminal = std::io::stdout().is_terminal();
        let stderr_terminal = std::io::stderr().is_terminal();
        Output {
            stdout_terminal,
            stdout_styled: styled(mode, stdout_terminal, no_color),
            stderr_terminal,
            stderr_styled: styled(mode, stderr_terminal, no_color),
            sink: Sink::Stderr,
        }
    }

    /// Plain output whose notices are kept in memory (read them with
    /// [`Output::captured`]): for tests.
    pub fn capturing() -> Output {
        Output {
            stdout_terminal: false,
            stdout_styled: false,
            stderr_terminal: false,
            stderr_styled: false,
            sink: Sink::Captured(Arc::default()),
        }
    }

    /// The notices written so far by a [`Output::capturing`] policy.
    pub fn captured(&self) -> String {
        match &self.sink {
            Sink::Captured(buffer) => buffer
                .lock()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            Sink::Stderr => String::new(),
        }
    }

    /// Whether stdout is a terminal.
    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_terminal
    }

    /// Whether memchat styles what it writes to stdout (colour, bold).
    pub fn stdout_is_styled(&self) -> bool {
        self.stdout_styled
    }

    /// The reply output for this process's stdout: Markdown when stdout is
    /// styled, a spinner on a terminal's stderr if `spinner`.
    pub fn reply_to_stdout(&self, spinner: bool) -> ReplyOutput<std::io::StdoutLock<'static>> {
        let markdown = self.stdout_styled;
        let spinner = (spinner && self.stderr_terminal).then(|| Spinner::start(self.stderr_styled));
        // Markdown output is meant for a terminal even when forced elsewhere.
        ReplyOutput::new(std::io::stdout().lock(), markdown, spinner)
            .neutralizing(self.stdout_terminal || markdown)
    }

    /// A reply output that shows nothing (`-x` prints the code blocks once
    /// the reply is in), with the spinner on a terminal's stderr if `spinner`.
    pub fn reply_hidden(&self, spinner: bool) -> ReplyOutput<std::io::Sink> {
        let spinner = (spinner && self.stderr_terminal).then(|| Spinner::start(self.stderr_styled));
        ReplyOutput::new(std::io::sink(), false, spinner)
    }

    fn emit(&self, style: Style, label: &str, message: &str) {
        let style = if self.stderr_styled {
            style
        } else {
            Style::new()
        };
        // A plain style renders as nothing, its reset too.
        let line = format!("{style}memchat: {label}{message}{style:#}\n");
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Captured(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.extend_from_slice(line.as_bytes());
                }
            }
        }
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

/// Whether a stream is styled under `mode`.
fn styled(mode: ColorMode, terminal: bool, no_color: bool) -> bool {
    match mode {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => terminal && !no_color,
    }
}

/// Ends a reply with exactly one newline, so the next output starts clean.
pub fn finish_reply(out: &mut dyn Write, reply: &str) -> std::io::Result<()> {
    if !reply.is_empty() && !reply.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// `n` and its noun, agreeing: "1 message", "0 messages", "2 messages".
/// Every count shown to the user goes through here.
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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

/// What a turn waits on, as the spinner says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The store: the turn's lock, the user's message made durable (on
    /// PostgreSQL, maybe a connection made again).
    Store,
    /// The model's first token.
    Model,
}

/// What the turn under way waits on ([`waiting_on`]); the spinner reads it
/// at every frame.
static WAITING_ON_STORE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says what the turn under way waits on from now, for the spinner (set by
/// the engine as a turn goes from the store to the model).
pub fn waiting_on(what: Waiting) {
    WAITING_ON_STORE.store(what == Waiting::Store, std::sync::atomic::Ordering::Relaxed);
}

/// A spinner on stderr while waiting for the first token (terminal only):
/// a thread redraws it until the first byte of the reply arrives. It says
/// what the turn waits on ([`waiting_on`]): the store, then the model.
pub struct Spinner {
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drawn: std::sync::Arc<std::sync::Mutex<bool>>,
}

impl Spinner {
    /// Starts the spinner on stderr, dimmed when `styled`.
    pub fn start(styled: bool) -> Spinner {
        use std::sync::atomic::Ordering;
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drawn = std::sync::Arc::new(std::sync::Mutex::new(false));
        let (stop, lock) = (stopped.clone(), drawn.clone());
        // The spinner is drawn on a terminal only, but is plain under NO_COLOR.
        let style = if styled { INFO } else { Style::new() };
        std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            std::thread::sleep(SPINNER_DELAY);
            for frame in FRAMES.iter().cycle() {
                {
                    let Ok(mut drawn) = lock.lock() else { return };
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let what = match WAITING_ON_STORE.load(Ordering::Relaxed) {
                        true => "the store",
                        false => "the model",
                    };
                    // The line is cleared first: the two texts differ in
                    // length.
                    let _ = write!(
                        std::io::stderr(),
                        "{ERASE_LINE}{style}{frame} waiting for {what}…{style:#}"
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
    /// Whether what was written last did not end its line.
    open_line: bool,
}

enum ReplyInner<W: Write> {
    Raw(W),
    Markdown(crate::markdown::MarkdownWriter<W>),
}

impl<W: Write> ReplyOutput<W> {
    pub fn new(inner: W, markdown: bool, spinner: Option<Spinner>) -> Self {
        ReplyOutput {
            inner: if markdown {
                ReplyInner::Markdown(crate::markdown::MarkdownWriter::new(inner))
            } else {
                ReplyInner::Raw(inner)
            },
            spinner,
            neutralizer: None,
            open_line: false,
        }
    }

    /// Ends the line the reply left open, if it did: an error said after a
    /// reply cut short (or one that could not be stored) starts on a line
    /// of its own.
    pub fn end_line(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.open_line) {
            self.write_inner(b"\n")?;
        }
        self.flush()
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
        if let Some(&last) = buf.last() {
            self.open_line = last != b'\n';
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

    #[test]
    fn the_colour_choice_applies_per_stream() {
        assert!(styled(ColorMode::Always, false, true));
        assert!(!styled(ColorMode::Never, true, false));
        assert!(styled(ColorMode::Auto, true, false));
        assert!(!styled(ColorMode::Auto, true, true), "NO_COLOR");
        assert!(!styled(ColorMode::Auto, false, false), "not a terminal");
    }

    #[test]
    fn notices_can_be_captured_plain() {
        let output = Output::capturing();
        output.info("compacted");
        output.warn("careful");
        output.error("failed");
        assert_eq!(
            output.captured(),
            "memchat: compacted\nmemchat: warning: careful\nmemchat: error: failed\n"
        );
    }
}
