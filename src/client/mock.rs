//! `MockModel`: an offline, deterministic model for tests, demos and the
//! README's quick start. Its reply describes what it was sent (turn number,
//! message count, whether a summary was present, the start of the last user
//! message), so a transcript proves what memory reached the model. Summary
//! requests are answered by the local extractive summarizer, so compaction
//! runs end to end without a network.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::{ChatModel, ChatRequest, ClientError, Purpose, ReplyStream, StreamEvent};
use crate::message::Role;
use crate::summary_text;
use crate::tokens::TokenCounter;

/// The name the mock records on its replies.
pub const MOCK_NAME: &str = "mock";
/// How much of the last user message the reply quotes.
const QUOTE_CHARS: usize = 60;

pub struct MockModel {
    counter: TokenCounter,
    /// Pause before each streamed piece (slow-server tests and demos).
    delay: Duration,
}

impl MockModel {
    pub fn new(counter: TokenCounter, delay: Duration) -> Self {
        MockModel { counter, delay }
    }

    /// The reply text for a request (pure, for tests).
    pub fn reply_text(&self, request: &ChatRequest) -> String {
        match request.purpose {
            Purpose::Summary => summary_text::extractive_from_prompt(
                last_user_message(request),
                request.max_tokens,
                &self.counter,
            ),
            Purpose::Reply => describe(request),
        }
    }
}

/// The newest user message of a request ("" if there is none).
fn last_user_message(request: &ChatRequest) -> &str {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map_or("", |m| m.content.as_str())
}

fn describe(request: &ChatRequest) -> String {
    let turn = request
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .count();
    let summary = request.messages.first().is_some_and(|m| {
        m.role == Role::System && m.content.contains(summary_text::SUMMARY_HEADING)
    });
    let last = last_user_message(request);
    let flat: String = last.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quote: String = flat.chars().take(QUOTE_CHARS).collect();
    if quote.len() < flat.len() {
        quote.push('…');
    }
    format!(
        "[mock] turn {turn}, {}, summary: {}. You said: \"{quote}\"",
        crate::render::counted(request.messages.len() as u64, "message"),
        if summary { "yes" } else { "no" },
    )
}

impl ChatModel for MockModel {
    fn name(&self) -> String {
        MOCK_NAME.to_string()
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ReplyStream, ClientError>> {
        let text = self.reply_text(&request);
        let purpose = request.purpose;
        let delay = self.delay;
        Box::pin(async move {
            // Stream as a server would: replies word by word, summaries line
            // by line (long, but a compaction should not take ages).
            let pieces: Vec<String> = match purpose {
                Purpose::Reply => text.split_inclusive(' ').map(str::to_string).collect(),
                Purpose::Summary => text.split_inclusive('\n').map(str::to_string).collect(),
            };
            let events = futures::stream::iter(pieces)
                .then(move |piece| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok(StreamEvent::Text(piece))
                })
                .chain(futures::stream::iter([Ok(StreamEvent::Finished(
                    "stop".into(),
                ))]));
            Ok(events.boxed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ChatMessage;

    #[test]
    fn the_reply_describes_the_request() {
        let mock = MockModel::new(TokenCounter::for_model("gpt-4o-mini"), Duration::ZERO);
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "be terse"),
                ChatMessage::new(Role::User, "hello"),
                ChatMessage::new(Role::Assistant, "hi"),
                ChatMessage::new(Role::User, "what   is\nmy name?"),
            ],
            max_tokens: 100,
            sampling: Default::default(),
            purpose: Purpose::Reply,
        };
        assert_eq!(
            mock.reply_text(&request),
            "[mock] turn 2, 4 messages, summary: no. You said: \"what is my name?\""
        );
    }
}
