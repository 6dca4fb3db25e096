//! Recall: the planner that brings archived passages of this conversation
//! back into a request when the new message is about them.
//!
//! The running summary cannot hold every detail of a long conversation; the
//! archive does. Before each request the engine asks the store for the
//! archived messages that best match the new user message (ranked by the
//! store's full-text search), and this module decides what goes in: only
//! passages that pass the relevance floor ([`crate::terms::relevant`]; an
//! irrelevant passage is worse than none), best first, each whole or cut to
//! an excerpt around its matches, until the recall allowance is spent. The
//! allowance is a share of `B` and is never more than the room the request
//! leaves, so no request exceeds `B`, as before. The section is labelled and
//! dated in the request and never stored as a message.

use crate::message::Role;
use crate::store::{Hit, TermStats};
use crate::terms;

/// The recall allowance by default, in percent of the budget `B`: enough
/// for a few passages, small enough that the conversation keeps its room.
pub const DEFAULT_PERCENT: u32 = 10;
/// How many candidates to ask the store for: more than ever fit, so the
/// floor and the allowance choose, not the limit.
pub const CANDIDATES: usize = 32;
/// Below this many tokens of allowance a passage cannot say anything.
const MIN_ALLOWANCE: u32 = 48;
/// One passage takes at most this share of the allowance (a half), so one
/// long reply cannot crowd out the others.
const PASSAGE_SHARE_DIVISOR: u32 = 2;

/// The section's opening line in the request.
pub const HEADING: &str = "From earlier in this conversation (passages recalled from the \
archive because they match the newest message; they are older than the messages that follow):";

/// Whether recall runs (`--recall`, `recall` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    Off,
    #[default]
    Auto,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "auto" => Ok(Mode::Auto),
            other => Err(format!("recall must be off or auto, not {other:?}")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::Auto => "auto",
        })
    }
}

/// The largest recall allowance one may set, in percent of `B`: beyond
/// this, recalled passages would crowd out the conversation itself.
pub const MAX_PERCENT: u32 = 50;

/// One passage put into a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub seq: u64,
    pub role: Role,
    pub at: String,
    /// The message whole, or an excerpt of it around the matches.
    pub text: String,
    pub excerpt: bool,
}

/// What recall put into one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recall {
    /// In conversation order.
    pub passages: Vec<Passage>,
    /// What the section costs in the request, in tokens.
    pub tokens: u32,
}

impl Recall {
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The one-line notice: which messages were recalled.
    pub fn notice(&self) -> String {
        let seqs: Vec<String> = self
            .passages
            .iter()
            .map(|p| format!("#{}", p.seq))
            .collect();
        format!(
            "recall: {} from the archive ({}), {} tokens",
            crate::render::counted(self.passages.len() as u64, "passage"),
            seqs.join(", "),
            self.tokens
        )
    }
}

/// The allowance for a request: `percent` of `cap`, but never more than
/// the `room` the request leaves under `cap`.
pub fn allowance(cap: u32, percent: u32, room: u64) -> u32 {
    let share = u64::from(cap) * u64::from(percent.min(100)) / 100;
    u32::try_from(share.min(room)).unwrap_or(u32::MAX)
}

/// Chooses the passages: candidates best first, each passing the floor for
/// `query_terms`, not in `active` (seqs already in the request), whole when
/// it fits a passage's share, else an excerpt that does, until the section
/// (as costed by `cost`, which prices a whole section) reaches `allowance`.
pub fn plan(
    candidates: &[Hit],
    query_terms: &[String],
    stats: Option<&TermStats>,
    active: &[u64],
    allowance: u32,
    cost: impl Fn(&str) -> u32,
) -> Recall {
    if allowance < MIN_ALLOWANCE || query_terms.is_empty() {
        return Recall::default();
    }
    let per_passage = allowance / PASSAGE_SHARE_DIVISOR;
    // Best first by the rarest query term a passage holds, then by the
    // weight of all it holds (where the store gave the figures): the
    // passage naming the question's subject (its rarest word) comes before
    // those sharing more of its wording, and the order is the same on both
    // stores, whose own rankings differ.
    let mut ranked: Vec<&Hit> = candidates.iter().collect();
    if let Some(s) = stats.filter(|s| s.holding.len() == query_terms.len()) {
        let score =
            |hit: &Hit| terms::matched_weights(query_terms, &hit.content, &s.holding, s.messages);
        ranked.sort_by(|a, b| {
            let (a, b) = (score(a), score(b));
            b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1))
        });
    }
    let mut chosen: Vec<Passage> = Vec::new();
    let mut spent = 0;
    for hit in ranked {
        if active.contains(&hit.seq)
            || chosen.iter().any(|p| p.seq == hit.seq)
            || !passes_floor(query_terms, &hit.content, stats)
        {
            continue;
        }
        let Some(passage) = fit_passage(hit, query_terms, per_passage, &cost) else {
            continue;
        };
        let mut trial = chosen.clone();
        trial.push(passage);
        trial.sort_by_key(|p| p.seq);
        let trial_cost = cost(&section(&trial));
        if trial_cost <= allowance {
            chosen = trial;
            spent = trial_cost;
        }
    }
    Recall {
        passages: chosen,
        tokens: spent,
    }
}

/// The relevance floor: weighted by how common each term is where the
/// store has the figures, else by the count of terms alone.
fn passes_floor(query_terms: &[String], passage: &str, stats: Option<&TermStats>) -> bool {
    match stats {
        Some(s) if s.holding.len() == query_terms.len() => {
            terms::relevant_weighted(query_terms, passage, &s.holding, s.messages)
        }
        _ => terms::relevant(query_terms, passage),
    }
}

/// The hit whole if it costs at most `limit`, else the longest excerpt
/// around its matches that does; `None` if not even a few words fit.
fn fit_passage(
    hit: &Hit,
    query_terms: &[String],
    limit: u32,
    cost: &impl Fn(&str) -> u32,
) -> Option<Passage> {
    let flat = hit.content.split_whitespace().collect::<Vec<_>>().join(" ");
    let passage = |text: String, excerpt: bool| Passage {
        seq: hit.seq,
        role: hit.role,
        at: hit.at.clone(),
        text,
        excerpt,
    };
    if cost(&flat) <= limit {
        return Some(passage(flat, false));
    }
    // The largest excerpt (in words) that fits, by bisection.
    let words = flat.split(' ').count();
    let (mut lo, mut hi) = (0usize, words);
    let excerpt = |n: usize| terms::excerpt_text(&terms::excerpt(&flat, query_terms, n));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if cost(&excerpt(mid)) <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    const FEWEST_WORDS: usize = 8;
    (lo >= FEWEST_WORDS).then(|| passage(excerpt(lo), true))
}

/// When a record was written, as a person reads it: `2026-11-20 14:03`.
pub fn short_time(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(day), Some(time)) if at.as_bytes().get(10) == Some(&b'T') => {
            format!("{day} {time}")
        }
        _ => at.to_string(),
    }
}

/// The section as it goes into the request (after the system prompt and
/// the summary).
pub fn section(passages: &[Passage]) -> String {
    let mut out = String::from(HEADING);
    for p in passages {
        out.push_str(&format!(
            "\n- [{}, {} #{}] {}",
            short_time(&p.at),
            p.role.as_str(),
            p.seq,
            p.text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(seq: u64, content: &str) -> Hit {
        Hit {
            session: "s".into(),
            seq,
            role: Role::User,
            at: "2026-11-20T14:03:07Z".into(),
            content: content.into(),
            archived: true,
            score: 1.0,
        }
    }

    fn words(text: &str) -> u32 {
        text.split_whitespace().count() as u32
    }

    #[test]
    fn only_relevant_passages_not_in_the_window_are_recalled_in_order() {
        let q = terms::query_terms("which database did we pick for the billing service?");
        let hits = [
            hit(
                40,
                "For the billing service we pick PostgreSQL as the database.",
            ),
            hit(7, "The billing database must keep seven years of invoices."),
            hit(9, "Lunch was good."),
            hit(12, "The billing service and its database, again."),
        ];
        let recall = plan(&hits, &q, None, &[12], 500, words);
        let seqs: Vec<u64> = recall.passages.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [7, 40]);
        assert_eq!(recall.tokens, words(&section(&recall.passages)));
        let text = section(&recall.passages);
        assert!(text.starts_with(HEADING));
        assert!(
            text.contains("- [2026-11-20 14:03, user #7] The billing database"),
            "{text}"
        );
        assert_eq!(
            recall.notice(),
            format!(
                "recall: 2 passages from the archive (#7, #40), {} tokens",
                recall.tokens
            )
        );
    }

    #[test]
    fn nothing_relevant_means_nothing_recalled() {
        let q = terms::query_terms("how is the weather in Lisbon today?");
        let hits = [
            hit(3, "We chose Redis for the cache."),
            hit(4, "Today is fine."),
        ];
        // "today" alone is one of three terms: under the floor of two.
        assert!(plan(&hits, &q, None, &[], 500, words).is_empty());
        assert!(plan(&hits, &[], None, &[], 500, words).is_empty());
    }

    #[test]
    fn the_section_never_passes_the_allowance_and_long_passages_are_cut() {
        let q = terms::query_terms("redis eviction policy");
        let long = format!(
            "{} the redis eviction policy is allkeys-lru {}",
            "x ".repeat(300),
            "y ".repeat(300)
        );
        let hits = [hit(5, &long), hit(6, "redis eviction policy noted")];
        for allowance in [0, 47, 48, 60, 100, 200, 1000] {
            let recall = plan(&hits, &q, None, &[], allowance, words);
            assert!(recall.tokens <= allowance, "{allowance}: {recall:?}");
            assert_eq!(
                recall.tokens,
                if recall.is_empty() {
                    0
                } else {
                    words(&section(&recall.passages))
                }
            );
        }
        let recall = plan(&hits, &q, None, &[], 200, words);
        let cut = recall
            .passages
            .iter()
            .find(|p| p.seq == 5)
            .expect("the long one, cut");
        assert!(cut.excerpt && cut.text.contains("allkeys-lru"), "{cut:?}");
    }

    #[test]
    fn the_allowance_is_a_share_of_b_within_the_room_left() {
        assert_eq!(allowance(10_000, 10, 50_000), 1000);
        assert_eq!(allowance(10_000, 10, 300), 300);
        assert_eq!(allowance(10_000, 0, 300), 0);
        assert_eq!(allowance(10_000, 500, 50_000), 10_000);
        assert_eq!(short_time("2026-11-20T14:03:07Z"), "2026-11-20 14:03");
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}
