use super::*;
use proptest::prelude::*;

/// A reversible, authenticated test cipher: XOR with the key id, then a checksum over the
/// plaintext and the associated data. Real ciphers live in cache-security.
#[derive(Debug)]
struct ChecksumXor {
    key_id: u32,
}

fn checksum(data: &[u8], aad: &[u8]) -> u8 {
    data.iter()
        .chain(aad)
        .fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(*b))
}

impl Cipher for ChecksumXor {
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn algorithm_id(&self) -> u8 {
        0x7f
    }
    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = plaintext.iter().map(|b| b ^ 0x5a).collect();
        out.push(checksum(plaintext, associated_data));
        Ok(out)
    }
    fn decrypt(&self, key_id: u32, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>> {
        if key_id != self.key_id {
            return Err(Error::new(ErrorKind::Unsupported, "unknown key id"));
        }
        let (tag, body) = ciphertext
            .split_last()
            .ok_or_else(|| Error::new(ErrorKind::Corrupted, "empty ciphertext"))?;
        let plain: Vec<u8> = body.iter().map(|b| b ^ 0x5a).collect();
        if checksum(&plain, associated_data) != *tag {
            return Err(Error::new(ErrorKind::Corrupted, "tag mismatch"));
        }
        Ok(plain)
    }
}

const CACHED: u64 = 1_700_000_000_000;
const EXPIRES: u64 = 1_700_003_600_000;

fn vectors() -> Vec<(&'static str, FrameCodec, FrameMeta, Codec, Vec<u8>)> {
    let plain = FrameCodec::new();
    let msgpack = encode_msgpack(&serde_json::json!({"summary": "ok"})).unwrap();
    vec![
        (
            "raw_hello",
            plain.clone(),
            FrameMeta::new(CACHED, EXPIRES),
            Codec::Raw,
            b"hello".to_vec(),
        ),
        (
            "msgpack_summarize",
            plain,
            FrameMeta::new(CACHED, EXPIRES)
                .with_operation("summarize")
                .with_text_tier(TextTier::Small)
                .with_ai_version("1.0"),
            Codec::MessagePack,
            msgpack,
        ),
        (
            "lz4_abcd_x64",
            FrameCodec::new().with_compression_threshold(16),
            FrameMeta::new(CACHED, EXPIRES),
            Codec::Raw,
            b"abcd".repeat(64),
        ),
        (
            "sealed_v2",
            FrameCodec::new().with_cipher(Arc::new(ChecksumXor { key_id: 7 })),
            FrameMeta::new(CACHED, EXPIRES),
            Codec::Raw,
            b"sealed".to_vec(),
        ),
    ]
}

#[test]
fn the_documented_version_1_vector_is_what_0_1_wrote_and_still_decodes() {
    let meta = FrameMeta::new(CACHED, EXPIRES);
    let old = version_1_sealed("k", &meta, b"sealed");
    let documented = documented_vectors();
    let doc_hex = documented
        .iter()
        .find(|(n, _)| n == "sealed_v1")
        .map(|(_, h)| h.clone());
    assert_eq!(doc_hex.as_deref(), Some(hex::encode(&old).as_str()));
}

fn documented_vectors() -> Vec<(String, String)> {
    let doc = include_str!("../../../../docs/frame.md");
    let start = doc.find("<!-- vectors:start -->").unwrap();
    let end = doc.find("<!-- vectors:end -->").unwrap();
    doc[start..end]
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            let hex = parts.next()?;
            (hex.len() > 8 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (name.to_string(), hex.to_string()))
        })
        .collect()
}

#[test]
fn documented_test_vectors_match_the_code() {
    let documented = documented_vectors();
    let vectors = vectors();
    assert_eq!(
        documented.len(),
        vectors.len() + 1,
        "docs/frame.md lists every vector (and sealed_v1, decode-only)"
    );
    for (name, codec, meta, payload_codec, payload) in vectors {
        let encoded = codec.encode("k", &meta, payload_codec, &payload).unwrap();
        let hex = hex::encode(&encoded.bytes);
        let doc_hex = documented
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.as_str())
            .unwrap_or_else(|| panic!("vector {name} missing from docs/frame.md; encoded: {hex}"));
        assert_eq!(doc_hex, hex, "vector {name}");
        let frame = codec
            .decode("k", Bytes::from(hex::decode(doc_hex).unwrap()))
            .unwrap();
        assert_eq!(frame.meta, meta);
        assert_eq!(frame.codec, payload_codec);
        assert_eq!(frame.payload.as_ref(), &payload[..]);
    }
}

#[test]
fn compression_only_above_threshold_and_only_when_smaller() {
    let codec = FrameCodec::new().with_compression_threshold(100);
    let meta = FrameMeta::new(CACHED, EXPIRES);
    let compressible = vec![b'x'; 1000];
    let small = vec![b'x'; 100];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..1000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_be_bytes()[0]
        })
        .collect();
    assert_eq!(
        codec
            .encode("k", &meta, Codec::Raw, &compressible)
            .unwrap()
            .compression,
        Compression::Lz4
    );
    assert_eq!(
        codec
            .encode("k", &meta, Codec::Raw, &small)
            .unwrap()
            .compression,
        Compression::None
    );
    assert_eq!(
        codec
            .encode("k", &meta, Codec::Raw, &noise)
            .unwrap()
            .compression,
        Compression::None
    );
    let off = FrameCodec::new()
        .with_compression(Compression::None)
        .with_compression_threshold(0);
    assert_eq!(
        off.encode("k", &meta, Codec::Raw, &compressible)
            .unwrap()
            .compression,
        Compression::None
    );
}

fn words(count: usize) -> Vec<u8> {
    let dictionary = [
        "cache", "model", "answer", "prompt", "token", "latency", "redis", "tier",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = Vec::new();
    for _ in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(dictionary[usize::try_from(state % 8).unwrap()].as_bytes());
        out.push(b' ');
    }
    out
}

#[test]
fn zstd_roundtrips_and_its_level_changes_the_size() {
    let payload = words(4000);
    let meta = FrameMeta::new(CACHED, EXPIRES);
    let fast = FrameCodec::new()
        .with_compression(Compression::Zstd)
        .with_zstd_level(1);
    let small = FrameCodec::new()
        .with_compression(Compression::Zstd)
        .with_zstd_level(19);
    let a = fast.encode("k", &meta, Codec::Raw, &payload).unwrap();
    let b = small.encode("k", &meta, Codec::Raw, &payload).unwrap();
    assert_eq!(a.compression, Compression::Zstd);
    assert!(
        b.bytes.len() < a.bytes.len(),
        "level 19 ({}) < level 1 ({})",
        b.bytes.len(),
        a.bytes.len()
    );
    for encoded in [a, b] {
        let frame = fast.decode("k", Bytes::from(encoded.bytes)).unwrap();
        assert_eq!(frame.payload.as_ref(), &payload[..]);
    }
    let lz4 = FrameCodec::new()
        .encode("k", &meta, Codec::Raw, &payload)
        .unwrap();
    assert_eq!(lz4.compression, Compression::Lz4);
}

#[test]
fn a_zstd_frame_that_lies_about_its_size_is_corrupted() {
    let codec = FrameCodec::new()
        .with_compression(Compression::Zstd)
        .with_compression_threshold(16);
    let mut bytes = codec
        .encode(
            "k",
            &FrameMeta::new(CACHED, EXPIRES),
            Codec::Raw,
            &b"abcd".repeat(64),
        )
        .unwrap()
        .bytes;
    bytes[21..25].copy_from_slice(&(32u32 << 20).to_be_bytes());
    assert_eq!(
        codec.decode("k", Bytes::from(bytes)).unwrap_err().kind(),
        ErrorKind::Corrupted
    );
}

#[test]
fn every_truncation_is_corrupted_not_a_panic() {
    let codec = FrameCodec::new().with_compression_threshold(16);
    let meta = FrameMeta::new(CACHED, EXPIRES).with_operation("qa");
    let bytes = codec
        .encode("k", &meta, Codec::Raw, &b"abcd".repeat(64))
        .unwrap()
        .bytes;
    for len in 0..bytes.len() {
        let err = codec
            .decode("k", Bytes::copy_from_slice(&bytes[..len]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupted, "prefix of {len} bytes");
    }
}

#[test]
fn a_plain_payload_is_a_view_of_the_stored_bytes_and_a_refused_frame_gives_them_back() {
    let codec = FrameCodec::new().with_compression_threshold(16);
    let meta = FrameMeta::new(CACHED, EXPIRES).with_operation("qa");
    let answer = b"an answer".to_vec();
    let stored = Bytes::from(codec.encode("k", &meta, Codec::Raw, &answer).unwrap().bytes);
    let end = stored.as_ptr() as usize + stored.len();
    let frame = codec.decode_or_keep("k", stored).unwrap();
    assert_eq!(&frame.payload[..], &answer[..]);
    assert_eq!(
        frame.payload.as_ptr() as usize + answer.len(),
        end,
        "not copied"
    );

    let compressed = codec
        .encode("k", &meta, Codec::Raw, &b"abcd".repeat(64))
        .unwrap();
    assert_ne!(compressed.compression, Compression::None);
    let compressed = compressed.bytes;
    let plain = codec.encode("k", &meta, Codec::Raw, &answer).unwrap().bytes;
    // A compressed frame whose header promises one byte more than the body decompresses to.
    let mut garbled = compressed.clone();
    garbled[21..25].copy_from_slice(&257u32.to_be_bytes());
    for refused in [
        &plain[..plain.len() - 1],
        &compressed[..compressed.len() - 1],
        &garbled,
    ] {
        let stored = Bytes::copy_from_slice(refused);
        let undecoded = codec.decode_or_keep("k", stored.clone()).unwrap_err();
        assert_eq!(
            undecoded.error.kind(),
            ErrorKind::Corrupted,
            "{}",
            undecoded.error
        );
        assert_eq!(
            undecoded.stored.as_ptr(),
            stored.as_ptr(),
            "the same bytes given back"
        );
        assert_eq!(undecoded.stored, stored);
    }
}

#[test]
fn declared_size_above_the_limit_is_refused_before_allocating() {
    let codec = FrameCodec::new().with_max_payload(1024);
    let mut bytes = FrameCodec::new()
        .encode("k", &FrameMeta::new(CACHED, EXPIRES), Codec::Raw, b"hi")
        .unwrap()
        .bytes;
    bytes[21..25].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = codec.decode("k", Bytes::from(bytes)).unwrap_err();
    // Not garbage: an instance with a larger limit reads it; this one leaves it in place.
    assert_eq!(Unreadable::of(&err), Some(Unreadable::TooLarge));
    assert!(err.to_string().contains("exceeds this instance's limit"));
    assert_eq!(declared_size(b"short"), None);
}

#[test]
fn impossible_lz4_sizes_are_refused_before_allocating() {
    let codec = FrameCodec::new().with_compression_threshold(16);
    let mut bytes = codec
        .encode(
            "k",
            &FrameMeta::new(CACHED, EXPIRES),
            Codec::Raw,
            &b"abcd".repeat(64),
        )
        .unwrap()
        .bytes;
    bytes[21..25].copy_from_slice(&(32u32 << 20).to_be_bytes());
    let err = codec.decode("k", Bytes::from(bytes)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted);
    assert!(err.to_string().contains("impossible"), "{err}");
}

#[test]
fn impossible_timestamps_are_corrupted() {
    let codec = FrameCodec::new();
    for (cached, expires) in [(EXPIRES, CACHED), (CACHED, u64::MAX)] {
        let bytes = codec
            .encode("k", &FrameMeta::new(cached, expires), Codec::Raw, b"v")
            .unwrap()
            .bytes;
        let err = codec.decode("k", Bytes::from(bytes)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupted, "{cached} {expires}");
    }
}

#[test]
fn oversized_payload_is_refused_on_encode() {
    let codec = FrameCodec::new().with_max_payload(10);
    let err = codec
        .encode("k", &FrameMeta::default(), Codec::Raw, &[0u8; 11])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CapacityExceeded);
}

#[test]
fn encrypted_frames_authenticate_the_key_and_the_header() {
    let codec = FrameCodec::new()
        .with_compression_threshold(8)
        .with_cipher(Arc::new(ChecksumXor { key_id: 7 }));
    let meta = FrameMeta::new(CACHED, EXPIRES).with_operation("sentiment");
    let payload = b"positive positive positive positive";
    let bytes = codec
        .encode("key-a", &meta, Codec::Raw, payload)
        .unwrap()
        .bytes;
    let frame = codec.decode("key-a", Bytes::from(bytes.clone())).unwrap();
    assert_eq!(frame.payload.as_ref(), payload);

    let reason = |codec: &FrameCodec, key: &str, bytes: Vec<u8>| {
        let err = codec.decode(key, Bytes::from(bytes)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        Unreadable::of(&err)
    };
    // Moved to another key, or with an altered header: it does not authenticate. Not provably
    // garbage (another instance's key of the same id would differ the same way): left in place.
    assert_eq!(
        reason(&codec, "key-b", bytes.clone()),
        Some(Unreadable::KeyMismatch)
    );
    let mut tampered = bytes.clone();
    tampered[12] ^= 1; // cached_at, still a valid time
    assert_eq!(
        reason(&codec, "key-a", tampered),
        Some(Unreadable::KeyMismatch)
    );
    let other_key = FrameCodec::new().with_cipher(Arc::new(ChecksumXor { key_id: 8 }));
    assert_eq!(
        reason(&other_key, "key-a", bytes.clone()),
        Some(Unreadable::KeyMissing)
    );
    let mut other_algorithm = bytes.clone();
    let algorithm_at = FIXED_HEADER_LEN + 2 + "sentiment".len() + 4;
    other_algorithm[algorithm_at] = 0x01;
    assert_eq!(
        reason(&codec, "key-a", other_algorithm),
        Some(Unreadable::AlgorithmMissing)
    );
    assert_eq!(
        reason(&FrameCodec::new(), "key-a", bytes),
        Some(Unreadable::NoCipher)
    );
    let plaintext = FrameCodec::new()
        .encode("key-a", &meta, Codec::Raw, payload)
        .unwrap()
        .bytes;
    assert_eq!(
        reason(&codec, "key-a", plaintext),
        Some(Unreadable::PlaintextRefused)
    );
}

/// What aicache 0.1 wrote for an encrypted entry: version 1, no algorithm byte.
fn version_1_sealed(key: &str, meta: &FrameMeta, payload: &[u8]) -> Vec<u8> {
    let cipher = ChecksumXor { key_id: 7 };
    let mut out = MAGIC.to_vec();
    out.push(FRAME_VERSION_1);
    out.push(ENCRYPTED_BIT);
    out.extend_from_slice(&meta.cached_at_ms.to_be_bytes());
    out.extend_from_slice(&meta.expires_at_ms.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.push(TextTier::to_byte(meta.text_tier));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&cipher.key_id().to_be_bytes());
    let sealed = cipher
        .encrypt(payload, &associated_data(key, &out))
        .unwrap();
    out.extend_from_slice(&sealed);
    out
}

#[test]
fn version_1_encrypted_frames_still_decode_and_stamp() {
    let meta = FrameMeta::new(CACHED, EXPIRES);
    let old = version_1_sealed("k", &meta, b"sealed");
    let codec = FrameCodec::new().with_cipher(Arc::new(ChecksumXor { key_id: 7 }));
    let frame = codec.decode("k", Bytes::from(old.clone())).unwrap();
    assert_eq!(frame.payload.as_ref(), b"sealed");
    assert_eq!(stamp(&old), Stamp::WrittenAt(CACHED));
    let new = codec
        .encode("k", &meta, Codec::Raw, b"sealed")
        .unwrap()
        .bytes;
    assert_eq!(new[3], FRAME_VERSION);
    assert_eq!(stamp(&new), Stamp::WrittenAt(CACHED));
    let plain = FrameCodec::new()
        .encode("k", &meta, Codec::Raw, b"v")
        .unwrap()
        .bytes;
    assert_eq!(
        plain[3], FRAME_VERSION_1,
        "plaintext frames stay readable by 0.1"
    );
}

#[test]
fn unknown_flags_and_versions_are_rejected() {
    let good = FrameCodec::new()
        .encode("k", &FrameMeta::new(CACHED, EXPIRES), Codec::Raw, b"v")
        .unwrap()
        .bytes;
    let mut reserved = good.clone();
    reserved[4] |= 0b1000_0000;
    let mut version = good.clone();
    version[3] = 3;
    let mut magic = good;
    magic[0] = b'X';
    for bad in [reserved, magic] {
        assert_eq!(
            FrameCodec::new()
                .decode("k", Bytes::from(bad))
                .unwrap_err()
                .kind(),
            ErrorKind::Corrupted
        );
    }
    let newer = FrameCodec::new()
        .decode("k", Bytes::from(version))
        .unwrap_err();
    assert_eq!(
        newer.kind(),
        ErrorKind::Unsupported,
        "a newer frame is not garbage"
    );
    assert_eq!(Unreadable::of(&newer), Some(Unreadable::OtherVersion));
}

#[test]
fn msgpack_roundtrip_keeps_named_fields() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Answer {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        score: Option<f64>,
    }
    let value = Answer {
        text: "hi".into(),
        score: None,
    };
    let bytes = encode_msgpack(&value).unwrap();
    assert_eq!(decode_msgpack::<Answer>(&bytes).unwrap(), value);
    let as_json: serde_json::Value = decode_msgpack(&bytes).unwrap();
    assert_eq!(as_json, serde_json::json!({"text": "hi"}));
    assert_eq!(
        decode_msgpack::<Answer>(b"\xc1").unwrap_err().kind(),
        ErrorKind::Serialization
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = FrameCodec::new().decode("k", Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        flags in any::<u8>(),
        size in any::<u32>(),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = b"AIC\x01".to_vec();
        bytes.push(flags);
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&tail);
        let _ = FrameCodec::new().with_max_payload(1 << 20).decode("k", Bytes::from(bytes));
    }

    #[test]
    fn roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..4096), threshold in 0usize..2048) {
        let codec = FrameCodec::new().with_compression_threshold(threshold);
        let meta = FrameMeta::new(CACHED, EXPIRES);
        let bytes = codec.encode("k", &meta, Codec::Raw, &payload).unwrap().bytes;
        let frame = codec.decode("k", Bytes::from(bytes)).unwrap();
        prop_assert_eq!(frame.payload.as_ref(), &payload[..]);
    }
}

#[test]
fn reseal_binds_an_encrypted_frame_to_its_new_key_only() {
    let old = FrameCodec::new()
        .with_compression_threshold(8)
        .with_cipher(Arc::new(ChecksumXor { key_id: 1 }));
    let rotated = FrameCodec::new().with_cipher(Arc::new(ChecksumXor { key_id: 1 }));
    let meta = FrameMeta::new(CACHED, EXPIRES).with_operation("qa");
    let payload = b"an answer that compresses, compresses, compresses".repeat(8);
    let stored = Bytes::from(
        old.encode("a:k", &meta, Codec::Raw, &payload)
            .unwrap()
            .bytes,
    );
    let moved = rotated.reseal("a:k", "b:k", &stored).unwrap().unwrap();
    let expected = meta.clone();
    assert_ne!(moved, stored);
    let frame = rotated.decode("b:k", moved.clone()).unwrap();
    assert_eq!(
        (frame.payload.as_ref(), frame.meta),
        (&payload[..], expected)
    );
    assert_eq!(
        rotated.decode("a:k", moved).unwrap_err().kind(),
        ErrorKind::Unsupported,
        "no longer readable under the old key"
    );
    // Under the wrong old key, or without a cipher: refused with a reason.
    let refused = rotated.reseal("x:k", "b:k", &stored).unwrap_err();
    assert_eq!(Unreadable::of(&refused), Some(Unreadable::KeyMismatch));
    let refused = FrameCodec::new().reseal("a:k", "b:k", &stored).unwrap_err();
    assert_eq!(Unreadable::of(&refused), Some(Unreadable::NoCipher));
    // Plaintext frames and foreign values are bound to nothing: unchanged.
    let plain = Bytes::from(
        FrameCodec::new()
            .encode("a:k", &meta, Codec::Raw, b"v")
            .unwrap()
            .bytes,
    );
    assert_eq!(rotated.reseal("a:k", "b:k", &plain).unwrap(), None);
    let foreign = Bytes::from_static(b"not a frame at all, long enough to look like one");
    assert_eq!(rotated.reseal("a:k", "b:k", &foreign).unwrap(), None);
}
