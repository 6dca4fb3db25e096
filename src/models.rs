//! The model registry: everything memchat knows about a model by its name,
//! in one table. Its context window (for the budget), its tokenizer encoding
//! (for counting) and whether it is a reasoning model (which rejects
//! `temperature` and `max_tokens` and wants `max_completion_tokens`).
//!
//! One matching rule serves every question, so the answers cannot disagree:
//! the name is taken after any `provider/` prefix, lowercased, and belongs to
//! the *family* of the longest table entry it starts with, provided the entry
//! ends the name or is followed by a non-alphanumeric character. So
//! `openai/GPT-4o-mini-2024-07-18` is in the `gpt-4o` family and `gpt-5.1`
//! in `gpt-5`, but `o1x` and `gpt-4o` are not in `o1` and `gpt-4`.
//!
//! A model that matches no family is unknown: the budget assumes a small
//! window with a notice, and counting uses o200k_base plus a margin.

/// The BPE encodings memchat knows (tiktoken's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

/// What the registry knows about one model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// The family's name prefix, as matched.
    pub family: &'static str,
    /// Context window in tokens, if known for the family.
    pub window: Option<u32>,
    /// The tokenizer the family uses.
    pub encoding: Encoding,
    /// Reasoning models take `max_completion_tokens` and no `temperature`.
    pub reasoning: bool,
}

const fn family(
    family: &'static str,
    window: Option<u32>,
    encoding: Encoding,
    reasoning: bool,
) -> ModelInfo {
    ModelInfo {
        family,
        window,
        encoding,
        reasoning,
    }
}

use Encoding::{Cl100kBase, O200kBase};

/// The known families. Order does not matter: the longest match wins.
/// Windows are OpenAI's published context lengths.
const FAMILIES: &[ModelInfo] = &[
    family("gpt-4o", Some(128_000), O200kBase, false),
    family("chatgpt-4o", Some(128_000), O200kBase, false),
    family("gpt-4.1", Some(1_047_576), O200kBase, false),
    family("gpt-4.5", Some(128_000), O200kBase, false),
    family("gpt-5", Some(400_000), O200kBase, true),
    family("gpt-4-turbo", Some(128_000), Cl100kBase, false),
    family("gpt-4-32k", Some(32_768), Cl100kBase, false),
    family("gpt-4", Some(8_192), Cl100kBase, false),
    family("gpt-3.5-turbo", Some(16_385), Cl100kBase, false),
    // gpt-3.5 names outside the turbo family vary in window: count them
    // right, but let the budget ask for --context-limit.
    family("gpt-3.5", None, Cl100kBase, false),
    family("o1-mini", Some(128_000), O200kBase, true),
    family("o1", Some(200_000), O200kBase, true),
    family("o3", Some(200_000), O200kBase, true),
    family("o4", Some(200_000), O200kBase, true),
];

/// The registry entry for `model`, or `None` for a model memchat does not know.
pub fn lookup(model: &str) -> Option<ModelInfo> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .trim()
        .to_ascii_lowercase();
    FAMILIES
        .iter()
        .filter(|info| in_family(&name, info.family))
        .max_by_key(|info| info.family.len())
        .copied()
}

/// `name` is `prefix` or continues it after a separator (`-`, `.`, `:`, ...).
fn in_family(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// The context window of a known model.
pub fn context_window(model: &str) -> Option<u32> {
    lookup(model).and_then(|info| info.window)
}

/// Whether the model takes `max_completion_tokens` and no `temperature`.
pub fn is_reasoning(model: &str) -> bool {
    lookup(model).is_some_and(|info| info.reasoning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(model: &str) -> (Option<u32>, Option<Encoding>, bool) {
        (
            context_window(model),
            lookup(model).map(|i| i.encoding),
            is_reasoning(model),
        )
    }

    #[test]
    fn known_models_get_window_encoding_and_rules() {
        assert_eq!(
            answers("gpt-4o-mini"),
            (Some(128_000), Some(O200kBase), false)
        );
        assert_eq!(
            answers("gpt-4o-2024-08-06"),
            (Some(128_000), Some(O200kBase), false)
        );
        assert_eq!(
            answers("openai/gpt-4.1-mini"),
            (Some(1_047_576), Some(O200kBase), false)
        );
        assert_eq!(answers("gpt-4"), (Some(8_192), Some(Cl100kBase), false));
        assert_eq!(
            answers("gpt-4-0613"),
            (Some(8_192), Some(Cl100kBase), false)
        );
        assert_eq!(
            answers("gpt-4-turbo-preview"),
            (Some(128_000), Some(Cl100kBase), false)
        );
        assert_eq!(
            answers("gpt-3.5-turbo-0125"),
            (Some(16_385), Some(Cl100kBase), false)
        );
        assert_eq!(answers("gpt-5"), (Some(400_000), Some(O200kBase), true));
        assert_eq!(
            answers("gpt-5-mini"),
            (Some(400_000), Some(O200kBase), true)
        );
        assert_eq!(answers("gpt-5.1"), (Some(400_000), Some(O200kBase), true));
        assert_eq!(answers("o1-mini"), (Some(128_000), Some(O200kBase), true));
        assert_eq!(
            answers("o1-preview"),
            (Some(200_000), Some(O200kBase), true)
        );
        assert_eq!(answers("o3-mini"), (Some(200_000), Some(O200kBase), true));
        assert_eq!(answers("o4-mini"), (Some(200_000), Some(O200kBase), true));
    }

    #[test]
    fn the_cases_the_old_tables_disagreed_on_now_agree() {
        // `o1x` had a 200k window but an unknown tokenizer: it is not an o1.
        assert_eq!(answers("o1x"), (None, None, false));
        assert_eq!(answers("o3x-large"), (None, None, false));
        // Reasoning rules did not lowercase: `O1` and `GPT-5` were sent a
        // temperature the server rejects.
        assert_eq!(answers("O1"), (Some(200_000), Some(O200kBase), true));
        assert_eq!(
            answers("GPT-5-Mini"),
            (Some(400_000), Some(O200kBase), true)
        );
        assert_eq!(
            answers("OpenAI/GPT-4o"),
            (Some(128_000), Some(O200kBase), false)
        );
        // `o4` had a tokenizer and reasoning rules but no window.
        assert_eq!(answers("o4"), (Some(200_000), Some(O200kBase), true));
    }

    #[test]
    fn families_need_a_separator_after_the_prefix() {
        // gpt-4o is not a gpt-4; gpt-4.1 is not a gpt-4.
        assert_eq!(lookup("gpt-4o").map(|i| i.family), Some("gpt-4o"));
        assert_eq!(lookup("gpt-4.1").map(|i| i.family), Some("gpt-4.1"));
        assert_eq!(lookup("gpt-40").map(|i| i.family), None);
        assert_eq!(
            lookup("gpt-3.5-turbo-instruct").map(|i| i.family),
            Some("gpt-3.5-turbo")
        );
        assert_eq!(answers("gpt-3.5"), (None, Some(Cl100kBase), false));
    }

    #[test]
    fn other_models_are_unknown() {
        for model in ["llama3.2", "mistral:7b", "qwen2.5-coder", "", "claude-3"] {
            assert_eq!(lookup(model), None, "{model}");
        }
    }
}
