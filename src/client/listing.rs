//! The server's list of models (`GET /v1/models`), for `memchat models` and
//! `/models`. Besides the names, some servers say how long a request may be:
//! OpenRouter (`context_length`), vLLM (`max_model_len`), LiteLLM
//! (`max_input_tokens`), LM Studio (`max_context_length`), Groq
//! (`context_window`). That window is kept with the name; OpenAI's own
//! listing has none.

use serde_json::Value;

use super::ClientError;
use super::openai::{OpenAiSettings, classify, describe_reqwest};

/// The most bytes a listing may take (OpenRouter's full list is ~1 MB).
const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;

/// The fields a window may be reported in, in order of trust: the limit of
/// the server as configured before the model's own maximum.
const WINDOW_FIELDS: &[&str] = &[
    "max_model_len",
    "max_input_tokens",
    "context_length",
    "max_context_length",
    "context_window",
];

/// One model the server offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListedModel {
    pub id: String,
    /// The context window the server reports, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

/// Asks the server for its models, sorted by name.
pub async fn list_models(settings: &OpenAiSettings) -> Result<Vec<ListedModel>, ClientError> {
    let base = settings.base_url.trim_end_matches('/');
    let url = format!("{base}/models");
    let transport = |message: String| ClientError::Transport {
        url: base.to_string(),
        message,
    };
    let http = super::tls::http_client(settings.connect_timeout, settings.idle_timeout)
        .map_err(|e| transport(format!("cannot set up HTTP: {e}")))?;
    let mut request = http.get(&url);
    if let Some(key) = &settings.api_key {
        super::openai::check_api_key(key)
            .map_err(|problem| transport(format!("OPENAI_API_KEY {problem}")))?;
        request = request.bearer_auth(key);
    }
    let timeout = |e: &reqwest::Error| e.is_timeout();
    let idle = settings.idle_timeout;
    let failed = |e: reqwest::Error| {
        if timeout(&e) {
            ClientError::Timeout {
                secs: idle.as_secs(),
            }
        } else {
            transport(describe_reqwest(&e))
        }
    };
    let mut response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_LISTING_BYTES {
            return Err(ClientError::Protocol {
                message: format!("the list of models passed {MAX_LISTING_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    let result = if status >= 400 {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.trim().to_string());
        let error = classify(status, "", message, 1);
        Err(if status == 404 && !base.ends_with("/v1") {
            error.with_hint(&format!(
                "nothing answers at {url}; OpenAI-compatible servers usually serve under /v1: \
                 try --base-url {base}/v1"
            ))
        } else {
            error
        })
    } else {
        // A server that echoes the request never gets the key shown or kept.
        parse_listing(&super::key_mask::KeyMask::whole(
            settings.api_key.as_deref(),
            &text,
        ))
    };
    result.map_err(|e| e.scrub(settings.api_key.as_deref()))
}

/// Reads a listing: `{"data": [{"id": ...}, ...]}` (OpenAI's shape), or a
/// bare array of the same objects (some servers).
pub fn parse_listing(text: &str) -> Result<Vec<ListedModel>, ClientError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ClientError::Protocol {
        message: format!("the list of models is not JSON: {e}"),
    })?;
    let entries = value
        .get("data")
        .or(value.get("models"))
        .unwrap_or(&value)
        .as_array()
        .ok_or_else(|| ClientError::Protocol {
            message: "the list of models has no \"data\" array".to_string(),
        })?;
    let mut models: Vec<ListedModel> = entries
        .iter()
        .filter_map(|entry| {
            let id = entry
                .get("id")
                .or(entry.get("name"))
                .and_then(Value::as_str)?;
            Some(ListedModel {
                id: crate::visible::text(id),
                window: window_of(entry),
            })
        })
        .collect();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    models.dedup_by(|a, b| a.id == b.id);
    Ok(models)
}

/// The window an entry reports: the first of [`WINDOW_FIELDS`] found on the
/// entry itself or in its `top_provider` (OpenRouter), as a positive number.
fn window_of(entry: &Value) -> Option<u32> {
    let places = [Some(entry), entry.get("top_provider")];
    for field in WINDOW_FIELDS {
        for place in places.iter().flatten() {
            if let Some(n) = place.get(*field).and_then(Value::as_u64)
                && n > 0
            {
                return u32::try_from(n).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_read_from_each_servers_field() {
        let text = r#"{"object":"list","data":[
            {"id":"gpt-4o","object":"model","owned_by":"openai"},
            {"id":"meta/llama-3","context_length":131072,"top_provider":{"context_length":8192}},
            {"id":"qwen","max_model_len":32768},
            {"id":"claude","max_input_tokens":200000},
            {"id":"local","top_provider":{"context_length":4096}}
        ]}"#;
        let models = parse_listing(text).unwrap();
        let window = |id: &str| models.iter().find(|m| m.id == id).unwrap().window;
        assert_eq!(window("gpt-4o"), None);
        assert_eq!(window("meta/llama-3"), Some(131_072));
        assert_eq!(window("qwen"), Some(32_768));
        assert_eq!(window("claude"), Some(200_000));
        assert_eq!(window("local"), Some(4096));
        assert_eq!(models[0].id, "claude", "sorted by name");
    }

    #[test]
    fn a_listing_without_data_is_an_error() {
        assert!(parse_listing("{}").is_err());
        assert!(parse_listing("not json").is_err());
        assert_eq!(parse_listing(r#"[{"id":"a"}]"#).unwrap().len(), 1);
    }
}
