//! The model client boundary: the `ChatModel` trait every back-end implements,
//! the request and stream types, and `ClientError`, typed because the engine
//! reacts differently to each kind (retry, compact harder, tell the user).
//!
//! Two implementations: `openai::OpenAiModel` (any OpenAI-compatible server,
//! through async-openai) and `mock::MockModel` (offline, deterministic).

pub mod mock;
pub mod openai;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;

use crate::memory::format::Role;

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

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
    pub temperature: Option<f32>,
    pub purpose: Purpose,
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
    #[error("rate limited by the server (HTTP 429) after {attempts} attempts: {message}")]
    RateLimited { attempts: u32, message: String },
    #[error("the request is longer than the model's context window: {message}")]
    ContextTooLong { message: String },
    #[error("the server failed (HTTP {status}) after {attempts} attempts: {message}")]
    Server {
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("the server rejected the request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("cannot reach the server at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the server went silent for {secs}s")]
    Timeout { secs: u64 },
    #[error("the server's reply was not understood: {message}")]
    Protocol { message: String },
}

impl ClientError {
    /// Removes `secret` from every text the error carries: servers echo what
    /// they were sent (OpenAI quotes a rejected key), and error messages reach
    /// the terminal and logs.
    pub fn redact(self, secret: Option<&str>) -> ClientError {
        let Some(secret) = secret.filter(|s| s.len() >= 4) else {
            return self;
        };
        let clean = |text: String| text.replace(secret, "<redacted>");
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
