//! A session's title, shown by `memchat sessions`: the title set for it
//! (`/title TEXT`, or by the model at the first compaction; kept in its
//! settings record, so `rename` keeps it), else its first user message,
//! shortened to one line.
//! Derived titles cost nothing to keep: they are read from the conversation
//! (archive included), so they never go stale and need no extra request.

use crate::memory::format::{Record, Role, SessionSettings};

/// The most characters a derived title keeps.
pub const TITLE_CHARS: usize = 48;

/// `text` as a title: its words on one line, at most [`TITLE_CHARS`]
/// characters (cut at a word when one ends late enough, then `…`).
pub fn shorten(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= TITLE_CHARS {
        return crate::visible::text(&line);
    }
    let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(at) if at >= TITLE_CHARS / 2 => cut[..at].to_string(),
        _ => cut,
    };
    crate::visible::text(&format!("{}…", cut.trim_end()))
}

/// The most characters a set title keeps.
pub const MAX_TITLE_CHARS: usize = 100;

/// A title the user set, checked: one line of words, not empty, at most
/// [`MAX_TITLE_CHARS`] characters.
pub fn checked(text: &str) -> Result<String, String> {
    let title = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err("the title is empty".into());
    }
    if title.chars().any(char::is_control) {
        // A NUL cannot be stored on PostgreSQL, and an escape sequence
        // would run in every `sessions` listing's terminal.
        return Err("the title holds a control character (NUL, ESC, …); nothing was set".into());
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(format!(
            "the title has {chars} characters; a title has at most {MAX_TITLE_CHARS}"
        ));
    }
    Ok(title)
}

/// The title of a session with these settings and whole conversation: the
/// one set, else its first user message shortened, else empty.
pub fn title_of(settings: &SessionSettings, whole: &[Record]) -> String {
    if let Some(title) = &settings.title {
        return crate::visible::text(title);
    }
    whole
        .iter()
        .find_map(|r| match r {
            Record::Message(m) if m.role == Role::User => Some(shorten(&m.content)),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_short_line() {
        assert_eq!(
            shorten("  Fix the\\nbuild   please "),
            "Fix the\\nbuild please"
        );
        assert_eq!(shorten("a\nb"), "a b");
        let long = "Explain how the borrow checker decides lifetimes in nested closures";
        let title = shorten(long);
        assert!(title.chars().count() <= TITLE_CHARS, "{title}");
        assert!(title.ends_with('…'));
        assert!(title.starts_with("Explain how the borrow checker"));
    }
}
