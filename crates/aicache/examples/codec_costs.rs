//! Measures what encoding and decoding a frame costs on the calling thread, by size, compression
//! and encryption: the data behind `SharedTier`'s offload thresholds (work that would hold an
//! async worker for more than about 100 µs goes to `spawn_blocking`).
//!
//! `cargo run --release -p aicache --example codec_costs --features ai`
#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::sync::Arc;
use std::time::Instant;

use aicache::frame::{Codec, Compression, FrameCodec, FrameMeta};
use aicache::{AeadAlgorithm, EncryptionConfig, Secret};

/// Text-like bytes (compressible about 3:1, as answers are).
fn text(len: usize) -> Vec<u8> {
    let words = [
        "the ",
        "model ",
        "answered ",
        "with ",
        "a ",
        "summary ",
        "of ",
        "it. ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0usize;
    while out.len() < len {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(i >> 16) % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

fn micros(runs: u32, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    for _ in 0..runs {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
}

fn main() -> aicache::Result<()> {
    let cipher: Arc<dyn aicache::Cipher> = Arc::new(
        EncryptionConfig::new(
            AeadAlgorithm::ChaCha20Poly1305,
            1,
            Secret::new("11".repeat(32)),
        )
        .build()?,
    );
    let meta = FrameMeta::new(1, u64::from(u32::MAX));
    println!(
        "{:<28} {:>9} {:>12} {:>12}",
        "codec", "bytes", "encode µs", "decode µs"
    );
    for (name, codec) in [
        ("lz4", FrameCodec::new()),
        (
            "lz4 + chacha20poly1305",
            FrameCodec::new().with_cipher(Arc::clone(&cipher)),
        ),
        (
            "zstd 3",
            FrameCodec::new()
                .with_compression(Compression::Zstd)
                .with_zstd_level(3),
        ),
        (
            "zstd 6 (default level)",
            FrameCodec::new()
                .with_compression(Compression::Zstd)
                .with_zstd_level(6),
        ),
        (
            "zstd 19",
            FrameCodec::new()
                .with_compression(Compression::Zstd)
                .with_zstd_level(19),
        ),
    ] {
        for len in [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
            let payload = text(len);
            let runs = if name == "zstd 19" { 5 } else { 200 };
            let mut bytes = Vec::new();
            let encode = micros(runs, || {
                bytes = codec
                    .encode("k", &meta, Codec::Raw, &payload)
                    .map(|e| e.bytes)
                    .unwrap_or_default();
            });
            let stored = aicache::Bytes::from(bytes);
            let decode = micros(runs, || {
                let _ = codec.decode("k", stored.clone());
            });
            println!("{name:<28} {len:>9} {encode:>12.1} {decode:>12.1}");
        }
    }
    println!();
    println!("incompressible (random) payloads, LZ4 and zstd 6, encode µs:");
    for len in [16 << 10, 64 << 10, 256 << 10] {
        let noise = cache_testkit::incompressible_bytes(len);
        let lz4 = FrameCodec::new();
        let zstd = FrameCodec::new()
            .with_compression(Compression::Zstd)
            .with_zstd_level(6);
        let lz4_us = micros(200, || {
            let _ = lz4.encode("k", &meta, Codec::Raw, &noise);
        });
        let zstd_us = micros(50, || {
            let _ = zstd.encode("k", &meta, Codec::Raw, &noise);
        });
        println!(
            "{:<28} {len:>9} {lz4_us:>12.1} {zstd_us:>12.1}",
            "random (lz4, zstd 6)"
        );
    }
    println!();
    println!(
        "{:<28} {:>9} {:>12} {:>12}",
        "MessagePack (JSON answer)", "bytes", "encode µs", "decode µs"
    );
    for len in [4 << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10] {
        let words = String::from_utf8(text(len / 2)).unwrap_or_default();
        let answer = serde_json::json!({
            "summary": words,
            "key_points": words.split(". ").take(len / 64).collect::<Vec<_>>(),
        });
        let mut bytes = Vec::new();
        let encode = micros(200, || {
            bytes = aicache::frame::encode_msgpack(&answer).unwrap_or_default();
        });
        let decode = micros(200, || {
            let _ = aicache::frame::decode_msgpack::<serde_json::Value>(&bytes);
        });
        println!(
            "{:<28} {:>9} {encode:>12.1} {decode:>12.1}",
            "json value",
            bytes.len()
        );
    }
    Ok(())
}
