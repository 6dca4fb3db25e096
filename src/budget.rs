//! The token budget and the pure planners that keep every request under it.
//!
//! Policy (all numbers in tokens, for a model with context window `W`):
//! - `R` reply reserve = min(4096, W/4): room the reply may use, sent as its
//!   max tokens, so the reply itself can never overflow the window.
//! - `M` margin = max(256, 2% of W): absorbs counting error (servers add
//!   their own framing; unknown tokenizers differ).
//! - `B` = W − R − M (lowered by `--budget` for cost control): the hard cap
//!   for every request. Nothing is ever sent above it.
//! - `H` = 80% of B triggers compaction; `L` = 55% of B is where compaction
//!   brings the history back to. The gap makes compaction rare: one summary
//!   call buys room for many turns.
//! - `S` = clamp(8% of B, 256, 2048) caps the running summary, so the summary
//!   can never crowd out the conversation itself.
//! - `K` = 2 newest turns always stay verbatim (unless they alone break `B`).
//!
//! A *turn* is a user message and the replies up to the next user message;
//! every cut falls between turns. The planners here take sizes and return
//! decisions; they do no I/O and know nothing of files or models.

use crate::message::Role;

/// The window assumed for a model we do not know, when none is configured.
/// Small on purpose: sending too little costs memory of detail (kept in the
/// summary and archive), sending too much costs the request.
pub const DEFAULT_UNKNOWN_WINDOW: u32 = 8192;
/// Below this, the reserve, margin and summary leave no room to talk.
pub const MIN_WINDOW: u32 = 1024;
/// Newest turns kept verbatim by compaction: the exchange in progress and the
/// one before it, which the next message most often refers to.
pub const KEEP_TURNS: usize = 2;
/// `R` is at most this: long answers fit, and a big window is not spent on
/// a reply that rarely needs more.
const REPLY_RESERVE_MAX: u32 = 4096;
/// `R` is at most a quarter of the window, so a small window keeps room to talk.
const REPLY_RESERVE_DIVISOR: u32 = 4;
/// `M` is at least this many tokens: server framing the count cannot see.
const MARGIN_MIN: u32 = 256;
/// `M` is at least 2% of the window (1/50): counting error grows with size.
const MARGIN_DIVISOR: u32 = 50;
/// `H`, in percent of `B`: compaction starts here.
const TRIGGER_PERCENT: u64 = 80;
/// `L`, in percent of `B`: compaction goes down to here; the gap to `H`
/// makes it rare.
const TARGET_PERCENT: u64 = 55;
/// `S`, in percent of `B`, clamped to [`SUMMARY_MIN`, `SUMMARY_MAX`].
const SUMMARY_PERCENT: u64 = 8;
/// A summary shorter than this cannot carry a conversation's facts.
const SUMMARY_MIN: u32 = 256;
/// A summary longer than this crowds out the conversation it summarizes.
const SUMMARY_MAX: u32 = 2048;

/// The budget numbers for one model and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `W`: the model's context window.
    pub window: u32,
    /// `R`: reserved for the reply; sent as max tokens.
    pub reply_reserve: u32,
    /// `M`: safety margin.
    pub margin: u32,
    /// `B`: hard cap of every request.
    pub cap: u32,
    /// `H`: compaction starts above this.
    pub trigger: u32,
    /// `L`: compaction brings the history down to this.
    pub target: u32,
    /// `S`: the running summary's cap.
    pub summary_cap: u32,
    /// `K`: newest turns kept verbatim.
    pub keep_turns: usize,
}

impl Budget {
    /// Computes the budget for window `window`, optionally lowered to `cost_cap`
    /// and with an explicit reply reserve.
    pub fn new(
        window: u32,
        cost_cap: Option<u32>,
        reply_reserve: Option<u32>,
    ) -> Result<Budget, String> {
        if window < MIN_WINDOW {
            return Err(format!(
                "a context window of {window} tokens is too small to chat in; memchat needs at \
                 least {MIN_WINDOW}"
            ));
        }
        let reply_reserve =
            reply_reserve.unwrap_or((window / REPLY_RESERVE_DIVISOR).min(REPLY_RESERVE_MAX));
        let margin = (window / MARGIN_DIVISOR).max(MARGIN_MIN);
        let natural = window.saturating_sub(reply_reserve).saturating_sub(margin);
        let cap = cost_cap.map_or(natural, |c| c.min(natural));
        if cap < MIN_WINDOW / 2 {
            return Err(format!(
                "the request budget would be {cap} tokens (window {window}, reply reserve \
                 {reply_reserve}, margin {margin}); it must be at least {}",
                MIN_WINDOW / 2
            ));
        }
        Ok(Budget {
            window,
            reply_reserve,
            margin,
            cap,
            trigger: percent(cap, TRIGGER_PERCENT),
            target: percent(cap, TARGET_PERCENT),
            summary_cap: percent(cap, SUMMARY_PERCENT).clamp(SUMMARY_MIN, SUMMARY_MAX),
            keep_turns: KEEP_TURNS,
        })
    }
}

impl Budget {
    /// The budget numbers in two lines, as `/tokens` and `--print-config`
    /// both show them.
    pub fn describe(&self) -> String {
        let natural = self
            .window
            .saturating_sub(self.reply_reserve)
            .saturating_sub(self.margin);
        let cap = if self.cap < natural {
            format!("budget B {} (lowered from W-R-M {natural})", self.cap)
        } else {
            format!("budget B = W-R-M {}", self.cap)
        };
        format!(
            "window W {}  reply reserve R {}  margin M {}  {cap}\n\
             compaction at H {} down to L {}  summary cap S {}  newest turns kept K {}\n",
            self.window,
            self.reply_reserve,
            self.margin,
            self.trigger,
            self.target,
            self.summary_cap,
            self.keep_turns,
        )
    }
}

/// The largest reply reserve `R` a window allows: what leaves the margin
/// and the smallest budget `B` there is room to talk in.
pub fn largest_reply_reserve(window: u32) -> u32 {
    window
        .saturating_sub((window / MARGIN_DIVISOR).max(MARGIN_MIN))
        .saturating_sub(MIN_WINDOW / 2)
}

fn percent(value: u32, pct: u64) -> u32 {
    u32::try_from(u64::from(value) * pct / 100).unwrap_or(u32::MAX)
}

/// Index of the first message of every turn. A turn starts at each user
/// message; anything before the first user message forms a turn of its own.
pub fn turn_starts(roles: &[Role]) -> Vec<usize> {
    let mut starts = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        if i == 0 || *role == Role::User {
            starts.push(i);
        }
    }
    starts
}

/// The decision of a compaction: how many leading messages (whole turns) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    pub messages: usize,
    pub turns: usize,
}

/// The history a compaction would reduce, as sizes.
#[derive(Debug, Clone)]
pub struct HistorySizes<'a> {
    /// Cost of the system message without the summary (0 if there is none);
    /// includes the reply priming.
    pub fixed: u32,
    /// Cost the summary adds to the system message now.
    pub summary: u32,
    /// Cost a new summary of the full cap `S` would add: what compaction
    /// must leave room for.
    pub full_summary: u32,
    /// Cost of each active message.
    pub messages: &'a [u32],
    pub roles: &'a [Role],
}

impl HistorySizes<'_> {
    pub fn total(&self) -> u64 {
        u64::from(self.fixed)
            + u64::from(self.summary)
            + self.messages.iter().map(|&m| u64::from(m)).sum::<u64>()
    }
}

/// Plans a compaction: the fewest oldest whole turns whose eviction brings
/// the history (with a new summary of at most `S`) to `target`, keeping
/// `keep_turns` turns. If even that leaves the history above `B`, the kept
/// turns give way too: the cap is the one rule that never bends.
/// Returns `None` when nothing can or need be evicted.
pub fn plan_eviction(
    sizes: &HistorySizes<'_>,
    budget: &Budget,
    target: u32,
    keep_turns: usize,
) -> Option<Eviction> {
    let starts = turn_starts(sizes.roles);
    if starts.is_empty() {
        return None;
    }
    let after_summary = u64::from(sizes.fixed) + u64::from(sizes.full_summary);
    // suffix[i] = cost of messages from i on.
    let mut suffix = vec![0u64; sizes.messages.len() + 1];
    for i in (0..sizes.messages.len()).rev() {
        suffix[i] = suffix[i + 1] + u64::from(sizes.messages[i]);
    }
    let evictable = starts.len().saturating_sub(keep_turns);
    let mut chosen = None;
    for turns in 1..=starts.len() {
        let cut = starts.get(turns).copied().unwrap_or(sizes.messages.len());
        let remaining = after_summary + suffix[cut];
        let within_keep = turns <= evictable;
        if within_keep && remaining <= u64::from(target) {
            chosen = Some(turns);
            break;
        }
        if !within_keep {
            // Past the kept turns: go on only while the cap is broken.
            let previous = starts
                .get(turns - 1)
                .copied()
                .unwrap_or(sizes.messages.len());
            if after_summary + suffix[previous] <= u64::from(budget.cap) {
                break;
            }
            chosen = Some(turns);
            if remaining <= u64::from(budget.cap) {
                break;
            }
            continue;
        }
        chosen = Some(turns);
    }
    let turns = chosen?;
    let messages = starts.get(turns).copied().unwrap_or(sizes.messages.len());
    Some(Eviction { messages, turns })
}

/// What to send: messages from `first_message` on, and the summary cut to at
/// most `summary_limit` raw tokens if set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    pub first_message: usize,
    pub summary_limit: Option<u32>,
}

/// The newest user message cannot fit even alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoesNotFit {
    pub needed: u64,
    pub cap: u32,
}

/// The final fit, on every request: drop the oldest turns from this request,
/// then shorten the summary; refuse if the newest turn alone cannot fit.
/// `summary_raw` is the summary's raw token count and `summary_cost(n)` the
/// cost it adds to the system message at `n` raw tokens.
pub fn plan_window(
    sizes: &HistorySizes<'_>,
    budget: &Budget,
    summary_raw: u32,
    summary_cost: impl Fn(u32) -> u32,
) -> Result<WindowPlan, DoesNotFit> {
    let cap = u64::from(budget.cap);
    if sizes.total() <= cap {
        return Ok(WindowPlan {
            first_message: 0,
            summary_limit: None,
        });
    }
    let starts = turn_starts(sizes.roles);
    let mut first = 0;
    let mut messages_cost: u64 = sizes.messages.iter().map(|&m| u64::from(m)).sum();
    // Drop whole turns, oldest first, keeping the newest.
    for pair in starts.windows(2) {
        if u64::from(sizes.fixed) + u64::from(sizes.summary) + messages_cost <= cap {
            break;
        }
        let (start, next) = (pair[0], pair[1]);
        messages_cost -= sizes.messages[start..next]
            .iter()
            .map(|&m| u64::from(m))
            .sum::<u64>();
        first = next;
    }
    let without_summary = u64::from(sizes.fixed) + messages_cost;
    if without_summary + u64::from(sizes.summary) <= cap {
        return Ok(WindowPlan {
            first_message: first,
            summary_limit: None,
        });
    }
    if without_summary > cap {
        return Err(DoesNotFit {
            needed: without_summary,
            cap: budget.cap,
        });
    }
    // Shorten the summary: the largest raw length whose cost fits.
    let room = cap - without_summary;
    let (mut lo, mut hi) = (0u32, summary_raw);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if u64::from(summary_cost(mid)) <= room {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(WindowPlan {
        first_message: first,
        summary_limit: Some(lo),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Assistant, User};

    #[test]
    fn numbers_follow_the_documented_policy() {
        let b = Budget::new(128_000, None, None).unwrap();
        assert_eq!((b.reply_reserve, b.margin, b.cap), (4096, 2560, 121_344));
        assert_eq!((b.trigger, b.target, b.summary_cap), (97_075, 66_739, 2048));
        let small = Budget::new(2000, None, None).unwrap();
        assert_eq!(
            (small.reply_reserve, small.margin, small.cap),
            (500, 256, 1244)
        );
        assert_eq!(
            (small.trigger, small.target, small.summary_cap),
            (995, 684, 256)
        );
        let capped = Budget::new(128_000, Some(8000), None).unwrap();
        assert_eq!(capped.cap, 8000);
        assert!(Budget::new(500, None, None).is_err());
    }

    #[test]
    fn the_description_names_every_number_and_a_lowered_cap() {
        let b = Budget::new(4000, None, None).unwrap();
        assert_eq!(
            b.describe(),
            "window W 4000  reply reserve R 1000  margin M 256  budget B = W-R-M 2744\n\
             compaction at H 2195 down to L 1509  summary cap S 256  newest turns kept K 2\n"
        );
        let capped = Budget::new(128_000, Some(8000), None).unwrap();
        assert!(
            capped
                .describe()
                .contains("budget B 8000 (lowered from W-R-M 121344)"),
            "{}",
            capped.describe()
        );
    }

    #[test]
    fn turns_start_at_user_messages() {
        assert_eq!(
            turn_starts(&[User, Assistant, User, Assistant, Assistant, User]),
            vec![0, 2, 5]
        );
        assert_eq!(turn_starts(&[Assistant, User]), vec![0, 1]);
        assert!(turn_starts(&[]).is_empty());
    }

    #[test]
    fn eviction_takes_the_fewest_oldest_whole_turns() {
        let budget = Budget::new(2000, None, None).unwrap(); // B 1244, L 684, S 256
        let roles = [
            User, Assistant, User, Assistant, User, Assistant, User, Assistant,
        ];
        let messages = [100, 100, 100, 100, 100, 100, 100, 100];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 0,
            full_summary: 256,
            messages: &messages,
            roles: &roles,
        };
        // 10 + 256 + kept ≤ 684 → kept ≤ 418 → keep 2 turns (400): evict 2 turns.
        let plan = plan_eviction(&sizes, &budget, budget.target, 2).unwrap();
        assert_eq!(
            plan,
            Eviction {
                messages: 4,
                turns: 2
            }
        );
    }

    #[test]
    fn kept_turns_give_way_only_to_the_cap() {
        let budget = Budget::new(2000, None, None).unwrap();
        let roles = [User, Assistant, User, Assistant];
        let messages = [600, 400, 300, 100];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 0,
            full_summary: 256,
            messages: &messages,
            roles: &roles,
        };
        // Keeping both turns: 10+256+1400 > B, so the oldest turn goes anyway.
        let plan = plan_eviction(&sizes, &budget, budget.target, 2).unwrap();
        assert_eq!(plan.turns, 1);
        let small = [10, 10, 10, 10];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 0,
            full_summary: 256,
            messages: &small,
            roles: &roles,
        };
        assert_eq!(plan_eviction(&sizes, &budget, budget.target, 2), None);
    }

    #[test]
    fn window_drops_turns_then_shortens_the_summary_then_refuses() {
        let budget = Budget::new(2000, None, None).unwrap(); // B 1244
        let roles = [User, Assistant, User];
        let messages = [500, 500, 400];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 300,
            full_summary: 256,
            messages: &messages,
            roles: &roles,
        };
        let plan = plan_window(&sizes, &budget, 290, |n| n + 10).unwrap();
        assert_eq!(
            plan,
            WindowPlan {
                first_message: 2,
                summary_limit: None
            }
        );
        let big = [500, 500, 1100];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 300,
            full_summary: 256,
            messages: &big,
            roles: &roles,
        };
        let plan = plan_window(&sizes, &budget, 290, |n| n + 10).unwrap();
        assert_eq!(
            plan,
            WindowPlan {
                first_message: 2,
                summary_limit: Some(124)
            }
        );
        let huge = [500, 500, 1300];
        let sizes = HistorySizes {
            fixed: 10,
            summary: 300,
            full_summary: 256,
            messages: &huge,
            roles: &roles,
        };
        assert!(plan_window(&sizes, &budget, 290, |n| n + 10).is_err());
    }
}
