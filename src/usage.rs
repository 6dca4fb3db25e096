//! What a session has used, from the server's own usage reports (stored
//! with each reply): prompt and completion tokens, turns, compactions, and a
//! cost where the user configured the model's prices. Nothing is estimated:
//! a reply without a report is counted as a turn and said to lack one, and a
//! model without a configured price has no cost.
//!
//! Prices come from the config file, in US dollars per million tokens (the
//! unit providers publish):
//!
//! ```toml
//! [prices."gpt-4o"]
//! input = 2.5
//! output = 10.0
//! ```
//!
//! A price applies to the model of that exact name, or, failing one, to the
//! longest configured name the model starts with followed by `-`, `:` or `@`
//! (so `gpt-4o` prices `gpt-4o-2024-08-06` but not `gpt-4o-mini` when that
//! has its own entry).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::memory::format::{MessageRecord, Record, Role};

/// A model's price, in dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub input: f64,
    /// Per million completion (output) tokens.
    pub output: f64,
}

/// The configured prices by model name.
pub type Prices = BTreeMap<String, Price>;

/// The price for `model`, if configured (see the module doc for the match).
pub fn price_for<'a>(prices: &'a Prices, model: &str) -> Option<&'a Price> {
    if let Some(price) = prices.get(model) {
        return Some(price);
    }
    prices
        .iter()
        .filter(|(name, _)| {
            model.len() > name.len()
                && model.starts_with(name.as_str())
                && model[name.len()..].starts_with(['-', ':', '@'])
        })
        .max_by_key(|(name, _)| name.len())
        .map(|(_, price)| price)
}

/// The cost of one report at `price`, in dollars.
pub fn cost(price: &Price, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    (prompt_tokens as f64 * price.input + completion_tokens as f64 * price.output) / 1_000_000.0
}

/// Dollars as shown: cents for sums of a cent or more, else four decimals.
pub fn dollars(amount: f64) -> String {
    if amount >= 0.01 || amount == 0.0 {
        format!("${amount:.2}")
    } else {
        format!("${amount:.4}")
    }
}

/// A session's use, summed over the whole conversation (archive included:
/// retried and undone replies were paid for too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageTotals {
    /// Replies.
    pub turns: u64,
    /// Replies that carry the server's report.
    pub reported: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Summaries written (each compaction writes one).
    pub compactions: u64,
    /// The cost of the reported replies whose model has a price.
    pub cost: f64,
    /// Reported replies whose model has no price.
    pub unpriced: u64,
}

impl UsageTotals {
    /// Sums the records of one conversation.
    pub fn of(records: &[Record], prices: &Prices) -> UsageTotals {
        let mut totals = UsageTotals::default();
        for record in records {
            match record {
                Record::Message(m) if m.role == Role::Assistant => totals.add_reply(m, prices),
                Record::Summary(_) => totals.compactions += 1,
                _ => {}
            }
        }
        totals
    }

    fn add_reply(&mut self, reply: &MessageRecord, prices: &Prices) {
        self.turns += 1;
        let Some(usage) = reply.usage else {
            return;
        };
        self.reported += 1;
        let (prompt, completion) = (
            u64::from(usage.prompt_tokens),
            u64::from(usage.completion_tokens),
        );
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        match reply.model.as_deref().and_then(|m| price_for(prices, m)) {
            Some(price) => self.cost += cost(price, prompt, completion),
            None => self.unpriced += 1,
        }
    }

    /// The cost column of `memchat sessions --usage`: `-` when nothing is
    /// priced, `~` after it when some replies were left out.
    pub fn cost_cell(&self) -> String {
        if self.reported == self.unpriced {
            return "-".to_string();
        }
        let partial = if self.unpriced > 0 { "+" } else { "" };
        format!("{}{partial}", dollars(self.cost))
    }

    /// The `/usage` text.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "tokens    {} prompt + {} completion = {}\n\
             turns     {} ({} with the server's usage report)\n\
             compacted {}\n",
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens + self.completion_tokens,
            self.turns,
            self.reported,
            crate::render::counted(self.compactions, "time"),
        );
        let cost = if self.reported == 0 {
            "- (no usage reported yet)".to_string()
        } else if self.unpriced == self.reported {
            "- (no price configured for these models: [prices.\"MODEL\"] in the config file)"
                .to_string()
        } else if self.unpriced > 0 {
            format!(
                "{} (not counting {} of models without a configured price)",
                dollars(self.cost),
                crate::render::counted(self.unpriced, "reply")
            )
        } else {
            dollars(self.cost)
        };
        out.push_str(&format!("cost      {cost}\n"));
        out.push_str(
            "(replies only: the summary requests of compactions are not reported by the \
             server's replies and not counted)\n",
        );
        out
    }
}

/// The optional line after each reply (`--show-usage`), from its report.
pub fn reply_line(prompt: u32, completion: u32, price: Option<&Price>) -> String {
    let mut line = format!("usage: {prompt} prompt + {completion} completion tokens");
    if let Some(price) = price {
        line.push_str(&format!(
            ", {}",
            dollars(cost(price, u64::from(prompt), u64::from(completion)))
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::format::UsageRecord;

    fn reply(model: &str, usage: Option<(u32, u32)>) -> Record {
        Record::Message(MessageRecord {
            seq: 1,
            role: Role::Assistant,
            content: "x".into(),
            at: "t".into(),
            model: Some(model.into()),
            interrupted: false,
            truncated: false,
            tokens: None,
            usage: usage.map(|(p, c)| UsageRecord {
                prompt_tokens: p,
                completion_tokens: c,
            }),
            late_tokens: None,
        })
    }

    #[test]
    fn prices_match_the_name_or_a_dated_variant() {
        let mut prices = Prices::new();
        prices.insert(
            "gpt-4o".into(),
            Price {
                input: 2.5,
                output: 10.0,
            },
        );
        prices.insert(
            "gpt-4o-mini".into(),
            Price {
                input: 0.15,
                output: 0.6,
            },
        );
        assert_eq!(price_for(&prices, "gpt-4o").unwrap().input, 2.5);
        assert_eq!(price_for(&prices, "gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(price_for(&prices, "gpt-4o-mini-2024").unwrap().input, 0.15);
        assert!(price_for(&prices, "gpt-4oo").is_none());
        assert!(price_for(&prices, "llama3").is_none());
    }

    #[test]
    fn totals_count_only_what_was_reported_and_priced() {
        let mut prices = Prices::new();
        prices.insert(
            "gpt-4o".into(),
            Price {
                input: 2.5,
                output: 10.0,
            },
        );
        let records = vec![
            reply("gpt-4o", Some((1_000_000, 100_000))),
            reply("llama3", Some((10, 5))),
            reply("gpt-4o", None),
        ];
        let totals = UsageTotals::of(&records, &prices);
        assert_eq!(totals.turns, 3);
        assert_eq!(totals.reported, 2);
        assert_eq!(totals.prompt_tokens, 1_000_010);
        assert_eq!(totals.completion_tokens, 100_005);
        assert!((totals.cost - 3.5).abs() < 1e-9);
        assert_eq!(totals.unpriced, 1);
        assert_eq!(totals.cost_cell(), "$3.50+");
        assert!(totals.describe().contains("not counting 1 reply"));
        let none = UsageTotals::of(&records, &Prices::new());
        assert_eq!(none.cost_cell(), "-");
    }

    #[test]
    fn small_sums_keep_their_digits() {
        assert_eq!(dollars(0.00042), "$0.0004");
        assert_eq!(dollars(1.234), "$1.23");
        assert_eq!(dollars(0.0), "$0.00");
    }
}
