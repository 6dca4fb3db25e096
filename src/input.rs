//! How lines become one message, in the REPL and in script mode alike: a line
//! ending in `\` continues on the next line, and so does everything inside an
//! open ``` code fence.

/// Whether `text` (the lines so far, joined by `\n`) is an unfinished message.
pub fn is_incomplete(text: &str) -> bool {
    ends_with_continuation(text) || has_open_fence(text)
}

fn ends_with_continuation(text: &str) -> bool {
    text.ends_with('\\') && !text.ends_with("\\\\")
}

fn has_open_fence(text: &str) -> bool {
    text.lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count()
        % 2
        == 1
}

/// Removes the `\` of every continued line in an edited message (the REPL
/// receives the whole message at once, backslashes included).
pub fn strip_continuations(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            if ends_with_continuation(line) {
                &line[..line.len() - 1]
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects lines into messages.
#[derive(Debug, Default)]
pub struct Assembler {
    buffer: Option<String>,
}

impl Assembler {
    /// Adds a line; returns a finished message when the line completes one.
    /// Blank lines outside a message are skipped.
    pub fn push(&mut self, line: &str) -> Option<String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut text = match self.buffer.take() {
            Some(mut text) => {
                if ends_with_continuation(&text) {
                    text.pop();
                }
                text.push('\n');
                text.push_str(line);
                text
            }
            None if line.trim().is_empty() => return None,
            None => line.to_string(),
        };
        if is_incomplete(&text) {
            self.buffer = Some(std::mem::take(&mut text));
            None
        } else {
            Some(text)
        }
    }

    /// Whether a message is being continued over several lines.
    pub fn is_building(&self) -> bool {
        self.buffer.is_some()
    }

    /// How many bytes the message being continued holds so far.
    pub fn held_bytes(&self) -> usize {
        self.buffer.as_ref().map_or(0, String::len)
    }

    /// Whatever is left at the end of input (an unclosed fence is still sent).
    pub fn finish(&mut self) -> Option<String> {
        self.buffer.take().map(|mut text| {
            if ends_with_continuation(&text) {
                text.pop();
            }
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(lines: &[&str]) -> Vec<String> {
        let mut a = Assembler::default();
        let mut out: Vec<String> = lines.iter().filter_map(|l| a.push(l)).collect();
        out.extend(a.finish());
        out
    }

    #[test]
    fn continuation_backslashes_are_removed() {
        assert_eq!(strip_continuations("one \\\ntwo"), "one \ntwo");
        assert_eq!(strip_continuations("keep \\\\"), "keep \\\\");
    }

    #[test]
    fn backslash_and_fences_continue_a_message() {
        assert_eq!(assemble(&["one", "", "  ", "two"]), ["one", "two"]);
        assert_eq!(assemble(&["first \\", "second"]), ["first \nsecond"]);
        assert_eq!(
            assemble(&["look:", "```rust", "fn main() {}", "", "```", "after"]),
            ["look:", "```rust\nfn main() {}\n\n```", "after"]
        );
        assert_eq!(
            assemble(&["see ```", "not a fence"]),
            ["see ```", "not a fence"]
        );
        assert_eq!(assemble(&["unfinished \\"]), ["unfinished "]);
    }
}
