//! The engine's view of its history's size: the pure rules of
//! [`crate::sizing`] applied to the session, counting with the tokenizer
//! (and keeping the counts in the records) only when a rule needs it.

use crate::memory::format::TokenCache;
use crate::sizing::{self, History, Sizes, TriggerCheck};

use super::{Engine, TokenStats};

impl Engine {
    // Sizes: the pure rules are in `sizing.rs`; these apply them to the
    // session, counting (and caching in memory) only when they must.

    /// The active history, as the sizing rules read it.
    pub(super) fn history(&self) -> History<'_> {
        History {
            system: self.session.system(),
            summary: self.session.summary(),
            messages: self.session.messages(),
        }
    }

    /// Sizes from cached counts and byte bounds; never loads the tokenizer.
    pub(super) fn measure(&self) -> Sizes {
        sizing::measure(self.history(), &self.counter, &self.budget)
    }

    /// Sizes of the history. With `exact`, uncached counts are computed and
    /// kept in the records (the session writes them with its next append).
    pub(super) fn sizes(&mut self, exact: bool) -> Sizes {
        if exact {
            self.fill_counts();
        }
        self.measure()
    }

    /// Counts every text that has no cached count yet.
    pub(super) fn fill_counts(&mut self) {
        let counter = self.counter;
        let fill = |text: &str, cache: &mut Option<TokenCache>| {
            if counter.cached(cache.as_ref()).is_none() {
                *cache = Some(counter.cache(text));
            }
        };
        for message in self.session.messages_mut() {
            fill(&message.content, &mut message.tokens);
        }
        if let Some(summary) = self.session.summary_mut() {
            fill(&summary.content, &mut summary.tokens);
        }
        if let Some(system) = self.session.system_mut() {
            fill(&system.content, &mut system.tokens);
        }
    }

    /// Sizes good enough to compare with `threshold`: estimates when they
    /// already fit, exact counts otherwise.
    pub(super) fn sizes_against(&mut self, threshold: u32) -> Sizes {
        let estimate = self.sizes(false);
        if estimate.total() <= u64::from(threshold) {
            estimate
        } else {
            self.sizes(true)
        }
    }

    /// The exact sizes when the history is past the trigger `H`; `None`
    /// when it is not, or when the cheap bounds say it can wait (see
    /// [`sizing::trigger_check`]).
    pub(super) fn sizes_over_trigger(&mut self) -> Option<Sizes> {
        if sizing::trigger_check(&self.measure(), &self.budget) == TriggerCheck::Under {
            return None;
        }
        let exact = self.sizes(true);
        (exact.total() > u64::from(self.budget.trigger)).then_some(exact)
    }

    /// Whether the history with a reply of `reply` added (its count from
    /// `tokens`, else its bytes) is surely under the trigger `H`: then no
    /// compaction follows that reply, since the record stored with the same
    /// count measures the same, and [`Engine::sizes_over_trigger`] says
    /// "under" whenever these figures do.
    pub(super) fn surely_under_trigger_with(
        &self,
        reply: &str,
        tokens: Option<&TokenCache>,
    ) -> bool {
        let raw = self
            .counter
            .cached(tokens)
            .unwrap_or_else(|| crate::tokens::upper_bound(reply));
        let mut bound = self.measure();
        bound.messages.push(self.counter.message_cost(raw));
        bound.total() <= u64::from(self.budget.trigger)
    }

    /// Token figures for `/tokens` (exact).
    pub fn stats(&mut self) -> TokenStats {
        let sizes = self.sizes(true);
        TokenStats {
            budget: self.budget,
            history: sizes.total(),
            system: sizes.fixed,
            summary: sizes.summary,
            messages: sizes.messages.len(),
            encoding: self.counter.encoding().name(),
        }
    }

    /// How full the budget is, from cached counts and byte bounds (never
    /// loads the tokenizer): an upper estimate, for the prompt.
    pub fn fill_percent_estimate(&self) -> u64 {
        self.measure().total() * 100 / u64::from(self.budget.cap.max(1))
    }
}
