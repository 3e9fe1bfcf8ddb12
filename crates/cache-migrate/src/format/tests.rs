use super::*;

fn vector_header() -> BackupHeader {
    BackupHeader {
        format_version: FORMAT_VERSION,
        created_at_ms: 1_700_000_000_000,
        source_kind: "redis".to_owned(),
        namespace: "aicache:v1".to_owned(),
        filter: "*".to_owned(),
        filter_segments: None,
        compression: ChunkCompression::None,
        estimated_entries: Some(1),
        writer: "aicache 0.1.0".to_owned(),
    }
}

/// The test vector of `docs/backup-format.md`: one entry, one uncompressed chunk.
fn vector() -> Vec<u8> {
    let key = CacheKey::new("qa:0123").unwrap();
    let mut builder = ChunkBuilder::default();
    builder.push(&key, 1_700_003_600_000, b"AIC-frame").unwrap();
    let (raw, entries) = builder.take();
    let chunk = seal_chunk(0, &raw, entries, ChunkCompression::None).unwrap();
    let trailer = BackupTrailer {
        entries: 1,
        chunks: 1,
        raw_bytes: raw.len() as u64,
        stored_bytes: chunk.bytes.len() as u64,
        completed_at_ms: 1_700_000_000_500,
    };
    let mut file = encode_header(&vector_header()).unwrap();
    file.extend_from_slice(&chunk.bytes);
    file.extend_from_slice(&encode_trailer(&trailer).unwrap());
    file
}

const VECTOR_CHUNK_HEX: &str = "430000000000000000010000001e0000001e000771613a303132330000018bd01c5680000000094149432d6672616d65";

#[test]
fn the_documented_vector_is_what_this_build_writes() {
    let file = vector();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/backup-format.md"
    ))
    .unwrap();
    let hex: String = file.iter().map(|b| format!("{b:02x}")).collect();
    let documented: String = doc
        .split("<!-- vector -->")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty() && line.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(
        hex, documented,
        "docs/backup-format.md's vector is out of date"
    );
    assert!(hex.contains(VECTOR_CHUNK_HEX));
}

fn open(sealed: &SealedChunk, index: u64) -> Result<Vec<RestoreEntry>> {
    let mut head_bytes = [0u8; CHUNK_HEAD_LEN];
    head_bytes.copy_from_slice(&sealed.bytes[..CHUNK_HEAD_LEN]);
    let head = chunk_head(&head_bytes, index)?;
    let end = sealed.bytes.len() - 8;
    let mut be = [0u8; 8];
    be.copy_from_slice(&sealed.bytes[end..]);
    open_chunk(
        &head_bytes,
        head,
        &sealed.bytes[CHUNK_HEAD_LEN..end],
        u64::from_be_bytes(be),
    )
}

fn sample_chunk(compression: ChunkCompression) -> SealedChunk {
    let mut builder = ChunkBuilder::default();
    for i in 0..200u64 {
        let key = CacheKey::new(format!("summarize:{i:04}")).unwrap();
        builder
            .push(&key, 1_700_000_000_000 + i, &b"a frame ".repeat(20))
            .unwrap();
    }
    let (raw, entries) = builder.take();
    seal_chunk(7, &raw, entries, compression).unwrap()
}

#[test]
fn chunks_round_trip_under_every_compression() {
    for compression in [
        ChunkCompression::None,
        ChunkCompression::Lz4,
        ChunkCompression::Zstd { level: 3 },
    ] {
        let sealed = sample_chunk(compression);
        if compression != ChunkCompression::None {
            assert!(
                sealed.bytes.len() < sealed.raw_len / 4,
                "{compression:?} compresses"
            );
        }
        let entries = open(&sealed, 7).unwrap();
        assert_eq!(entries.len(), 200);
        assert_eq!(entries[199].key.as_str(), "summarize:0199");
        assert_eq!(entries[199].expires_at_ms, 1_700_000_000_199);
        assert_eq!(entries[3].frame.as_ref(), &b"a frame ".repeat(20)[..]);
    }
}

#[test]
fn any_flipped_byte_is_caught_and_names_the_chunk() {
    let sealed = sample_chunk(ChunkCompression::Zstd { level: 3 });
    for at in [
        0,
        1,
        5,
        9,
        13,
        17,
        CHUNK_HEAD_LEN + 3,
        sealed.bytes.len() / 2,
        sealed.bytes.len() - 1,
    ] {
        let mut bad = sealed.bytes.clone();
        bad[at] ^= 0x40;
        let bad = SealedChunk {
            bytes: bad,
            raw_len: sealed.raw_len,
            entries: sealed.entries,
        };
        let error = open(&bad, 7).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Corrupted, "byte {at}: {error}");
        assert_eq!(
            error.context_value("chunk"),
            Some("7"),
            "byte {at}: {error}"
        );
    }
    let error = open(&sealed, 8).unwrap_err();
    assert!(error.to_string().contains("out of sequence"), "{error}");
}

#[test]
fn malformed_entries_and_oversized_heads_are_refused() {
    let mut head = [0u8; CHUNK_HEAD_LEN];
    head[0] = CHUNK_TAG;
    head[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(
        chunk_head(&head, 0)
            .unwrap_err()
            .to_string()
            .contains("larger")
    );
    // A declared entry count the bytes do not hold.
    let raw = Bytes::from_static(&[0, 1, b'k']);
    let error = parse_entries(&raw, 1, Some(2)).unwrap_err();
    assert_eq!(error.context_value("chunk"), Some("2"));
    let error = parse_entries(&raw, 0, Some(2)).unwrap_err();
    assert!(
        error.to_string().contains("after the chunk's last entry"),
        "{error}"
    );
}

#[test]
fn documents_check_their_checksum() {
    let bytes = encode_trailer(&BackupTrailer::default()).unwrap();
    let json = &bytes[5..bytes.len() - 8];
    let mut be = [0u8; 8];
    be.copy_from_slice(&bytes[bytes.len() - 8..]);
    let good: BackupTrailer =
        decode_document(&[TRAILER_TAG], json, u64::from_be_bytes(be), "t").unwrap();
    assert_eq!(good, BackupTrailer::default());
    let error = decode_document::<BackupTrailer>(&[TRAILER_TAG], json, 1, "t").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupted);
}

#[test]
fn an_expiry_past_the_format_limit_is_corrupt() {
    let key = CacheKey::new("k").unwrap();
    let mut builder = ChunkBuilder::default();
    builder.push(&key, u64::MAX, b"f").unwrap();
    let (raw, entries) = builder.take();
    let error = parse_entries(&Bytes::from(raw), entries, Some(3)).unwrap_err();
    assert_eq!(error.context_value("chunk"), Some("3"), "{error}");
    let mut head = [0u8; CHUNK_HEAD_LEN];
    head[0] = CHUNK_TAG;
    head[6..10].copy_from_slice(&(MAX_CHUNK_ENTRIES + 1).to_be_bytes());
    assert!(
        chunk_head(&head, 0)
            .unwrap_err()
            .to_string()
            .contains("more entries")
    );
}
