//! Counting tokens the way the model will: the model's tiktoken encoding and
//! the OpenAI cookbook's chat formula (3 tokens of framing per message, plus
//! the role, plus 3 to prime the reply).
//!
//! The encoding comes from the model registry ([`crate::models`]). Models it
//! does not know (anything served by Ollama, vLLM, ...) are counted
//! with o200k_base plus 10%: their tokenizers differ, and over-counting only
//! costs a little context while under-counting costs a failed request.
//!
//! The counts are exact, from [`crate::bpe`] (tiktoken's algorithm over one
//! compact table). Its first use indexes the tables (≈6 ms, 6 MB for
//! o200k), so callers first try [`upper_bound`]: a byte-level BPE never
//! yields more tokens than the text has bytes, and that bound often settles
//! "does it fit?" without loading anything. [`TokenCounter::warm`] loads the
//! tables on a background thread.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::bpe::Bpe;
use crate::memory::format::TokenCache;
use crate::models;

/// Set once an encoding's tables are loaded in this process, so callers can
/// count for free when the cost is already paid.
static O200K_READY: AtomicBool = AtomicBool::new(false);
static CL100K_READY: AtomicBool = AtomicBool::new(false);

/// Framing tokens every message costs (`<|start|>role ... <|end|>`).
pub const PER_MESSAGE: u32 = 3;
/// Tokens that prime the assistant's reply at the end of every request.
pub const REPLY_PRIMING: u32 = 3;
/// Every role name ("system", "user", "assistant") is one token in both encodings.
pub const ROLE: u32 = 1;
/// Unknown models are counted with this many percent more tokens: their
/// tokenizers differ, and over-counting costs less than a refused request.
pub const UNKNOWN_MODEL_MARGIN_PERCENT: u32 = 10;

pub use crate::models::Encoding;

/// The loaded BPE tables of an encoding (built on first use).
fn bpe(encoding: Encoding) -> &'static Bpe {
    static O200K: OnceLock<Bpe> = OnceLock::new();
    static CL100K: OnceLock<Bpe> = OnceLock::new();
    let bpe = match encoding {
        Encoding::O200kBase => O200K.get_or_init(Bpe::o200k_base),
        Encoding::Cl100kBase => CL100K.get_or_init(Bpe::cl100k_base),
    };
    ready_flag(encoding).store(true, Ordering::Release);
    bpe
}

fn ready_flag(encoding: Encoding) -> &'static AtomicBool {
    match encoding {
        Encoding::O200kBase => &O200K_READY,
        Encoding::Cl100kBase => &CL100K_READY,
    }
}

/// Whether the encoding's tables are loaded (counting is then cheap).
fn is_ready(encoding: Encoding) -> bool {
    ready_flag(encoding).load(Ordering::Acquire)
}

/// Counts tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCounter {
    encoding: Encoding,
    /// Add [`UNKNOWN_MODEL_MARGIN_PERCENT`] for models whose real tokenizer
    /// we do not have.
    inflate: bool,
}

impl TokenCounter {
    /// The counter for `model`: its encoding from the model registry, or
    /// o200k_base plus the margin for a model the registry does not know.
    pub fn for_model(model: &str) -> Self {
        match models::lookup(model) {
            Some(info) => TokenCounter {
                encoding: info.encoding,
                inflate: false,
            },
            None => TokenCounter {
                encoding: Encoding::O200kBase,
                inflate: true,
            },
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Loads the BPE tables on a background thread so the first real count
    /// does not stall the user.
    pub fn warm(&self) {
        let encoding = self.encoding;
        std::thread::spawn(move || {
            bpe(encoding);
        });
    }

    /// Exact tokens of `text` in this encoding, without inflation or framing.
    pub fn count_raw(&self, text: &str) -> u32 {
        let n = bpe(self.encoding).count(text);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The cache entry for `text`, to store with a record.
    pub fn cache(&self, text: &str) -> TokenCache {
        TokenCache {
            encoding: self.encoding.name().to_string(),
            count: self.count_raw(text),
        }
    }

    /// The cache entry for `text` if the tokenizer is already loaded; never
    /// pays the load just to fill a cache.
    pub fn cache_if_ready(&self, text: &str) -> Option<TokenCache> {
        is_ready(self.encoding).then(|| self.cache(text))
    }

    /// The raw count from a cache entry, if it was made with this encoding.
    pub fn cached(&self, cache: Option<&TokenCache>) -> Option<u32> {
        cache
            .filter(|c| c.encoding == self.encoding.name())
            .map(|c| c.count)
    }

    /// What a raw content count costs as a message of a request.
    pub fn message_cost(&self, raw_content: u32) -> u32 {
        PER_MESSAGE + ROLE + self.inflated(raw_content)
    }

    /// Applies the unknown-model margin.
    pub fn inflated(&self, raw: u32) -> u32 {
        if self.inflate {
            let margin = (u64::from(raw) * u64::from(UNKNOWN_MODEL_MARGIN_PERCENT)).div_ceil(100);
            raw.saturating_add(u32::try_from(margin).unwrap_or(u32::MAX))
        } else {
            raw
        }
    }

    /// Exact cost of a message with this content.
    pub fn message_tokens(&self, content: &str) -> u32 {
        self.message_cost(self.count_raw(content))
    }

    /// The longest prefix of `text` (on a char boundary) of at most `max` raw
    /// tokens. Used to shorten a summary for the final fit.
    pub fn truncate_to(&self, text: &str, max: u32) -> String {
        if upper_bound(text) <= max || self.count_raw(text) <= max {
            return text.to_string();
        }
        let mut end = bpe(self.encoding).prefix_len(text, max as usize);
        // A cut inside a multi-byte character: step back to its start.
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut out = text[..end].to_string();
        // Re-encoding a cut text can merge differently: shrink until it fits.
        while !out.is_empty() && self.count_raw(&out) > max {
            out.pop();
        }
        out
    }
}

/// The most raw tokens that stay within `cap` even with the unknown-model
/// margin added: what a text is cut to when it must fit whatever the counter.
pub fn raw_within(cap: u32) -> u32 {
    let raw = u64::from(cap) * 100 / u64::from(100 + UNKNOWN_MODEL_MARGIN_PERCENT);
    u32::try_from(raw).unwrap_or(u32::MAX)
}

/// An upper bound on the raw tokens of `text` in any byte-level BPE: one
/// token never covers less than one byte.
pub fn upper_bound(text: &str) -> u32 {
    u32::try_from(text.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_come_from_the_model_registry() {
        assert_eq!(
            TokenCounter::for_model("gpt-4o-mini").encoding(),
            Encoding::O200kBase
        );
        assert_eq!(
            TokenCounter::for_model("openai/gpt-4.1-nano").encoding(),
            Encoding::O200kBase
        );
        assert_eq!(
            TokenCounter::for_model("GPT-4-turbo").encoding(),
            Encoding::Cl100kBase
        );
        assert_eq!(
            TokenCounter::for_model("gpt-3.5-turbo").encoding(),
            Encoding::Cl100kBase
        );
        // Known models are counted exactly, unknown ones with the margin.
        assert_eq!(TokenCounter::for_model("o3-mini").inflated(100), 100);
        assert_eq!(TokenCounter::for_model("o1x").inflated(100), 110);
    }

    #[test]
    fn counts_are_pinned_for_fixed_texts() {
        let o200k = TokenCounter::for_model("gpt-4o");
        let cl100k = TokenCounter::for_model("gpt-4");
        assert_eq!(o200k.count_raw("Hello, world!"), 4);
        assert_eq!(cl100k.count_raw("Hello, world!"), 4);
        // The OpenAI cookbook's example: "tiktoken is great!" is
        // [83, 1609, 5963, 374, 2294, 0] in cl100k_base.
        let ids =
            tiktoken_rs::cl100k_base_singleton().encode_with_special_tokens("tiktoken is great!");
        assert_eq!(ids, [83, 1609, 5963, 374, 2294, 0]);
        assert_eq!(cl100k.count_raw("tiktoken is great!"), 6);
        assert_eq!(o200k.count_raw("tiktoken is great!"), 6);
        // Cookbook formula: 3 framing + 1 role + content.
        assert_eq!(o200k.message_tokens("Hello, world!"), 8);
    }

    #[test]
    fn unknown_models_get_ten_percent_more() {
        let llama = TokenCounter::for_model("llama3.2");
        assert_eq!(llama.encoding(), Encoding::O200kBase);
        assert_eq!(llama.inflated(100), 110);
        assert_eq!(llama.inflated(1), 2);
        assert_eq!(llama.message_tokens("Hello, world!"), 3 + 1 + 5);
    }

    #[test]
    fn raw_within_undoes_the_margin() {
        let unknown = TokenCounter::for_model("llama3.2");
        for cap in 0..5000 {
            let raw = raw_within(cap);
            assert!(unknown.inflated(raw) <= cap, "cap {cap}: raw {raw}");
            // And it wastes at most one token of room.
            assert!(unknown.inflated(raw + 2) > cap, "cap {cap}: raw {raw}");
        }
        assert_eq!(raw_within(u32::MAX), 3_904_515_722); // no overflow
        assert_eq!(raw_within(110), 100);
    }

    #[test]
    fn the_byte_bound_is_never_below_the_count() {
        let counter = TokenCounter::for_model("gpt-4o");
        for text in [
            "",
            "a",
            "héllo wörld",
            "日本語のテキスト",
            "🦀🦀🦀",
            "\u{0}\u{7f}",
        ] {
            assert!(counter.count_raw(text) <= upper_bound(text), "{text:?}");
        }
    }

    #[test]
    fn truncation_inside_multibyte_text_keeps_a_prefix() {
        let counter = TokenCounter::for_model("gpt-4o");
        let text = "日本語のテキストと🦀🦀🦀の絵文字。".repeat(40);
        for max in [1, 5, 17, 60] {
            let cut = counter.truncate_to(&text, max);
            assert!(counter.count_raw(&cut) <= max);
            assert!(text.starts_with(&cut));
            assert!(max < 5 || !cut.is_empty(), "max {max} gave nothing");
        }
    }

    #[test]
    fn truncation_respects_the_cap() {
        let counter = TokenCounter::for_model("gpt-4o");
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        let cut = counter.truncate_to(&text, 20);
        assert!(counter.count_raw(&cut) <= 20);
        assert!(text.starts_with(&cut));
        assert!(cut.len() > 40);
    }
}
