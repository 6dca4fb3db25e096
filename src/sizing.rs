//! How many tokens the history takes, as pure functions over its records:
//! cached counts where a record has one for this encoding, the byte bound
//! (a byte-level BPE never yields more tokens than bytes) where it has none.
//! And the decisions built on those numbers: whether the cheap bound settles
//! a question, or the tokenizer must count.
//!
//! The engine (`chat.rs`) fills counts into the records when it must count;
//! everything here only reads.

use crate::budget::{Budget, HistorySizes};
use crate::memory::format::{MessageRecord, SummaryRecord};
use crate::message::Role;
use crate::summary_text;
use crate::tokens::{self, TokenCounter, upper_bound};

/// Bytes per token in typical text, for the estimate that may defer a
/// compaction a turn (never for the cap `B`, which takes the byte bound).
const TYPICAL_BYTES_PER_TOKEN: u64 = 3;

/// The records a request is built from: the active history of a session.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub system: Option<&'a MessageRecord>,
    pub summary: Option<&'a SummaryRecord>,
    pub messages: &'a [MessageRecord],
}

/// Sizes of the active history, each an exact count or an upper bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// Reply priming plus the system message's cost with the prompt alone.
    pub fixed: u32,
    /// What the summary adds to the system message (0 without one).
    pub summary: u32,
    /// What a summary of the full cap `S` would add.
    pub full_summary: u32,
    /// The summary's own tokens, without heading or framing.
    pub summary_raw: u32,
    /// Each message's cost, overhead included, oldest first.
    pub messages: Vec<u32>,
    pub roles: Vec<Role>,
    /// Bytes of the texts without a cached count (bounded, not counted).
    pub uncached_bytes: u64,
}

impl Sizes {
    /// The numbers the budget's planners take.
    pub fn view(&self) -> HistorySizes<'_> {
        HistorySizes {
            fixed: self.fixed,
            summary: self.summary,
            full_summary: self.full_summary,
            messages: &self.messages,
            roles: &self.roles,
        }
    }

    /// The whole request as sized.
    pub fn total(&self) -> u64 {
        self.view().total()
    }

    /// Whether every text had a cached count (the sizes are exact).
    pub fn is_exact(&self) -> bool {
        self.uncached_bytes == 0
    }
}

/// Sizes from cached counts, bounding uncached texts by their bytes. Never
/// loads the tokenizer.
pub fn measure(history: History<'_>, counter: &TokenCounter, budget: &Budget) -> Sizes {
    let mut uncached = 0u64;
    let mut raw = |cache: Option<&crate::memory::format::TokenCache>, text: &str| {
        counter.cached(cache).unwrap_or_else(|| {
            uncached += text.len() as u64;
            upper_bound(text)
        })
    };
    let prompt = history.system.map(|s| raw(s.tokens.as_ref(), &s.content));
    let summary_raw = history
        .summary
        .map_or(0, |s| raw(s.tokens.as_ref(), &s.content));
    let messages = history
        .messages
        .iter()
        .map(|m| counter.message_cost(raw(m.tokens.as_ref(), &m.content)))
        .collect();
    let has_prompt = prompt.is_some();
    Sizes {
        fixed: tokens::REPLY_PRIMING + prompt.map_or(0, |p| counter.message_cost(p)),
        summary: if history.summary.is_some() {
            summary_cost(counter, summary_raw, has_prompt)
        } else {
            0
        },
        full_summary: summary_cost(counter, budget.summary_cap, has_prompt),
        summary_raw,
        messages,
        roles: history.messages.iter().map(|m| m.role).collect(),
        uncached_bytes: uncached,
    }
}

/// What a summary of `raw` tokens adds to the system message: its text, the
/// heading (bounded by its bytes), and the framing if the summary is the
/// system message's only content.
pub fn summary_cost(counter: &TokenCounter, raw: u32, has_prompt: bool) -> u32 {
    let heading = upper_bound(summary_text::SUMMARY_HEADING) + summary_text::SUMMARY_FRAMING;
    let framing = if has_prompt {
        0
    } else {
        tokens::PER_MESSAGE + tokens::ROLE
    };
    counter.inflated(raw + heading) + framing
}

/// What the byte bound says about the compaction trigger `H`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerCheck {
    /// Surely under `H`, or under it by a typical estimate while the bound
    /// stays under `B`: no compaction this turn, no tokenizer.
    Under,
    /// Only exact counts can tell.
    Count,
}

/// Whether the history may be past the trigger `H`. The byte bound settles
/// "surely under". When it does not, a typical estimate (3 bytes a token)
/// may still say "under" while the byte bound stays under `B`: compaction is
/// then deferred a turn or two, which costs nothing, since the cap `B` still
/// holds for certain and the trigger is a soft line.
pub fn trigger_check(bound: &Sizes, budget: &Budget) -> TriggerCheck {
    let upper = bound.total();
    if upper <= u64::from(budget.trigger) {
        return TriggerCheck::Under;
    }
    let typical =
        upper - bound.uncached_bytes + bound.uncached_bytes.div_ceil(TYPICAL_BYTES_PER_TOKEN);
    if typical <= u64::from(budget.trigger) && upper <= u64::from(budget.cap) {
        return TriggerCheck::Under;
    }
    TriggerCheck::Count
}

/// How a message alone measures against `B` with the system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitsAlone {
    /// The byte bound already fits.
    Surely,
    /// Only an exact count can tell.
    Count,
}

/// The cheap half of "does this message fit in any request": the system
/// message and the message's byte bound against `B`.
pub fn fits_alone_bound(
    fixed: u32,
    message_bound: u32,
    counter: &TokenCounter,
    budget: &Budget,
) -> FitsAlone {
    let bound = u64::from(fixed) + u64::from(counter.message_cost(message_bound));
    if bound <= u64::from(budget.cap) {
        FitsAlone::Surely
    } else {
        FitsAlone::Count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::format::TokenCache;

    fn counter() -> TokenCounter {
        TokenCounter::for_model("gpt-4o-mini")
    }

    fn budget(window: u32) -> Budget {
        Budget::new(window, None, None).unwrap()
    }

    fn message(role: Role, content: &str, tokens: Option<u32>, c: &TokenCounter) -> MessageRecord {
        MessageRecord {
            seq: 1,
            role,
            content: content.to_string(),
            at: "t".into(),
            model: None,
            interrupted: false,
            truncated: false,
            tokens: tokens.map(|count| TokenCache {
                encoding: c.encoding().name().to_string(),
                count,
            }),
            usage: None,
            late_tokens: None,
        }
    }

    #[test]
    fn cached_counts_are_used_and_uncached_texts_bounded_by_bytes() {
        let c = counter();
        let messages = [
            message(Role::User, "hello there", Some(2), &c),
            message(Role::Assistant, "twelve bytes", None, &c),
        ];
        let history = History {
            system: None,
            summary: None,
            messages: &messages,
        };
        let sizes = measure(history, &c, &budget(8192));
        assert_eq!(sizes.messages, [c.message_cost(2), c.message_cost(12)]);
        assert_eq!(sizes.uncached_bytes, 12);
        assert_eq!(sizes.fixed, tokens::REPLY_PRIMING);
        assert_eq!(sizes.summary, 0);
        assert!(!sizes.is_exact());
        assert_eq!(
            sizes.total(),
            u64::from(tokens::REPLY_PRIMING + c.message_cost(2) + c.message_cost(12))
        );
    }

    #[test]
    fn a_count_from_another_encoding_is_not_trusted() {
        let c = counter();
        let mut record = message(Role::User, "abc", Some(1), &c);
        record.tokens = Some(TokenCache {
            encoding: "some_other_encoding".into(),
            count: 1,
        });
        let messages = [record];
        let history = History {
            system: None,
            summary: None,
            messages: &messages,
        };
        let sizes = measure(history, &c, &budget(8192));
        assert_eq!(
            sizes.messages,
            [c.message_cost(3)],
            "bounded by its 3 bytes"
        );
    }

    #[test]
    fn the_summary_costs_its_heading_and_framing_only_without_a_prompt() {
        let c = counter();
        let alone = summary_cost(&c, 100, false);
        let with_prompt = summary_cost(&c, 100, true);
        assert_eq!(alone - with_prompt, tokens::PER_MESSAGE + tokens::ROLE);
        assert!(with_prompt > 100, "the heading costs something");
    }

    #[test]
    fn the_bound_settles_the_trigger_far_below_it_and_counts_near_it() {
        let b = budget(8192);
        let small = Sizes {
            fixed: 3,
            summary: 0,
            full_summary: 0,
            summary_raw: 0,
            messages: vec![10; 4],
            roles: vec![Role::User; 4],
            uncached_bytes: 40,
        };
        assert_eq!(trigger_check(&small, &b), TriggerCheck::Under);
        // Over the cap by the bound: only counting can tell.
        let mut big = small.clone();
        big.messages = vec![b.cap; 2];
        big.uncached_bytes = u64::from(b.cap) * 2;
        assert_eq!(trigger_check(&big, &b), TriggerCheck::Count);
        // Over H by the bound, under it by a typical estimate, under B: wait.
        let mut near = small.clone();
        near.messages = vec![b.trigger + 10];
        near.uncached_bytes = u64::from(b.trigger);
        assert_eq!(trigger_check(&near, &b), TriggerCheck::Under);
        // The same, all counted exactly: the typical estimate does not apply.
        near.uncached_bytes = 0;
        assert_eq!(trigger_check(&near, &b), TriggerCheck::Count);
    }

    #[test]
    fn a_message_alone_is_settled_by_its_bound_when_it_can_be() {
        let c = counter();
        let b = budget(8192);
        assert_eq!(fits_alone_bound(10, 100, &c, &b), FitsAlone::Surely);
        assert_eq!(fits_alone_bound(10, b.cap, &c, &b), FitsAlone::Count);
    }
}
