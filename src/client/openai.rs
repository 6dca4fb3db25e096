//! `OpenAiModel`: any OpenAI-compatible chat-completions server, through
//! async-openai.
//!
//! async-openai provides the HTTP plumbing, the SSE parsing and the error
//! bodies; memchat brings three things it lacks:
//! - lenient response types (its `byot` feature): local servers omit `id` or
//!   `created`, or send `"finish_reason": ""`, which the strict types reject,
//!   losing the text;
//! - timeouts: a connect timeout and a silence timeout (no byte for N
//!   seconds), on our own reqwest client;
//! - bounded retries: a tower service (its `middleware` feature) retries 429,
//!   5xx and connection failures with exponential backoff, honouring
//!   `Retry-After` up to a cap. It sits below the stream, so retries happen
//!   only before the first token and no text is ever shown twice. Without
//!   an API key a 5xx is retried only when the server asks to be (it sends
//!   `Retry-After`): proxies answer a request that lacks the key they need
//!   with a 500, which no retry will change.

use super::tls::PrebuiltHttp;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::body_cap::{self, Overflow};
use super::key_mask::KeyMask;
use super::{ChatMessage, ChatModel, ChatRequest, ClientError, ReplyStream, StreamEvent, Usage};

/// The public OpenAI endpoint, used when no base URL is configured.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// How to reach the server and how patient to be.
#[derive(Clone)]
pub struct OpenAiSettings {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub stream: bool,
    pub connect_timeout: Duration,
    /// Longest silence tolerated while waiting for bytes.
    pub idle_timeout: Duration,
    /// Retries after the first attempt, for 429, 5xx and connect errors.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry.
    pub retry_base: Duration,
    /// Longest single wait, whatever `Retry-After` asks for.
    pub retry_cap: Duration,
}

impl std::fmt::Debug for OpenAiSettings {
    // Hand-written so the key can never reach a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// The real client.
pub struct OpenAiModel {
    client: Client<OpenAIConfig>,
    settings: OpenAiSettings,
    attempts: Arc<AtomicU32>,
    overflow: Overflow,
    /// The HTTP status of the last response (0 before any): async-openai
    /// drops it when an error body is not JSON, and the hints need it.
    status: Arc<AtomicU16>,
}

impl OpenAiModel {
    pub fn new(settings: OpenAiSettings) -> Result<Self, ClientError> {
        Self::with_http(settings, None)
    }

    /// [`OpenAiModel::new`] with an HTTP client built beforehand (see
    /// [`http_client_for`]), used when its timeouts are the settings'.
    pub fn with_http(
        settings: OpenAiSettings,
        prebuilt: Option<PrebuiltHttp>,
    ) -> Result<Self, ClientError> {
        if let Some(key) = &settings.api_key {
            // The key goes into an HTTP header, where a line break or control
            // byte makes the HTTP stack panic.
            check_api_key(key).map_err(|problem| ClientError::Transport {
                url: settings.base_url.clone(),
                message: format!("OPENAI_API_KEY {problem}"),
            })?;
        }
        // Certificates are loaded at the first https:// handshake, not here.
        let timeouts = (settings.connect_timeout, settings.idle_timeout);
        let http = match prebuilt {
            Some(PrebuiltHttp {
                timeouts: made_for,
                client,
            }) if made_for == timeouts => client,
            _ => super::tls::http_client(timeouts.0, timeouts.1).map_err(|e| {
                ClientError::Transport {
                    url: settings.base_url.clone(),
                    message: format!("cannot set up HTTP: {e}"),
                }
            })?,
        };
        let attempts = Arc::new(AtomicU32::new(0));
        let overflow = Overflow::default();
        let status = Arc::new(AtomicU16::new(0));
        let service = RetryService {
            keyless: settings.api_key.is_none(),
            status: status.clone(),
            http: http.clone(),
            max_retries: settings.max_retries,
            base: settings.retry_base,
            cap: settings.retry_cap,
            attempts: attempts.clone(),
            overflow: overflow.clone(),
        };
        let mut config = OpenAIConfig::new().with_api_base(settings.base_url.trim_end_matches('/'));
        config = config.with_api_key(settings.api_key.clone().unwrap_or_default());
        // `Client::build`, not `with_config`: the latter makes a default
        // reqwest client of its own (loading the certificate store again).
        let client = Client::build(http, config).with_http_service(service);
        Ok(OpenAiModel {
            client,
            settings,
            attempts,
            overflow,
            status,
        })
    }

    fn wire_request<'a>(&'a self, request: &'a ChatRequest, stream: bool) -> WireRequest<'a> {
        // Reasoning models reject `max_tokens`, `temperature` and `top_p`;
        // everyone else (and every local server) knows them.
        let reasoning = crate::models::is_reasoning(&self.settings.model);
        WireRequest {
            model: &self.settings.model,
            messages: &request.messages,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            max_tokens: (!reasoning).then_some(request.max_tokens),
            max_completion_tokens: reasoning.then_some(request.max_tokens),
            temperature: request.sampling.temperature.filter(|_| !reasoning),
            top_p: request.sampling.top_p.filter(|_| !reasoning),
        }
    }

    fn map_error(&self, error: OpenAIError) -> ClientError {
        if let Some(error) = self.overflow.error() {
            return error;
        }
        let attempts = self.attempts.load(Ordering::Relaxed).max(1);
        let error = match error {
            // A non-JSON error body (a plain "404 page not found"): the
            // status is the error, the body its text.
            OpenAIError::JSONDeserialize(_, body) if self.status.load(Ordering::Relaxed) >= 400 => {
                classify(
                    self.status.load(Ordering::Relaxed),
                    "",
                    body.trim().to_string(),
                    attempts,
                )
            }
            error => map_error(
                error,
                &self.settings.base_url,
                attempts,
                self.settings.idle_timeout,
            ),
        };
        let error = error.scrub(self.settings.api_key.as_deref());
        match hint(&error, &self.settings) {
            Some(hint) => error.with_hint(&hint),
            None => error,
        }
    }

    async fn start(&self, request: ChatRequest) -> Result<ReplyStream, ClientError> {
        self.attempts.store(0, Ordering::Relaxed);
        self.overflow.clear();
        self.status.store(0, Ordering::Relaxed);
        if self.settings.stream {
            let wire = self.wire_request(&request, true);
            let stream = self
                .client
                .chat()
                .create_stream_byot::<_, WireChunk>(&wire)
                .await
                .map_err(|e| self.map_error(e))?;
            let url = self.settings.base_url.clone();
            let idle = self.settings.idle_timeout;
            let key = self.settings.api_key.clone();
            let overflow = self.overflow.clone();
            // The key never reaches the reply, even split across pieces;
            // what the mask holds back at the end is released then.
            let mask = Arc::new(Mutex::new(KeyMask::new(key.as_deref())));
            let tail = mask.clone();
            let events = stream.flat_map(move |item| {
                let events: Vec<Result<StreamEvent, ClientError>> = match item {
                    Ok(WireChunk {
                        error: Some(error), ..
                    }) => vec![Err(error.into_client_error().scrub(key.as_deref()))],
                    Ok(chunk) => {
                        let mut mask = mask.lock().unwrap_or_else(PoisonError::into_inner);
                        masked(chunk.into_events(), &mut mask)
                            .into_iter()
                            .map(Ok)
                            .collect()
                    }
                    Err(OpenAIError::JSONDeserialize(e, content)) => {
                        vec![Ok(StreamEvent::Skipped(format!(
                            "{e}: {}",
                            clip(&content, 120)
                        )))]
                    }
                    Err(e) => vec![Err(overflow
                        .error()
                        .unwrap_or_else(|| map_error(e, &url, 1, idle).scrub(key.as_deref())))],
                };
                futures::stream::iter(events)
            });
            let tail = futures::stream::iter([()]).filter_map(move |()| {
                let rest = tail.lock().unwrap_or_else(PoisonError::into_inner).finish();
                futures::future::ready((!rest.is_empty()).then_some(Ok(StreamEvent::Text(rest))))
            });
            Ok(events.chain(tail).boxed())
        } else {
            let wire = self.wire_request(&request, false);
            let response: WireResponse = self
                .client
                .chat()
                .create_byot(&wire)
                .await
                .map_err(|e| self.map_error(e))?;
            let mut mask = KeyMask::new(self.settings.api_key.as_deref());
            let mut events = masked(response.into_events(), &mut mask);
            let rest = mask.finish();
            if !rest.is_empty() {
                events.push(StreamEvent::Text(rest));
            }
            Ok(futures::stream::iter(events.into_iter().map(Ok)).boxed())
        }
    }
}

impl ChatModel for OpenAiModel {
    fn name(&self) -> String {
        self.settings.model.clone()
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ReplyStream, ClientError>> {
        Box::pin(self.start(request))
    }
}

/// Checks that an API key can be sent: one run of visible ASCII characters
/// (what an HTTP header allows, and what every provider's keys are made of).
/// The problem is described without showing the key.
pub fn check_api_key(key: &str) -> Result<(), String> {
    let Some((at, c)) = key.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) else {
        return Ok(());
    };
    let what = match c {
        '\n' => "a line break".to_string(),
        '\r' => "a carriage return".to_string(),
        ' ' => "a space".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
        _ => "a character outside ASCII".to_string(),
    };
    Err(format!(
        "contains {what} at character {} of {}; an API key is one line of visible \
         ASCII characters (check how the variable was set, e.g. a trailing newline from a file)",
        at + 1,
        key.chars().count()
    ))
}

fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Maps async-openai's error to the engine's typed error. Texts are kept
/// whole here: [`ClientError::scrub`] masks the key, then cuts them.
fn map_error(error: OpenAIError, url: &str, attempts: u32, idle: Duration) -> ClientError {
    match error {
        OpenAIError::ApiError(api) => classify(
            api.status_code.as_u16(),
            api.api_error.code.as_deref().unwrap_or_default(),
            api.api_error.message.trim().to_string(),
            attempts,
        ),
        OpenAIError::Reqwest(e) => {
            if e.is_timeout() {
                ClientError::Timeout {
                    secs: idle.as_secs(),
                }
            } else if let Some(status) = e.status() {
                ClientError::Server {
                    status: status.as_u16(),
                    attempts,
                    message: e.to_string(),
                }
            } else {
                ClientError::Transport {
                    url: url.to_string(),
                    message: describe_reqwest(&e),
                }
            }
        }
        OpenAIError::JSONDeserialize(e, content) => ClientError::Protocol {
            message: format!("{e} in {content}"),
        },
        OpenAIError::StreamError(e) => {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("timed out") {
                ClientError::Timeout {
                    secs: idle.as_secs(),
                }
            } else {
                ClientError::Transport {
                    url: url.to_string(),
                    message: text,
                }
            }
        }
        other => ClientError::Protocol {
            message: other.to_string(),
        },
    }
}

/// An error the server reported, by its HTTP status, error code and text:
/// the one classification for error statuses and for error events inside a
/// stream.
pub(super) fn classify(status: u16, code: &str, message: String, attempts: u32) -> ClientError {
    let lower = message.to_ascii_lowercase();
    match status {
        401 | 403 => ClientError::Auth { status, message },
        429 => ClientError::RateLimited { attempts, message },
        _ if code == "context_length_exceeded"
            || lower.contains("context length")
            || lower.contains("maximum context")
            || lower.contains("context window") =>
        {
            ClientError::ContextTooLong { message }
        }
        500..=599 => ClientError::Server {
            status,
            attempts,
            message,
        },
        _ => ClientError::BadRequest { status, message },
    }
}

/// What to add to a server's error so the user knows what to change: a key
/// that was never sent, a base URL missing `/v1`, a model name the server
/// does not know.
fn hint(error: &ClientError, settings: &OpenAiSettings) -> Option<String> {
    let (status, message) = match error {
        ClientError::Auth { status, message }
        | ClientError::Server {
            status, message, ..
        }
        | ClientError::BadRequest { status, message } => (*status, message.as_str()),
        _ => return None,
    };
    let base = settings.base_url.trim_end_matches('/');
    let lower = message.to_ascii_lowercase();
    let names_model = lower.contains("model")
        && [
            "not found",
            "not exist",
            "invalid model",
            "unknown model",
            "no such model",
        ]
        .iter()
        .any(|phrase| lower.contains(phrase));
    if names_model {
        return Some(format!(
            "check the model name \"{}\" against the server's list of models ({base}/models): \
             `memchat models` lists them",
            settings.model
        ));
    }
    if status == 404 && !base.ends_with("/v1") {
        return Some(format!(
            "nothing answers at {base}/chat/completions; OpenAI-compatible servers usually \
             serve under /v1: try --base-url {base}/v1"
        ));
    }
    if settings.api_key.is_none() {
        let retried = if (500..600).contains(&status) {
            " (a server error without a key is not retried)"
        } else {
            ""
        };
        return Some(format!(
            "no API key was sent: OPENAI_API_KEY is not set; if this server needs one, set \
             it{retried}"
        ));
    }
    None
}

/// The innermost cause of a reqwest error ("connection refused"), which is
/// what the user needs, rather than the outer "error sending request".
pub(super) fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if matches!(tls_error(e), Some(rustls::Error::InvalidMessage(_))) {
        format!("connection failed: {last} (the server does not answer in TLS: is it http://?)")
    } else if e.is_connect() {
        format!("connection failed: {last}")
    } else {
        last
    }
}

/// rustls's error behind a reqwest error, if the TLS handshake failed.
/// It travels wrapped in `io::Error`s, whose `source()` skips what they
/// wrap, hence `get_ref`.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An `io::Error` may wrap another (hyper wraps tokio-rustls's).
        source = match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => error.source(),
        };
    }
    None
}

/// Whether the TLS handshake failed for good: reqwest reports it as a
/// connect error, but unlike a refused or reset connection it is the same on
/// every attempt. Only what the same server answers the same way every
/// time: its certificate refused (no trusted root signed it, the name does
/// not match), no protocol version or cipher in common, or an answer that
/// is no TLS at all (an `http://` server reached as `https://`). An alert
/// from a server mid-restart is worth another try.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    tls_error(e).is_some_and(|tls| {
        matches!(
            tls,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::InvalidMessage(_)
        )
    })
}

/// The tower service under async-openai: one HTTP attempt per loop, retrying
/// what is worth retrying, with every wait bounded.
#[derive(Clone)]
struct RetryService {
    http: reqwest::Client,
    /// No API key is sent: a 5xx is retried only on `Retry-After`.
    keyless: bool,
    max_retries: u32,
    base: Duration,
    cap: Duration,
    attempts: Arc<AtomicU32>,
    /// Set when a response body passed [`body_cap::MAX_RESPONSE_BYTES`].
    overflow: Overflow,
    status: Arc<AtomicU16>,
}

impl tower::Service<HttpRequestFactory> for RetryService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut retry = 0u32;
            loop {
                this.attempts.store(retry + 1, Ordering::Relaxed);
                let request = factory.build().await?;
                let outcome = this.http.execute(request).await;
                let can_retry = retry < this.max_retries;
                let wait = match &outcome {
                    Ok(response) => {
                        let status = response.status();
                        this.status.store(status.as_u16(), Ordering::Relaxed);
                        let asked = retry_after(response.headers());
                        let worth_it = status.as_u16() == 429
                            || (status.is_server_error() && (!this.keyless || asked.is_some()));
                        if can_retry && worth_it {
                            Some(asked.unwrap_or_else(|| this.backoff(retry)))
                        } else {
                            None
                        }
                    }
                    // A refused certificate fails the same way every time.
                    Err(e) if can_retry && e.is_connect() && !is_tls_failure(e) => {
                        Some(this.backoff(retry))
                    }
                    Err(_) => None,
                };
                match wait {
                    Some(wait) => {
                        tokio::time::sleep(wait.min(this.cap)).await;
                        retry += 1;
                    }
                    None => {
                        let response = outcome.map_err(OpenAIError::Reqwest)?;
                        return body_cap::capped(
                            response,
                            body_cap::MAX_RESPONSE_BYTES,
                            body_cap::MAX_LINE_BYTES,
                            this.overflow.clone(),
                        )
                        .map_err(|e| OpenAIError::InvalidArgument(e.to_string()));
                    }
                }
            }
        })
    }
}

impl RetryService {
    fn backoff(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cap)
    }
}

/// The longest `Retry-After` taken as given: a server asking for more (or a
/// garbled huge number) is read as this, so no arithmetic on the wait can
/// overflow; the retry loop bounds the total wait further.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs; ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// A streamed chunk, lenient: every field may be missing or null.
#[derive(Deserialize, Default)]
struct WireChunk {
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// An error event inside the stream (`data: {"error": {...}}`, as LiteLLM
    /// and others send when the upstream fails after the 200).
    #[serde(default)]
    error: Option<WireError>,
}

/// The error object of an in-stream error event. `code` is a number, a
/// numeric string (LiteLLM: `"429"`) or a name (`"context_length_exceeded"`).
#[derive(Deserialize, Default)]
struct WireError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl WireError {
    /// Classified like the same error sent as an HTTP status: the status is
    /// the code when it is one, else read from the code's or type's name.
    fn into_client_error(self) -> ClientError {
        let code = match &self.code {
            Some(serde_json::Value::String(code)) => code.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let kind = self.kind.unwrap_or_default();
        let names = format!("{code} {kind}").to_ascii_lowercase();
        let status = match code.parse::<u16>() {
            Ok(status @ 400..=599) => status,
            _ if names.contains("auth") || names.contains("api_key") => 401,
            _ if names.contains("rate_limit") => 429,
            _ if names.contains("invalid_request") || names.contains("context_length") => 400,
            _ => 500,
        };
        let message = self
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "(the server sent no message)".to_string());
        classify(status, &code, message.trim().to_string(), 1)
    }
}

#[derive(Deserialize, Default)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireContent>,
    #[serde(default)]
    message: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// `events` with the key masked in their text; before the reply finishes,
/// the text held back is released (it was not the key).
fn masked(events: Vec<StreamEvent>, mask: &mut KeyMask) -> Vec<StreamEvent> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        match event {
            StreamEvent::Text(text) => {
                let shown = mask.push(&text);
                if !shown.is_empty() {
                    out.push(StreamEvent::Text(shown));
                }
            }
            StreamEvent::Finished(reason) => {
                let rest = mask.finish();
                if !rest.is_empty() {
                    out.push(StreamEvent::Text(rest));
                }
                out.push(StreamEvent::Finished(reason));
            }
            other => out.push(other),
        }
    }
    out
}

/// A non-streamed response.
#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

fn choice_events(choices: Option<Vec<WireChoice>>, usage: Option<WireUsage>) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    // Only the first choice matters (we never ask for n > 1); with
    // include_usage the last chunk has no choices at all.
    if let Some(choice) = choices.and_then(|c| c.into_iter().next()) {
        let text = choice.delta.or(choice.message).and_then(|d| d.content);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            events.push(StreamEvent::Text(text));
        }
        // Some servers send "" for "not finished yet"; only a real reason ends.
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            events.push(StreamEvent::Finished(reason));
        }
    }
    if let Some(usage) = usage {
        events.push(StreamEvent::Usage(Usage {
            prompt_tokens: usage.prompt_tokens.unwrap_or(0),
            completion_tokens: usage.completion_tokens.unwrap_or(0),
        }));
    }
    events
}

impl WireChunk {
    fn into_events(self) -> Vec<StreamEvent> {
        choice_events(self.choices, self.usage)
    }
}

impl WireResponse {
    fn into_events(self) -> Vec<StreamEvent> {
        let mut events = choice_events(self.choices, self.usage);
        if !events.iter().any(|e| matches!(e, StreamEvent::Finished(_))) {
            // A complete non-streamed body is a finished reply even if the
            // server left the reason out.
            events.push(StreamEvent::Finished("stop".into()));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_chunks_keep_their_text() {
        let chunk: WireChunk =
            serde_json::from_str(r#"{"choices":[{"delta":{"content":"hi"},"finish_reason":""}]}"#)
                .unwrap();
        assert_eq!(chunk.into_events(), vec![StreamEvent::Text("hi".into())]);
        let usage: WireChunk = serde_json::from_str(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":null}}"#,
        )
        .unwrap();
        assert_eq!(
            usage.into_events(),
            vec![StreamEvent::Usage(Usage {
                prompt_tokens: 5,
                completion_tokens: 0
            })]
        );
        let done: WireChunk =
            serde_json::from_str(r#"{"choices":[{"delta":{},"finish_reason":"eos"}]}"#).unwrap();
        assert_eq!(
            done.into_events(),
            vec![StreamEvent::Finished("eos".into())]
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let settings = OpenAiSettings {
            base_url: OPENAI_BASE_URL.into(),
            api_key: Some("sk-secret-123".into()),
            model: "gpt-4o-mini".into(),
            stream: true,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_base: Duration::from_millis(1),
            retry_cap: Duration::from_millis(1),
        };
        assert!(!format!("{settings:?}").contains("sk-secret"));
    }
}
