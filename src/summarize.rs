//! The running summary: how it is asked for, how it reaches the model, and
//! the local fallback.
//!
//! Compaction folds *old summary + evicted turns* into a new summary of at
//! most `S` tokens, at temperature 0. An input too long for one call is
//! folded in chunks (summary₁ = f(old, chunk₁), summary₂ = f(summary₁,
//! chunk₂), ...). If the model fails (error, timeout, empty answer), the
//! deterministic extractive summary stands in, marked `extractive`: the
//! history stays bounded either way, and the originals are in the archive.
//! An error text is never stored as a summary.

use futures::StreamExt;

use crate::budget::Budget;
use crate::client::{ChatMessage, ChatModel, ChatRequest, ClientError, Purpose, StreamEvent};
use crate::memory::format::Role;
use crate::tokens::{TokenCounter, upper_bound};

/// Heading under which the summary sits in the system message.
pub const SUMMARY_HEADING: &str = "Summary of the earlier conversation";
/// First line of every extractive summary.
const EXTRACTIVE_HEADING: &str =
    "Earlier conversation (extractive notes; full text in the archive):";
/// How much of each message an extractive note keeps.
const NOTE_CHARS: usize = 160;
const PREVIOUS_MARK: &str = "Previous summary:\n";
const MESSAGES_MARK: &str = "\n\nNew messages (JSON lines, oldest first):\n";
/// Tokens of the summary prompt's fixed text, rounded up generously.
const PROMPT_OVERHEAD: u32 = 160;

/// How a summary was made; stored as the record's `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Model,
    Extractive,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Model => "model",
            Method::Extractive => "extractive",
        }
    }
}

/// A new summary and how it came about.
#[derive(Debug, Clone)]
pub struct SummaryOutcome {
    pub text: String,
    pub method: Method,
    /// Why the model's summary could not be used, if it could not.
    pub fallback_reason: Option<String>,
    pub model_calls: u32,
}

/// The one system message of a request: the system prompt, then the summary.
pub fn compose_system(prompt: Option<&str>, summary: Option<&str>) -> Option<String> {
    match (prompt, summary) {
        (None, None) => None,
        (Some(p), None) => Some(p.to_string()),
        (p, Some(s)) => {
            let mut out = String::new();
            if let Some(p) = p {
                out.push_str(p);
                out.push_str("\n\n");
            }
            out.push_str(SUMMARY_HEADING);
            out.push_str(" (older turns, folded to save space):\n");
            out.push_str(s);
            Some(out)
        }
    }
}

fn instructions(cap: u32) -> String {
    let words = (cap * 3 / 5).max(50);
    format!(
        "You maintain the long-term memory of a conversation between a user and an AI \
         assistant. Merge the previous summary and the new messages into one updated summary. \
         Keep every durable fact: names, preferences, decisions, numbers, commitments, open \
         questions and tasks; drop small talk. Write compact third-person notes, most important \
         first. Use at most {words} words. Reply with the summary only."
    )
}

/// The summary request for one chunk.
pub fn summary_request(previous: Option<&str>, messages: &[ChatMessage], cap: u32) -> ChatRequest {
    let mut prompt = String::from(PREVIOUS_MARK);
    prompt.push_str(previous.unwrap_or("(none)"));
    prompt.push_str(MESSAGES_MARK);
    for message in messages {
        let line = serde_json::json!({"role": message.role.as_str(), "content": message.content});
        prompt.push_str(&line.to_string());
        prompt.push('\n');
    }
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, instructions(cap)),
            ChatMessage::new(Role::User, prompt),
        ],
        max_tokens: cap,
        temperature: Some(0.0),
        purpose: Purpose::Summary,
    }
}

/// Parses a prompt made by [`summary_request`] back into its parts.
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
        counter.truncate_to(&text, cap * 10 / 11)
    }
}

/// Collects a whole reply; `Ok(None)` when the stream was cut short.
pub async fn collect(
    model: &dyn ChatModel,
    request: ChatRequest,
) -> Result<Option<String>, ClientError> {
    let mut cap = crate::reply_cap::ReplyCap::for_request(request.max_tokens);
    let mut stream = model.stream(request).await?;
    let mut text = String::new();
    let mut finished = false;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Text(t) => {
                // A server that ignores max_tokens would never end the summary;
                // it is cut to its cap later anyway.
                let (kept, full) = cap.take(&t);
                text.push_str(kept);
                if full {
                    return Ok(Some(text));
                }
            }
            StreamEvent::Finished(_) => finished = true,
            StreamEvent::Usage(_) | StreamEvent::Skipped(_) => {}
        }
    }
    Ok(finished.then_some(text))
}

/// Splits messages into chunks whose sizes stay under `room` tokens, cutting
/// any single message that is larger than a chunk (its full text stays in
/// the archive).
fn chunks(messages: &[ChatMessage], room: u32, counter: &TokenCounter) -> Vec<Vec<ChatMessage>> {
    let mut out: Vec<Vec<ChatMessage>> = Vec::new();
    let mut current: Vec<ChatMessage> = Vec::new();
    let mut used = 0u32;
    for message in messages {
        let mut message = message.clone();
        let mut cost = counter.message_tokens(&message.content) + 8;
        if cost > room {
            message.content = counter.truncate_to(&message.content, room * 10 / 11 - 16);
            message.content.push_str(" …[cut for the summary]");
            cost = counter.message_tokens(&message.content) + 8;
        }
        if used + cost > room && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(message);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Folds `previous` and `messages` into a new summary of at most `S`
/// tokens, by the model if it can, else extractively.
pub async fn summarize(
    model: &dyn ChatModel,
    counter: &TokenCounter,
    budget: &Budget,
    previous: Option<&str>,
    messages: &[ChatMessage],
) -> SummaryOutcome {
    let cap = budget.summary_cap;
    let room = budget.cap.saturating_sub(PROMPT_OVERHEAD + cap).max(64);
    let mut summary: Option<String> = previous.map(str::to_string);
    let mut calls = 0;
    let mut failure: Option<String> = None;
    for chunk in chunks(messages, room, counter) {
        calls += 1;
        let request = summary_request(summary.as_deref(), &chunk, cap);
        match collect(model, request).await {
            Ok(Some(text)) if !text.trim().is_empty() => {
                let text = text.trim();
                let text = if counter.inflated(counter.count_raw(text)) > cap {
                    counter.truncate_to(text, cap * 10 / 11)
                } else {
                    text.to_string()
                };
                summary = Some(text);
            }
            Ok(Some(_)) => failure = Some("the model returned an empty summary".into()),
            Ok(None) => failure = Some("the summary reply was cut off".into()),
            Err(e) => failure = Some(e.to_string()),
        }
        if failure.is_some() {
            break;
        }
    }
    match (failure, summary) {
        (None, Some(text)) => SummaryOutcome {
            text,
            method: Method::Model,
            fallback_reason: None,
            model_calls: calls,
        },
        (failure, _) => SummaryOutcome {
            text: extractive(previous, messages, cap, counter),
            method: Method::Extractive,
            fallback_reason: Some(failure.unwrap_or_else(|| "nothing to summarize".into())),
            model_calls: calls,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> TokenCounter {
        TokenCounter::for_model("gpt-4o-mini")
    }

    #[test]
    fn the_prompt_round_trips() {
        let messages = vec![
            ChatMessage::new(Role::User, "My name is Ana.\nI prefer \"email\"."),
            ChatMessage::new(Role::Assistant, "Noted."),
        ];
        let request = summary_request(Some("- user: earlier"), &messages, 256);
        let (previous, parsed) = parse_summary_prompt(&request.messages[1].content);
        assert_eq!(previous.as_deref(), Some("- user: earlier"));
        assert_eq!(parsed, messages);
        assert_eq!(request.temperature, Some(0.0));
        assert_eq!(request.max_tokens, 256);
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

    #[test]
    fn chunks_fit_their_room_even_with_giant_messages() {
        let c = counter();
        let messages = vec![
            ChatMessage::new(Role::User, "word ".repeat(3000)),
            ChatMessage::new(Role::Assistant, "short"),
            ChatMessage::new(Role::User, "another ".repeat(50)),
        ];
        let parts = chunks(&messages, 500, &c);
        for part in &parts {
            let total: u32 = part.iter().map(|m| c.message_tokens(&m.content) + 8).sum();
            assert!(total <= 500, "{total}");
        }
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 3);
    }
}
