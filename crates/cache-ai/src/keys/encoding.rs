//! The canonical encoding of a request (the module docs of [`keys`](super) give its layout) and
//! the hasher it streams into.

use serde_json::Value;
use sha2::Digest;

use super::{AiRequest, HashAlgorithm};

/// Where the canonical encoding goes: a hasher in production, a buffer in tests.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

enum HashState {
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

/// How many bytes of short fields [`HashSink`] gathers before handing them to the hasher: one
/// `update` per block instead of one per field (tags, lengths and names are a few bytes each).
const STAGE_LEN: usize = 128;

pub(super) struct HashSink {
    state: HashState,
    written: u64,
    staged: [u8; STAGE_LEN],
    staged_len: usize,
}

impl HashSink {
    pub(super) fn new(algorithm: HashAlgorithm) -> Self {
        let state = match algorithm {
            HashAlgorithm::Sha256 => HashState::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Blake3 => HashState::Blake3(Box::new(blake3::Hasher::new())),
        };
        Self {
            state,
            written: 0,
            staged: [0; STAGE_LEN],
            staged_len: 0,
        }
    }

    pub(super) fn bytes_written(&self) -> u64 {
        self.written
    }

    fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HashState::Sha256(h) => h.update(bytes),
            HashState::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    fn flush(&mut self) {
        if self.staged_len > 0 {
            let staged = &self.staged[..self.staged_len];
            match &mut self.state {
                HashState::Sha256(h) => h.update(staged),
                HashState::Blake3(h) => {
                    h.update(staged);
                }
            }
            self.staged_len = 0;
        }
    }

    /// The digest as 64 lowercase hex digits, on the stack.
    pub(super) fn finish_hex(mut self) -> [u8; 64] {
        self.flush();
        let mut digest = [0u8; 32];
        match self.state {
            HashState::Sha256(h) => digest.copy_from_slice(&h.finalize()),
            HashState::Blake3(h) => digest = *h.finalize().as_bytes(),
        }
        let mut hex = [0u8; 64];
        // 32 bytes always fill 64 hex digits.
        let _ = hex::encode_to_slice(digest, &mut hex);
        hex
    }
}

impl Sink for HashSink {
    fn put(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        if self.staged_len + bytes.len() <= STAGE_LEN {
            self.staged[self.staged_len..self.staged_len + bytes.len()].copy_from_slice(bytes);
            self.staged_len += bytes.len();
        } else {
            // A long field (a text, a slice of one) goes straight to the hasher, in order.
            self.flush();
            if bytes.len() < STAGE_LEN {
                self.staged[..bytes.len()].copy_from_slice(bytes);
                self.staged_len = bytes.len();
            } else {
                self.update(bytes);
            }
        }
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

const ABSENT: u8 = 0x80;

pub(super) fn put_len(sink: &mut impl Sink, len: usize) {
    sink.put(&(len as u64).to_be_bytes());
}

pub(super) fn field(sink: &mut impl Sink, tag: u8, bytes: &[u8]) {
    sink.put(&[tag]);
    put_len(sink, bytes.len());
    sink.put(bytes);
}

fn optional_field(sink: &mut impl Sink, tag: u8, bytes: Option<&str>) {
    match bytes {
        Some(value) => field(sink, tag, value.as_bytes()),
        None => sink.put(&[tag | ABSENT]),
    }
}

pub(super) fn put_header(sink: &mut impl Sink, algorithm: HashAlgorithm) {
    sink.put(b"aicache-key\x00\x01");
    field(sink, b'a', algorithm.as_str().as_bytes());
}

/// Writes the canonical encoding of `request` to `sink`.
pub(super) fn encode_request(
    sink: &mut impl Sink,
    algorithm: HashAlgorithm,
    request: &AiRequest<'_>,
) {
    encode_head(sink, algorithm, request);
    field(sink, b't', request.text.as_bytes());
    encode_tail(sink, request);
}

/// What precedes the text in a request's encoding.
pub(super) fn encode_head(sink: &mut impl Sink, algorithm: HashAlgorithm, request: &AiRequest<'_>) {
    put_header(sink, algorithm);
    field(sink, b'o', request.operation.as_bytes());
}

/// What follows the text in a request's encoding.
pub(super) fn encode_tail(sink: &mut impl Sink, request: &AiRequest<'_>) {
    let options = request
        .options
        .filter(|v| !v.is_null() && !v.as_object().is_some_and(serde_json::Map::is_empty));
    match options {
        Some(value) => {
            sink.put(b"p");
            encode_value(sink, value);
        }
        None => sink.put(&[b'p' | ABSENT]),
    }
    optional_field(sink, b'q', request.question);
    optional_field(sink, b'm', request.model);
    optional_field(sink, b'v', request.prompt_version);
}

/// The largest integer a float represents exactly, past which `1e300` must stay a float.
const EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

pub(super) fn encode_value(sink: &mut impl Sink, value: &Value) {
    match value {
        Value::Null => sink.put(b"n"),
        Value::Bool(b) => sink.put(if *b { b"b\x01" } else { b"b\x00" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                field(sink, b'i', i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                field(sink, b'i', u.to_string().as_bytes());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() <= EXACT_FLOAT_INT {
                    // Integral floats are the integers they equal: 1.0 keys like 1 (and -0.0 like 0).
                    #[expect(clippy::cast_possible_truncation, reason = "|f| <= 2^53 and integral")]
                    let i = f as i64;
                    field(sink, b'i', i.to_string().as_bytes());
                } else {
                    field(sink, b'f', f.to_string().as_bytes());
                }
            }
        }
        Value::String(s) => field(sink, b's', s.as_bytes()),
        Value::Array(items) => {
            sink.put(b"l");
            put_len(sink, items.len());
            for item in items {
                encode_value(sink, item);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            sink.put(b"d");
            put_len(sink, entries.len());
            for (key, item) in entries {
                put_len(sink, key.len());
                sink.put(key.as_bytes());
                encode_value(sink, item);
            }
        }
    }
}
