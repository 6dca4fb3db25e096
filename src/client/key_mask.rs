//! The API key kept out of what a server sends back as content: a server or
//! proxy that echoes the request (its `Authorization` header) into a reply
//! or a model name would otherwise have memchat print the key and store it
//! in the log. Every occurrence is replaced by the mask, also when it is
//! split across streamed pieces: the end of the text that could be the
//! start of the key is held back until the next piece tells.

use super::{MASK, MIN_MASKED};

/// Masks one key in text that arrives in pieces.
#[derive(Debug)]
pub struct KeyMask {
    key: Option<String>,
    held: String,
}

impl KeyMask {
    /// A mask for `key` (none, or one too short to mask, masks nothing).
    pub fn new(key: Option<&str>) -> KeyMask {
        KeyMask {
            key: key.filter(|k| k.len() >= MIN_MASKED).map(str::to_string),
            held: String::new(),
        }
    }

    /// Takes the next piece; returns the text that is safe to show now.
    pub fn push(&mut self, piece: &str) -> String {
        let Some(key) = &self.key else {
            return piece.to_string();
        };
        self.held.push_str(piece);
        let masked = self.held.replace(key.as_str(), MASK);
        let keep = held_back(&masked, key);
        self.held = masked[masked.len() - keep..].to_string();
        masked[..masked.len() - keep].to_string()
    }

    /// What is still held back: the text ended, so it was not the key.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// `text` masked whole.
    pub fn whole(key: Option<&str>, text: &str) -> String {
        let mut mask = KeyMask::new(key);
        let mut out = mask.push(text);
        out.push_str(&mask.finish());
        out
    }
}

/// The length of the longest end of `text` that is a proper start of `key`.
fn held_back(text: &str, key: &str) -> usize {
    let longest = text.len().min(key.len() - 1);
    (1..=longest)
        .rev()
        .find(|&n| {
            let at = text.len() - n;
            text.is_char_boundary(at) && key.is_char_boundary(n) && text[at..] == key[..n]
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-0123456789";

    #[test]
    fn a_key_split_anywhere_across_pieces_is_masked() {
        let text = format!("before {KEY} middle {KEY}after");
        for cut in 0..=text.len() {
            let mut mask = KeyMask::new(Some(KEY));
            let mut out = mask.push(&text[..cut]);
            out.push_str(&mask.push(&text[cut..]));
            out.push_str(&mask.finish());
            assert_eq!(
                out,
                format!("before {MASK} middle {MASK}after"),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn text_that_only_starts_like_the_key_is_kept_whole() {
        let mut mask = KeyMask::new(Some(KEY));
        assert_eq!(mask.push("ends with sk-te"), "ends with ");
        assert_eq!(mask.push("n"), "sk-ten");
        assert_eq!(mask.push(" and sk"), " and ");
        assert_eq!(mask.finish(), "sk");
        assert_eq!(KeyMask::whole(None, "sk-test-0123456789"), KEY);
        assert_eq!(
            KeyMask::whole(Some(KEY), "é sk-test-0123456789"),
            "é <redacted>"
        );
    }
}
