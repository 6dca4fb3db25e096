//! The fenced code blocks of a reply, for `-x`/`--extract`, `/code` and
//! `/code N copy`. A block opens with three or more backticks or tildes
//! (indented at most three spaces, as CommonMark says) and closes with a
//! line of at least as many of the same character; a block the reply never
//! closed runs to its end (a reply cut short still yields its code).

/// One fenced block: the fence's info word (the language, may be empty) and
/// the lines between the fences, each ending with a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    pub language: String,
    pub code: String,
}

/// An opening or closing fence: its character and length, and the info
/// string after it.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let length = rest.len() - rest.trim_start_matches(marker).len();
    if length < 3 {
        return None;
    }
    let info = rest[length..].trim();
    // A backtick fence's info string may not hold a backtick (CommonMark).
    if marker == '`' && info.contains('`') {
        return None;
    }
    Some((marker, length, info))
}

/// Every fenced code block of `text`, in order.
pub fn code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, CodeBlock)> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        match &mut open {
            None => {
                if let Some((marker, length, info)) = fence(bare) {
                    let language = info.split_whitespace().next().unwrap_or("").to_string();
                    open = Some((
                        marker,
                        length,
                        CodeBlock {
                            language,
                            code: String::new(),
                        },
                    ));
                }
            }
            Some((marker, length, block)) => match fence(bare) {
                Some((m, l, info)) if m == *marker && l >= *length && info.is_empty() => {
                    if let Some((_, _, block)) = open.take() {
                        blocks.push(block);
                    }
                }
                _ => {
                    block.code.push_str(bare);
                    block.code.push('\n');
                }
            },
        }
    }
    if let Some((_, _, block)) = open {
        blocks.push(block);
    }
    blocks
}

/// What `-x` prints and `/code` shows: every block's code, blocks apart by a
/// blank line; the whole text when it has no block (as llm's `-x` does, so a
/// reply that is all code, unfenced, still comes through).
pub fn extract(text: &str) -> String {
    let blocks = code_blocks(text);
    if blocks.is_empty() {
        let mut whole = text.to_string();
        if !whole.is_empty() && !whole.ends_with('\n') {
            whole.push('\n');
        }
        return whole;
    }
    blocks
        .iter()
        .map(|b| b.code.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_with_their_language() {
        let text = "Here:\n```rust\nfn main() {}\n```\nand\n~~~\nls -l\n~~~\n";
        let blocks = code_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].language, "rust");
        assert_eq!(blocks[0].code, "fn main() {}\n");
        assert_eq!(blocks[1].language, "");
        assert_eq!(blocks[1].code, "ls -l\n");
        assert_eq!(extract(text), "fn main() {}\n\nls -l\n");
    }

    #[test]
    fn a_longer_fence_holds_a_shorter_one() {
        let text = "````md\n```sh\necho hi\n```\n````\n";
        let blocks = code_blocks(text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].code, "```sh\necho hi\n```\n");
    }

    #[test]
    fn an_unclosed_block_runs_to_the_end() {
        let blocks = code_blocks("x\n```py\nprint(1)\nprint(2)");
        assert_eq!(blocks[0].code, "print(1)\nprint(2)\n");
    }

    #[test]
    fn no_block_gives_the_whole_text() {
        assert_eq!(code_blocks("just ``inline`` code").len(), 0);
        assert_eq!(extract("plain answer"), "plain answer\n");
        assert_eq!(extract(""), "");
    }

    #[test]
    fn indented_four_spaces_is_not_a_fence() {
        assert!(code_blocks("    ```\n    x\n    ```\n").is_empty());
    }
}
