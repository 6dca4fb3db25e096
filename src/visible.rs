//! Text from outside memchat (the model, the server, a log on disk) made
//! harmless for a terminal: every control character is shown, never executed.
//!
//! A reply that carries `ESC ] 0 ; title BEL` would retitle the window, `ESC [
//! 2 J` would clear the screen, OSC 52 would write the clipboard. Every such
//! sequence starts with ESC or a C1 control (U+0080–U+009F, e.g. U+009B is an
//! 8-bit CSI), so showing those as text (`^[`, `\u{9b}`) disarms them all.
//! Line feeds and tabs pass; a carriage return passes only before a line feed
//! (alone it would let text overwrite the line it is on); backspace, bell and
//! the other C0 controls are shown in caret notation (`^H`, `^G`), DEL as `^?`.
//!
//! Used only where the text reaches a terminal, before memchat adds its own
//! styling; a pipe gets the bytes exactly as the model sent them.

use std::io::{self, Write};

/// Appends `c` to `out` in its visible form.
fn push_visible(c: char, out: &mut String) {
    match c {
        '\n' | '\t' => out.push(c),
        '\u{7f}' => out.push_str("^?"),
        '\0'..='\u{1f}' => {
            out.push('^');
            out.push(char::from(c as u8 + 0x40));
        }
        '\u{80}'..='\u{9f}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        _ => out.push(c),
    }
}

/// Whether `c` is shown differently from itself.
pub fn is_neutralized(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Neutralises text that arrives in pieces (a streamed reply): a carriage
/// return at the end of a piece waits for the next one to know whether a line
/// feed follows.
#[derive(Debug, Default)]
pub struct Neutralizer {
    carriage_return: bool,
}

impl Neutralizer {
    /// Appends the visible form of `text` to `out`.
    pub fn push(&mut self, text: &str, out: &mut String) {
        for c in text.chars() {
            if std::mem::take(&mut self.carriage_return) {
                out.push_str(if c == '\n' { "\r" } else { "^M" });
            }
            if c == '\r' {
                self.carriage_return = true;
            } else {
                push_visible(c, out);
            }
        }
    }

    /// Flushes a carriage return still waiting at the end of the text.
    pub fn finish(&mut self, out: &mut String) {
        if std::mem::take(&mut self.carriage_return) {
            out.push_str("^M");
        }
    }
}

/// `text` cut after `max` characters, saying how many more there were (a
/// server's or a file's text may be of any length).
pub fn capped(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
        None => text,
    }
}

/// The visible form of a whole text.
pub fn text(text: &str) -> String {
    if !text.chars().any(is_neutralized) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut neutralizer = Neutralizer::default();
    neutralizer.push(text, &mut out);
    neutralizer.finish(&mut out);
    out
}

/// A writer that neutralises what passes through it when `enabled` (the
/// output is a terminal) and passes bytes through untouched otherwise.
pub struct Writer<W: Write> {
    inner: W,
    enabled: bool,
    neutralizer: Neutralizer,
    /// The start of a UTF-8 character cut by the end of the last write.
    partial: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W, enabled: bool) -> Self {
        Writer {
            inner,
            enabled,
            neutralizer: Neutralizer::default(),
            partial: Vec::new(),
        }
    }

    /// Writes anything still held back (a trailing carriage return, a cut
    /// character) and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        let mut out = String::new();
        if !self.partial.is_empty() {
            let bytes = std::mem::take(&mut self.partial);
            self.neutralizer
                .push(&String::from_utf8_lossy(&bytes), &mut out);
        }
        self.neutralizer.finish(&mut out);
        self.inner.write_all(out.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.enabled {
            return self.inner.write(buf);
        }
        self.partial.extend_from_slice(buf);
        let bytes = std::mem::take(&mut self.partial);
        let (text, rest) = match std::str::from_utf8(&bytes) {
            Ok(text) => (text.to_string(), &[][..]),
            // An incomplete character at the end waits for the next write;
            // an invalid one is shown as U+FFFD.
            Err(e) if e.error_len().is_none() => (
                String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
                &bytes[e.valid_up_to()..],
            ),
            Err(_) => (String::from_utf8_lossy(&bytes).into_owned(), &[][..]),
        };
        self.partial = rest.to_vec();
        let mut out = String::with_capacity(text.len());
        self.neutralizer.push(&text, &mut out);
        self.inner.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_executed() {
        assert_eq!(text("\x1b]0;pwned\x07"), "^[]0;pwned^G");
        assert_eq!(text("a\x1b[2Jb"), "a^[[2Jb");
        assert_eq!(text("8-bit \u{9b}2J"), "8-bit \\u{9b}2J");
        assert_eq!(text("del\x7f bs\x08"), "del^? bs^H");
        assert_eq!(text("plain\ttext\nnext"), "plain\ttext\nnext");
        assert_eq!(text("é ✓"), "é ✓");
    }

    #[test]
    fn a_carriage_return_passes_only_before_a_line_feed() {
        assert_eq!(text("a\r\nb"), "a\r\nb");
        assert_eq!(text("secret\rcover"), "secret^Mcover");
        assert_eq!(text("end\r"), "end^M");
        let mut n = Neutralizer::default();
        let mut out = String::new();
        n.push("line\r", &mut out);
        n.push("\nnext\r", &mut out);
        n.push("x", &mut out);
        n.finish(&mut out);
        assert_eq!(out, "line\r\nnext^Mx");
    }

    #[test]
    fn the_writer_neutralises_only_when_enabled_and_keeps_cut_characters() {
        let mut on = Writer::new(Vec::new(), true);
        let bytes = "é\x1b[31m".as_bytes();
        on.write_all(&bytes[..1]).unwrap();
        on.write_all(&bytes[1..]).unwrap();
        on.finish().unwrap();
        assert_eq!(String::from_utf8(on.inner).unwrap(), "é^[[31m");
        let mut off = Writer::new(Vec::new(), false);
        off.write_all(b"\x1b[31mred\r").unwrap();
        off.finish().unwrap();
        assert_eq!(off.inner, b"\x1b[31mred\r");
    }
}
