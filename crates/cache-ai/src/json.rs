//! The seed's JSON API: `build_key`, `cache_response`, `get_cached_response`.

use std::fmt::Write as _;
use std::sync::Arc;

use cache_core::{Error, ErrorKind, Result};
use serde_json::{Map, Value};

use crate::cache::AIResponseCache;
use crate::controls::RequestControls;
use crate::keys::AiRequest;
use crate::legacy::{LegacyKeyGenerator, LegacyVariant, PyValue};
use crate::response::{CachedResponse, ResponseMetadata};

/// Which key format [`AIResponseCache::build_key_in`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyFormat {
    /// aicache's format: `aicache:v1:{operation}:{digest}`.
    #[default]
    V1,
    /// The Python original's format, byte for byte (for reading a cache it wrote).
    Legacy(LegacyVariant),
}

fn request<'a>(
    text: &'a str,
    operation: &'a str,
    options: &'a Value,
    question: Option<&'a str>,
) -> Result<AiRequest<'a>> {
    if text.is_empty() {
        return Err(
            Error::new(ErrorKind::InvalidInput, "text must not be empty")
                .with_context("field", "text"),
        );
    }
    if !(options.is_object() || options.is_null()) {
        return Err(
            Error::new(ErrorKind::InvalidInput, "options must be a JSON object")
                .with_context("field", "options")
                .with_context("value", type_name(options))
                .with_context("allowed", "object or null"),
        );
    }
    let mut request = AiRequest::new(operation, text).with_options(options);
    if let Some(question) = question {
        request = request.with_question(question);
    }
    Ok(request)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The JSON form of a hit: rendered once per L1 entry (the entry's hits share it); a hit no L1
/// entry shares is merged into its own answer instead of into a copy.
fn render(hit: CachedResponse<Value>) -> Arc<Value> {
    if let Some(rendered) = hit.rendered.get() {
        return Arc::clone(rendered);
    }
    if Arc::strong_count(&hit.rendered) == 1 {
        let CachedResponse {
            value, metadata, ..
        } = hit;
        let value = Arc::try_unwrap(value).unwrap_or_else(|shared| Value::clone(&shared));
        return Arc::new(with_metadata(value, &metadata));
    }
    Arc::clone(
        hit.rendered
            .get_or_init(|| Arc::new(with_metadata(Value::clone(&hit.value), &hit.metadata))),
    )
}

/// The response merged with its metadata, as the Python original returned it.
fn with_metadata(value: Value, m: &ResponseMetadata) -> Value {
    let mut merged = match value {
        Value::Object(map) => map,
        other => Map::from_iter([("response".to_string(), other)]),
    };
    // Formatting fails (instead of printing) past year 9999; frames never carry such times, but a
    // failure here must not panic either.
    let mut cached_at = String::new();
    let cached_at = match write!(
        cached_at,
        "{}",
        humantime::format_rfc3339_millis(m.cached_at)
    ) {
        Ok(()) => Value::from(cached_at),
        Err(_) => Value::Null,
    };
    let fields = [
        ("cached_at", cached_at),
        ("cache_hit", Value::from(m.cache_hit)),
        (
            "text_tier",
            m.text_tier.map_or(Value::Null, |t| Value::from(t.as_str())),
        ),
        ("operation", Value::from(m.operation.as_ref())),
        ("ai_version", Value::from(m.ai_version.as_ref())),
        ("cache_key", Value::from(m.key.as_ref())),
    ];
    for (name, value) in fields {
        merged.insert(name.to_string(), value);
    }
    Value::Object(merged)
}

impl AIResponseCache<Value> {
    /// The full Redis key for a request, as the seed's `build_key` (format v1).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty text, an invalid operation or non-object options.
    pub fn build_key(
        &self,
        text: &str,
        operation: &str,
        options: &Value,
        question: Option<&str>,
    ) -> Result<String> {
        let key = self.key(&request(text, operation, options, question)?)?;
        Ok(self.full_key(&key))
    }

    /// The key of a request in `format`. Legacy keys hash texts longer than the configuration's
    /// `text_hash_threshold` and keep JSON member order as given.
    ///
    /// # Errors
    /// As [`build_key`](Self::build_key), and for legacy keys as [`LegacyKeyGenerator::key`].
    pub fn build_key_in(
        &self,
        format: KeyFormat,
        text: &str,
        operation: &str,
        options: &Value,
        question: Option<&str>,
    ) -> Result<String> {
        match format {
            KeyFormat::V1 => self.build_key(text, operation, options, question),
            KeyFormat::Legacy(variant) => {
                let options = PyValue::from_json(&options.to_string())?;
                LegacyKeyGenerator::new(self.config().text_hash_threshold, variant)
                    .key(text, operation, &options, question)
            }
        }
    }

    /// Stores `response` (a JSON object) for the request, with the operation's TTL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for invalid arguments (a response that is not an object
    /// included); cache errors other than Redis unavailability.
    pub async fn cache_response(
        &self,
        text: &str,
        operation: &str,
        options: &Value,
        response: &Value,
        question: Option<&str>,
    ) -> Result<bool> {
        if !response.is_object() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "response must be a JSON object")
                    .with_context("field", "response")
                    .with_context("value", type_name(response))
                    .with_context("allowed", "object"),
            );
        }
        let key = self
            .key_async(&request(text, operation, options, question)?)
            .await?;
        self.put(&key, response.clone(), &RequestControls::default())
            .await
    }

    /// The stored response for the request, merged with `cached_at` (RFC 3339), `cache_hit`,
    /// `text_tier`, `operation`, `ai_version` and `cache_key`; `None` on a miss. The merged form is
    /// rendered once per L1 entry and shared by later hits.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for invalid arguments; Redis errors other than unavailability.
    pub async fn get_cached_response(
        &self,
        text: &str,
        operation: &str,
        options: &Value,
        question: Option<&str>,
    ) -> Result<Option<Arc<Value>>> {
        let key = self
            .key_async(&request(text, operation, options, question)?)
            .await?;
        Ok(self.get(&key).await?.map(render))
    }
}
