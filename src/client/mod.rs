//! The model client boundary: the `ChatModel` trait every back-end implements,
//! the request and stream types, and `ClientError`, typed because the engine
//! reacts differently to each kind (retry, compact harder, tell the user).
//!
//! Two implementations: `openai::OpenAiModel` (any OpenAI-compatible server,
//! through async-openai) and `mock::MockModel` (offline, deterministic).

mod body_cap;
mod key_mask;
pub mod listing;
pub mod mock;
pub mod openai;
pub mod tls;

pub use body_cap::{MAX_LINE_BYTES, MAX_RESPONSE_BYTES};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use crate::message::ChatMessage;

/// Why a request is made; the mock answers summary requests differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Reply,
    Summary,
}

/// A chat-completions request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Upper bound on the reply (`R`, or `S` for summaries).
    pub max_tokens: u32,
    pub sampling: Sampling,
    pub purpose: Purpose,
}

/// How the model picks its words: `temperature` and `top_p`, each left to the
/// server when `None`. Reasoning models accept neither (see
/// [`crate::models::is_reasoning`]); the client leaves them out for those.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
}

/// Token usage reported by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// One event of a reply stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of the reply text, to show at once.
    Text(String),
    /// The server's usage report (last chunk with `include_usage`).
    Usage(Usage),
    /// The server said why the reply ended (`stop`, `length`, ...). A stream
    /// that ends without one was cut off.
    Finished(String),
    /// A chunk that could not be parsed and was skipped.
    Skipped(String),
}

pub type ReplyStream = BoxStream<'static, Result<StreamEvent, ClientError>>;

/// A model that can answer chat requests.
pub trait ChatModel: Send + Sync {
    /// The name recorded with assistant messages.
    fn name(&self) -> String;
    /// Starts a reply. Retries (if any) happen inside, before the first event.
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ReplyStream, ClientError>>;
}

/// What went wrong talking to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused the API key (HTTP {status}): {message}. Check OPENAI_API_KEY")]
    Auth { status: u16, message: String },
    #[error("rate limited by the server (HTTP 429) after {}: {message}", counted_attempts(.attempts))]
    RateLimited { attempts: u32, message: String },
    #[error("the request is longer than the model's context window: {message}")]
    ContextTooLong { message: String },
    #[error("the server failed (HTTP {status}) after {}: {message}", counted_attempts(.attempts))]
    Server {
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("the server rejected the request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("the connection to the server at {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error("timed out: the server sent nothing for {secs}s")]
    Timeout { secs: u64 },
    #[error("the server's reply was not understood: {message}")]
    Protocol { message: String },
}

/// "1 attempt", "4 attempts".
fn counted_attempts(n: &u32) -> String {
    crate::render::counted(*n, "attempt")
}

/// How much of a server's error text is shown: enough to read the reason,
/// bounded so a server cannot flood the terminal.
pub const MAX_ERROR_CHARS: usize = 300;

impl ClientError {
    /// Makes every text the error carries safe to show: `secret` (the API
    /// key) is masked first, wherever it occurs, because servers echo what
    /// they were sent (OpenAI quotes a rejected key); then control characters
    /// are made visible (the text is the server's, see [`crate::visible`]);
    /// then the text is cut to [`MAX_ERROR_CHARS`], and a start of the key
    /// left at the end (the server cut its own echo) is masked too. Masking
    /// before cutting is what keeps a key that straddles the cut from leaking.
    pub fn scrub(self, secret: Option<&str>) -> ClientError {
        let secret = secret.filter(|s| s.len() >= MIN_MASKED);
        self.map_texts(|text| scrub_text(&text, secret, MAX_ERROR_CHARS))
    }

    /// Adds advice after the server's text (after [`ClientError::scrub`], so
    /// the advice is never cut).
    pub fn with_hint(self, hint: &str) -> ClientError {
        match self {
            ClientError::Transport { url, message } => ClientError::Transport {
                url,
                message: format!("{message}; {hint}"),
            },
            other => other.map_texts(|text| format!("{text}; {hint}")),
        }
    }

    /// Applies `clean` to every text the error carries.
    fn map_texts(self, clean: impl Fn(String) -> String) -> ClientError {
        match self {
            ClientError::Auth { status, message } => ClientError::Auth {
                status,
                message: clean(message),
            },
            ClientError::RateLimited { attempts, message } => ClientError::RateLimited {
                attempts,
                message: clean(message),
            },
            ClientError::ContextTooLong { message } => ClientError::ContextTooLong {
                message: clean(message),
            },
            ClientError::Server {
                status,
                attempts,
                message,
            } => ClientError::Server {
                status,
                attempts,
                message: clean(message),
            },
            ClientError::BadRequest { status, message } => ClientError::BadRequest {
                status,
                message: clean(message),
            },
            ClientError::Transport { url, message } => ClientError::Transport {
                url: clean(url),
                message: clean(message),
            },
            ClientError::Protocol { message } => ClientError::Protocol {
                message: clean(message),
            },
            timeout @ ClientError::Timeout { .. } => timeout,
        }
    }
}

/// The shortest piece of the key that is masked where a text ends with the
/// key's first characters (shorter pieces are too common to mean anything).
const MIN_MASKED: usize = 4;

const MASK: &str = "<redacted>";

/// See [`ClientError::scrub`].
fn scrub_text(text: &str, secret: Option<&str>, max_chars: usize) -> String {
    let masked = match secret {
        Some(secret) => text.replace(secret, MASK),
        None => text.to_string(),
    };
    let shown = crate::visible::text(&masked);
    let (mut kept, cut) = match shown.char_indices().nth(max_chars) {
        Some((at, _)) => (shown[..at].to_string(), true),
        None => (shown, false),
    };
    if let Some(secret) = secret {
        mask_key_start(&mut kept, secret);
    }
    if cut {
        kept.push('…');
    }
    kept
}

/// Masks the longest end of `text` that is a start of `secret`.
fn mask_key_start(text: &mut String, secret: &str) {
    let longest = secret.len().min(text.len());
    for n in (MIN_MASKED..=longest).rev() {
        let at = text.len() - n;
        if text.is_char_boundary(at) && secret.is_char_boundary(n) && text[at..] == secret[..n] {
            text.truncate(at);
            text.push_str(MASK);
            return;
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn counts_agree_with_their_nouns() {
        let once = ClientError::Server {
            status: 500,
            attempts: 1,
            message: "x".into(),
        };
        assert!(once.to_string().contains("after 1 attempt: x"), "{once}");
        let four = ClientError::RateLimited {
            attempts: 4,
            message: "x".into(),
        };
        assert!(four.to_string().contains("after 4 attempts: x"), "{four}");
    }

    use super::*;

    const KEY: &str = "sk-proj-0123456789abcdefghij";

    #[test]
    fn a_key_straddling_the_cut_is_masked_whole() {
        for before in 280..=305 {
            let text = format!("{}{KEY} and more", "x".repeat(before));
            let shown = scrub_text(&text, Some(KEY), MAX_ERROR_CHARS);
            for n in MIN_MASKED..=KEY.len() {
                assert!(!shown.contains(&KEY[..n]), "{before}: {shown}");
            }
        }
    }

    #[test]
    fn a_start_of_the_key_at_the_end_is_masked() {
        let shown = scrub_text("Incorrect API key provided: sk-proj-01", Some(KEY), 300);
        assert_eq!(shown, "Incorrect API key provided: <redacted>");
        // Too short to be the key.
        assert_eq!(scrub_text("tasks", Some(KEY), 300), "tasks");
    }

    #[test]
    fn control_characters_from_the_server_are_shown() {
        let error = ClientError::Auth {
            status: 401,
            message: "bad \x1b]0;title\x07 key".to_string(),
        };
        let ClientError::Auth { message, .. } = error.scrub(Some(KEY)) else {
            unreachable!()
        };
        assert_eq!(message, "bad ^[]0;title^G key");
    }
}
