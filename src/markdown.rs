//! Markdown for the terminal, rendered while the reply streams: headings,
//! list bullets, block quotes, `**bold**`, `*emphasis*`, `inline code`, and
//! fenced code blocks with light syntax highlighting ([`crate::highlight`],
//! comments by the fence's language). Prose is written character by character as it
//! arrives; only a line's first few characters wait until the line's kind is
//! known, and code lines wait for their end (highlighting needs whole words).
//! Markers stay visible, so nothing the model wrote is ever hidden. Used
//! only on a terminal without `NO_COLOR`; everywhere else text passes raw.

use std::io::{self, Write};

use anstyle::{AnsiColor, Reset, Style};

use crate::highlight::Highlighter;

const BOLD: Style = Style::new().bold();
const ITALIC: Style = Style::new().italic();
const DIM: Style = Style::new().dimmed();
const HEADING: Style = AnsiColor::Cyan.on_default().bold();
const CODE: Style = AnsiColor::Yellow.on_default();

/// Where the renderer is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the start: collecting the prefix that says what kind of line it is.
    Start,
    /// Streaming prose with inline styles.
    Prose,
}

/// A `Write` that renders Markdown onto `inner` as text arrives.
pub struct MarkdownWriter<W: Write> {
    inner: W,
    state: LineState,
    pending: String,
    /// Inside a fenced code block: its highlighter.
    code_block: Option<Highlighter>,
    bold: bool,
    italic: bool,
    code: bool,
    /// Style applied to the whole line (heading, quote).
    line_style: Option<Style>,
}

impl<W: Write> MarkdownWriter<W> {
    pub fn new(inner: W) -> Self {
        MarkdownWriter {
            inner,
            state: LineState::Start,
            pending: String::new(),
            code_block: None,
            bold: false,
            italic: false,
            code: false,
            line_style: None,
        }
    }

    fn style(&self) -> String {
        let mut s = Reset.to_string();
        if let Some(line) = self.line_style {
            s.push_str(&line.to_string());
        }
        if self.bold {
            s.push_str(&BOLD.to_string());
        }
        if self.italic {
            s.push_str(&ITALIC.to_string());
        }
        if self.code {
            s.push_str(&CODE.to_string());
        }
        s
    }

    /// Decides the kind of line from its prefix, once enough is known.
    fn decide(&mut self, complete: bool) -> io::Result<bool> {
        let trimmed = self.pending.trim_start();
        if self.code_block.is_some()
            || trimmed.starts_with("```")
            || trimmed.starts_with('`') && !complete && trimmed.len() < 3
        {
            // Code lines and fences are written whole, at the line's end.
            return Ok(false);
        }
        let undecided = !complete
            && (trimmed.is_empty()
                || trimmed.chars().all(|c| c == '#')
                || matches!(trimmed, "-" | "*" | "+" | ">")
                || trimmed.chars().all(|c| c.is_ascii_digit()));
        if undecided {
            return Ok(false);
        }
        let indent = &self.pending[..self.pending.len() - trimmed.len()];
        let mut out = String::from(indent);
        let rest: String;
        // A heading is 1-6 `#` then a space (or nothing): `#hashtag` is prose.
        let hashes = trimmed.len() - trimmed.trim_start_matches('#').len();
        let heading = (1..=6).contains(&hashes)
            && (trimmed[hashes..].is_empty() || trimmed[hashes..].starts_with(' '));
        if let Some(after) = heading.then(|| &trimmed[hashes..]) {
            self.line_style = Some(HEADING);
            out.push_str(&format!(
                "{HEADING}{}",
                &trimmed[..trimmed.len() - after.len()]
            ));
            rest = after.to_string();
        } else if let Some(after) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
            .or_else(|| trimmed.strip_prefix("+ "))
        {
            out.push_str(&format!("{BOLD}•{Reset} "));
            rest = after.to_string();
        } else if let Some(after) = trimmed.strip_prefix('>') {
            self.line_style = Some(DIM);
            out.push_str(&format!("{DIM}│"));
            rest = after.to_string();
        } else {
            rest = trimmed.to_string();
        }
        self.inner.write_all(out.as_bytes())?;
        self.pending.clear();
        self.state = LineState::Prose;
        self.prose(&rest)?;
        Ok(true)
    }

    /// Writes prose, toggling inline styles on their markers (kept visible).
    fn prose(&mut self, text: &str) -> io::Result<()> {
        let mut chars = text.chars().peekable();
        let mut out = String::new();
        while let Some(c) = chars.next() {
            match c {
                '`' => {
                    self.code = !self.code;
                    if self.code {
                        out.push_str(&self.style());
                        out.push(c);
                    } else {
                        out.push(c);
                        out.push_str(&self.style());
                    }
                }
                '*' if !self.code && chars.peek() == Some(&'*') => {
                    chars.next();
                    self.bold = !self.bold;
                    if self.bold {
                        out.push_str(&self.style());
                        out.push_str("**");
                    } else {
                        out.push_str("**");
                        out.push_str(&self.style());
                    }
                }
                '*' if !self.code => {
                    self.italic = !self.italic;
                    if self.italic {
                        out.push_str(&self.style());
                        out.push('*');
                    } else {
                        out.push('*');
                        out.push_str(&self.style());
                    }
                }
                _ => out.push(c),
            }
        }
        self.inner.write_all(out.as_bytes())
    }

    /// Ends a line: resets every style (inline styles never cross lines).
    fn end_line(&mut self) -> io::Result<()> {
        if self.state == LineState::Start {
            let line = std::mem::take(&mut self.pending);
            let trimmed = line.trim_start();
            if let Some(info) = trimmed.strip_prefix("```") {
                self.code_block = match self.code_block {
                    Some(_) => None,
                    // The info string's first word names the language.
                    None => Some(Highlighter::new(
                        info.trim_start_matches('`')
                            .split_whitespace()
                            .next()
                            .unwrap_or(""),
                    )),
                };
                write!(self.inner, "{DIM}{line}{Reset}")?;
            } else if let Some(highlighter) = &mut self.code_block {
                self.inner.write_all(highlighter.line(&line).as_bytes())?;
            } else {
                self.pending = line;
                self.decide(true)?;
            }
        }
        self.bold = false;
        self.italic = false;
        self.code = false;
        self.line_style = None;
        self.state = LineState::Start;
        self.pending.clear();
        writeln!(self.inner, "{Reset}")
    }

    fn feed(&mut self, text: &str) -> io::Result<()> {
        let mut rest = text;
        while !rest.is_empty() {
            let (piece, newline) = match rest.find('\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = if newline {
                &rest[piece.len() + 1..]
            } else {
                ""
            };
            match self.state {
                LineState::Start => {
                    self.pending.push_str(piece);
                    if !newline {
                        self.decide(false)?;
                    }
                }
                LineState::Prose => self.prose(piece)?,
            }
            if newline {
                self.end_line()?;
            }
        }
        Ok(())
    }

    /// Writes out whatever is still held (the last line without `\n`).
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            if let Some(highlighter) = &mut self.code_block {
                self.inner.write_all(highlighter.line(&line).as_bytes())?;
            } else {
                self.pending = line;
                self.decide(true)?;
            }
        }
        write!(self.inner, "{Reset}")?;
        self.inner.flush()
    }
}

impl<W: Write> Write for MarkdownWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The engine writes whole UTF-8 chunks; a lossy view is only a guard.
        self.feed(&String::from_utf8_lossy(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::highlight::{COMMENT, KEYWORD, NUMBER};

    fn render(chunks: &[&str]) -> String {
        let mut w = MarkdownWriter::new(Vec::new());
        for c in chunks {
            w.write_all(c.as_bytes()).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(w.inner).unwrap()
    }

    fn plain(text: &str) -> String {
        anstream::adapter::strip_str(text).to_string()
    }

    #[test]
    fn text_survives_rendering_whatever_the_chunking() {
        let text = "# Title\nSome **bold** and *soft* and `code`.\n- one\n- two\n> quoted\n```rust\nfn main() { let x = \"hi\"; // note\n}\n```\nend";
        let whole = plain(&render(&[text]));
        let by_char: Vec<String> = text.chars().map(String::from).collect();
        let by_char: Vec<&str> = by_char.iter().map(String::as_str).collect();
        assert_eq!(plain(&render(&by_char)), whole);
        assert_eq!(
            whole,
            text.replace("- one", "• one")
                .replace("- two", "• two")
                .replace("> quoted", "│ quoted")
        );
    }

    #[test]
    fn styles_are_applied() {
        let out = render(&["# Head\n", "a **b** c\n", "```\nlet x = 1;\n```\n"]);
        assert!(out.contains(&format!("{HEADING}#")));
        assert!(out.contains(&BOLD.to_string()));
        assert!(out.contains(&format!("{KEYWORD}let{KEYWORD:#}")));
        assert!(out.contains(&format!("{NUMBER}1{NUMBER:#}")));
    }

    #[test]
    fn code_blocks_take_comment_syntax_from_their_fence() {
        let sql = render(&["```sql\nselect 1; -- one\n```\n"]);
        assert!(
            sql.contains(&format!("{COMMENT}-- one{COMMENT:#}")),
            "{sql:?}"
        );
        let c = render(&["```c\ni--; // one\n```\n"]);
        assert!(c.contains(&format!("{COMMENT}// one{COMMENT:#}")), "{c:?}");
        assert!(!c.contains(&format!("{COMMENT}--")), "{c:?}");
        // The language is per block: the next block starts afresh.
        let both = render(&["```python\n# a\n```\n```\n# b\n```\n"]);
        assert!(both.contains(&format!("{COMMENT}# a{COMMENT:#}")));
        assert!(!both.contains(&format!("{COMMENT}# b")), "{both:?}");
    }

    #[test]
    fn hashtags_are_not_headings() {
        assert!(!render(&["#rustlang is fun\n"]).contains(&HEADING.to_string()));
        assert!(render(&["## Real heading\n"]).contains(&HEADING.to_string()));
    }

    #[test]
    fn prose_streams_before_the_line_ends() {
        let mut w = MarkdownWriter::new(Vec::new());
        w.write_all(b"Hello wor").unwrap();
        assert!(plain(&String::from_utf8_lossy(&w.inner)).contains("Hello wor"));
    }
}
