//! The pure text of the running summary: the heading under which it reaches
//! the model, the prompt that asks for one and its parsing, and the local
//! extractive fallback. No I/O and no model: the mock model answers summary
//! requests with [`extractive_from_prompt`], and `summarize.rs` (the async
//! part) builds its requests from [`instructions`] and [`prompt`].

use crate::message::{ChatMessage, Role};
use crate::tokens::{TokenCounter, upper_bound};

/// Heading under which the summary sits in the system message.
pub const SUMMARY_HEADING: &str = "Summary of the earlier conversation";
/// What follows the heading, before the summary itself.
const SUMMARY_LEAD: &str = " (older turns, folded to save space):\n";
/// Between the system prompt and the summary heading.
const PROMPT_SEPARATOR: &str = "\n\n";
/// Tokens the summary's framing adds besides the heading (the separator
/// and the lead): an allowance, checked against the real count by a test.
pub const SUMMARY_FRAMING: u32 = 16;
/// First line of every extractive summary.
const EXTRACTIVE_HEADING: &str =
    "Earlier conversation (extractive notes; full text in the archive):";
/// How much of each message an extractive note keeps.
const NOTE_CHARS: usize = 160;
const PREVIOUS_MARK: &str = "Previous summary:\n";
const MESSAGES_MARK: &str = "\n\nNew messages (JSON lines, oldest first):\n";
/// The one system message of a request: the system prompt, then the summary.
pub fn compose_system(prompt: Option<&str>, summary: Option<&str>) -> Option<String> {
    match (prompt, summary) {
        (None, None) => None,
        (Some(p), None) => Some(p.to_string()),
        (p, Some(s)) => {
            let mut out = String::new();
            if let Some(p) = p {
                out.push_str(p);
                out.push_str(PROMPT_SEPARATOR);
            }
            out.push_str(SUMMARY_HEADING);
            out.push_str(SUMMARY_LEAD);
            out.push_str(s);
            Some(out)
        }
    }
}

/// The mark of the title line the summary request may ask for.
const TITLE_MARK: &str = "Title:";

/// What the model is told to do with a chunk: merge, keep durable facts,
/// stay under `cap` tokens. With `title` (the first compaction of a session
/// without a title), it also names the conversation on a last line, so the
/// session gets a title without a request of its own.
pub fn instructions(cap: u32, title: bool) -> String {
    let words = (cap * 3 / 5).max(50);
    let ending = if title {
        format!(
            "Reply with the summary, then, on a last line of its own, `{TITLE_MARK} ` and a \
             title of at most six words for the whole conversation."
        )
    } else {
        "Reply with the summary only.".to_string()
    };
    format!(
        "You maintain the long-term memory of a conversation between a user and an AI \
         assistant. Merge the previous summary and the new messages into one updated summary. \
         Keep every durable fact: names, preferences, decisions, numbers, commitments, open \
         questions and tasks; drop small talk. Write compact third-person notes, most important \
         first. Use at most {words} words. {ending}"
    )
}

/// Splits a summary reply asked for with a title: the summary, and the
/// title from its last `Title:` line (if the model wrote one, non-empty).
pub fn split_title(reply: &str) -> (String, Option<String>) {
    let trimmed = reply.trim_end();
    let (body, last) = match trimmed.rsplit_once('\n') {
        Some((body, last)) => (body, last),
        None => ("", trimmed),
    };
    let last = last.trim().trim_matches(['*', '_']);
    let title = last
        .get(..TITLE_MARK.len())
        .filter(|mark| mark.eq_ignore_ascii_case(TITLE_MARK))
        .map(|_| {
            let quoting = |c: char| c.is_whitespace() || "*_\"'".contains(c);
            last[TITLE_MARK.len()..].trim_matches(quoting)
        })
        .filter(|t| !t.is_empty());
    match title {
        Some(title) => (body.trim_end().to_string(), Some(title.to_string())),
        None => (reply.to_string(), None),
    }
}

/// The user part of a summary request: the previous summary, then the new
/// messages as JSON lines (so [`parse_summary_prompt`] can read them back).
pub fn prompt(previous: Option<&str>, messages: &[ChatMessage]) -> String {
    let mut prompt = String::from(PREVIOUS_MARK);
    prompt.push_str(previous.unwrap_or("(none)"));
    prompt.push_str(MESSAGES_MARK);
    for message in messages {
        let line = serde_json::json!({"role": message.role.as_str(), "content": message.content});
        prompt.push_str(&line.to_string());
        prompt.push('\n');
    }
    prompt
}

/// Parses a prompt made by [`prompt`] back into its parts.
pub fn parse_summary_prompt(prompt: &str) -> (Option<String>, Vec<ChatMessage>) {
    let Some(rest) = prompt.strip_prefix(PREVIOUS_MARK) else {
        return (None, Vec::new());
    };
    let (previous, lines) = rest.split_once(MESSAGES_MARK).unwrap_or((rest, ""));
    let previous = (previous != "(none)").then(|| previous.to_string());
    let messages = lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let role = match v.get("role")?.as_str()? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => Role::System,
            };
            Some(ChatMessage::new(role, v.get("content")?.as_str()?))
        })
        .collect();
    (previous, messages)
}

/// The extractive summary of what a summary prompt holds (the mock's answer).
pub fn extractive_from_prompt(prompt: &str, cap: u32, counter: &TokenCounter) -> String {
    let (previous, messages) = parse_summary_prompt(prompt);
    extractive(previous.as_deref(), &messages, cap, counter)
}

/// The local fallback: the previous notes plus one note per message (its
/// start), dropping the oldest notes until the whole fits in `cap` tokens.
/// Deterministic: the same input always gives the same summary.
pub fn extractive(
    previous: Option<&str>,
    messages: &[ChatMessage],
    cap: u32,
    counter: &TokenCounter,
) -> String {
    let mut notes: Vec<String> = Vec::new();
    if let Some(previous) = previous {
        for line in previous.lines() {
            let line = line.trim();
            if !line.is_empty() && line != EXTRACTIVE_HEADING {
                notes.push(line.to_string());
            }
        }
    }
    for message in messages {
        let flat = message
            .content
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if flat.is_empty() {
            continue;
        }
        let mut note: String = flat.chars().take(NOTE_CHARS).collect();
        if note.len() < flat.len() {
            note.push('…');
        }
        notes.push(format!("- {}: {note}", message.role.as_str()));
    }
    let render = |notes: &[String]| {
        let mut out = String::from(EXTRACTIVE_HEADING);
        for note in notes {
            out.push('\n');
            out.push_str(note);
        }
        out
    };
    let fits =
        |text: &str| upper_bound(text) <= cap || counter.inflated(counter.count_raw(text)) <= cap;
    // Drop whole notes, oldest first; a binary search keeps this to a few
    // counts even for thousands of notes.
    let (mut lo, mut hi) = (0usize, notes.len());
    if !fits(&render(&notes)) {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(&render(&notes[mid..])) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
    } else {
        hi = 0;
    }
    let text = render(&notes[hi..]);
    if fits(&text) {
        text
    } else {
        // Even the heading alone is over a tiny cap: cut to it.
        counter.truncate_to(&text, crate::tokens::raw_within(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_line_is_split_from_the_summary() {
        let (summary, title) = split_title("- Ana moves to Lisbon.\n\nTitle: Lisbon move\n");
        assert_eq!(summary, "- Ana moves to Lisbon.");
        assert_eq!(title.as_deref(), Some("Lisbon move"));
        let (_, title) = split_title("- notes\n**title:** \"Spring plans\"");
        assert_eq!(title.as_deref(), Some("Spring plans"));
        let (summary, title) = split_title("- notes only");
        assert_eq!((summary.as_str(), title), ("- notes only", None));
        assert_eq!(
            split_title("- notes\nTitle:").1,
            None,
            "an empty title is none"
        );
        assert!(instructions(100, true).contains("Title: "));
        assert!(!instructions(100, false).contains("Title"));
    }

    #[test]
    fn the_framing_allowance_covers_the_real_framing() {
        let framing = format!("{PROMPT_SEPARATOR}{SUMMARY_LEAD}");
        for model in ["gpt-4o", "gpt-4"] {
            let count = TokenCounter::for_model(model).count_raw(&framing);
            // Two tokens spare for merges at the pieces' edges.
            assert!(count + 2 <= SUMMARY_FRAMING, "{model}: {count}");
        }
    }

    fn counter() -> TokenCounter {
        TokenCounter::for_model("gpt-4o-mini")
    }

    #[test]
    fn the_prompt_round_trips() {
        let messages = vec![
            ChatMessage::new(Role::User, "My name is Ana.\nI prefer \"email\"."),
            ChatMessage::new(Role::Assistant, "Noted."),
        ];
        let (previous, parsed) = parse_summary_prompt(&prompt(Some("- user: earlier"), &messages));
        assert_eq!(previous.as_deref(), Some("- user: earlier"));
        assert_eq!(parsed, messages);
        let (none, _) = parse_summary_prompt(&prompt(None, &messages));
        assert_eq!(none, None);
    }

    #[test]
    fn extractive_is_deterministic_capped_and_keeps_the_newest() {
        let messages: Vec<ChatMessage> = (0..200)
            .map(|i| {
                ChatMessage::new(
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    format!("message number {i} about topic {i}"),
                )
            })
            .collect();
        let a = extractive(Some("- user: very old note"), &messages, 256, &counter());
        let b = extractive(Some("- user: very old note"), &messages, 256, &counter());
        assert_eq!(a, b);
        assert!(counter().count_raw(&a) <= 256);
        assert!(a.contains("message number 199"));
        assert!(!a.contains("very old note"));
        assert!(a.starts_with(EXTRACTIVE_HEADING));
    }

    #[test]
    fn the_system_message_carries_prompt_then_summary() {
        assert_eq!(compose_system(None, None), None);
        assert_eq!(
            compose_system(Some("Be terse."), None).as_deref(),
            Some("Be terse.")
        );
        let both = compose_system(Some("Be terse."), Some("Ana likes email.")).unwrap();
        assert!(both.starts_with("Be terse.\n\n"));
        assert!(both.contains(SUMMARY_HEADING));
        assert!(both.ends_with("Ana likes email."));
    }
}
