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
//!
//! This is the part that talks to the model; the texts themselves (prompt,
//! heading, extractive notes) are pure and live in `summary_text.rs`.

use futures::StreamExt;

use crate::budget::Budget;
use crate::client::{ChatModel, ChatRequest, ClientError, Purpose, StreamEvent};
use crate::message::{ChatMessage, Role};
use crate::summary_text::{self, extractive};
use crate::tokens::{self, TokenCounter};

/// Tokens of the summary prompt's fixed text, rounded up generously.
const PROMPT_OVERHEAD: u32 = 160;
/// A message as one JSON line of the summary prompt costs this much beyond
/// its content's message cost: the `{"role":…,"content":…}` punctuation.
const LINE_OVERHEAD: u32 = 8;
/// Tokens kept free when a giant message is cut to fit a chunk, for the
/// cut mark that follows it.
const CUT_MARK_ROOM: u32 = 16;
/// What is appended to a message cut to fit a chunk.
const CUT_MARK: &str = " …[cut for the summary]";
/// The least room a chunk gets, however tight the budget: a chunk must hold
/// at least a cut message.
const MIN_CHUNK_ROOM: u32 = 64;

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
    /// The conversation's title, when one was asked for and the model wrote
    /// one (see [`summary_text::instructions`]).
    pub title: Option<String>,
    pub method: Method,
    /// Why the model's summary could not be used, if it could not.
    pub fallback_reason: Option<String>,
    pub model_calls: u32,
}

/// The summary request for one chunk; with `title`, it asks for the
/// conversation's title too.
pub fn summary_request(
    previous: Option<&str>,
    messages: &[ChatMessage],
    cap: u32,
    title: bool,
) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, summary_text::instructions(cap, title)),
            ChatMessage::new(Role::User, summary_text::prompt(previous, messages)),
        ],
        max_tokens: cap,
        sampling: crate::client::Sampling {
            temperature: Some(0.0),
            top_p: None,
        },
        purpose: Purpose::Summary,
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
        let mut cost = counter.message_tokens(&message.content) + LINE_OVERHEAD;
        if cost > room {
            let keep = tokens::raw_within(room).saturating_sub(CUT_MARK_ROOM);
            message.content = counter.truncate_to(&message.content, keep);
            message.content.push_str(CUT_MARK);
            cost = counter.message_tokens(&message.content) + LINE_OVERHEAD;
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
/// tokens, by the model if it can, else extractively. With `want_title`,
/// the last request also asks for the conversation's title (no request of
/// its own).
pub async fn summarize(
    model: &dyn ChatModel,
    counter: &TokenCounter,
    budget: &Budget,
    previous: Option<&str>,
    messages: &[ChatMessage],
    want_title: bool,
) -> SummaryOutcome {
    let cap = budget.summary_cap;
    let room = budget
        .cap
        .saturating_sub(PROMPT_OVERHEAD + cap)
        .max(MIN_CHUNK_ROOM);
    let mut summary: Option<String> = previous.map(str::to_string);
    let mut calls = 0;
    let mut failure: Option<String> = None;
    let mut title = None;
    let chunks = chunks(messages, room, counter);
    let last = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        calls += 1;
        let asks_title = want_title && i + 1 == last;
        let request = summary_request(summary.as_deref(), &chunk, cap, asks_title);
        let reply = collect(model, request).await.map(|reply| {
            reply.map(|text| match asks_title {
                true => {
                    let (text, named) = summary_text::split_title(&text);
                    title = named;
                    text
                }
                false => text,
            })
        });
        match reply {
            Ok(Some(text)) if !text.trim().is_empty() => {
                let text = text.trim();
                let text = if counter.inflated(counter.count_raw(text)) > cap {
                    counter.truncate_to(text, tokens::raw_within(cap))
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
            title,
            method: Method::Model,
            fallback_reason: None,
            model_calls: calls,
        },
        (failure, _) => SummaryOutcome {
            text: extractive(previous, messages, cap, counter),
            title: None,
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
        let request = summary_request(Some("- user: earlier"), &messages, 256, false);
        let (previous, parsed) = summary_text::parse_summary_prompt(&request.messages[1].content);
        assert_eq!(previous.as_deref(), Some("- user: earlier"));
        assert_eq!(parsed, messages);
        assert_eq!(request.sampling.temperature, Some(0.0));
        assert_eq!(request.max_tokens, 256);
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
            let total: u32 = part
                .iter()
                .map(|m| c.message_tokens(&m.content) + LINE_OVERHEAD)
                .sum();
            assert!(total <= 500, "{total}");
        }
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 3);
    }
}
