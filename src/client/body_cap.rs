//! Byte bounds on one HTTP response from the model server. The reply cap
//! (`reply_cap.rs`) counts text as it comes out of the stream, but the SSE
//! parser below it holds a whole event in memory, and rescans it, until the
//! event ends: a server that sends one event without end would spin a core
//! and grow memchat's memory before a single piece of text reached the cap.
//! Counting the body's bytes as they arrive closes that gap: a line (an SSE
//! event is one `data:` line; a non-streamed reply is one JSON line) may not
//! pass [`MAX_LINE_BYTES`], the whole body may not pass [`MAX_RESPONSE_BYTES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

/// The most bytes one response may carry, SSE framing included. A reply that
/// reaches the reply cap in pieces takes a few MB with its framing (each
/// piece is a JSON envelope of ~200 bytes); this only stops a server gone
/// wrong.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// The longest line of a response. A streamed piece is a few hundred bytes;
/// a whole non-streamed reply within the largest reserve (4,096 tokens) is
/// under 400 KB even at JSON's worst escaping.
pub const MAX_LINE_BYTES: u64 = 1024 * 1024;

/// Remembers that a body was cut, so the error it causes (which reaches us
/// through async-openai with a generic text) can say why.
#[derive(Clone, Default)]
pub struct Overflow(Arc<AtomicBool>);

impl Overflow {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    /// The error to report when the body was cut.
    pub fn error(&self) -> Option<super::ClientError> {
        self.happened().then(|| super::ClientError::Protocol {
            message: format!(
                "the server sent more than memchat reads for one reply (a line of {} MiB or \
                 {} MiB in all); memchat stopped reading",
                MAX_LINE_BYTES / (1024 * 1024),
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ),
        })
    }
}

/// `response` with a body that fails once more than `max` bytes arrived in
/// all, or more than `max_line` without a line feed.
pub fn capped(
    response: reqwest::Response,
    max: u64,
    max_line: u64,
    overflow: Overflow,
) -> Result<reqwest::Response, http::Error> {
    let mut head = http::Response::builder()
        .status(response.status())
        .version(response.version());
    if let Some(headers) = head.headers_mut() {
        headers.clone_from(response.headers());
    }
    let (mut received, mut line) = (0u64, 0u64);
    type BodyError = Box<dyn std::error::Error + Send + Sync>;
    let body = response.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(BodyError::from)?;
        let length = chunk.len() as u64;
        received = received.saturating_add(length);
        line = match chunk.iter().rposition(|&b| b == b'\n') {
            Some(at) => length - at as u64 - 1,
            None => line.saturating_add(length),
        };
        if received > max || line > max_line {
            overflow.0.store(true, Ordering::Relaxed);
            return Err(BodyError::from("the response passed memchat's byte cap"));
        }
        Ok(chunk)
    });
    head.body(reqwest::Body::wrap_stream(body))
        .map(reqwest::Response::from)
}
