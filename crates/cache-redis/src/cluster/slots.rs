//! Redis Cluster hash slots, computed as Redis computes them.

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16_384;

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of the key, or of its hash tag
/// (the bytes between the first `{` and the next `}`, when not empty), modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    let hashed = tagged.unwrap_or(key);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "SLOTS is 16,384: the remainder fits in u16"
    )]
    let slot = (crc16::State::<crc16::XMODEM>::calculate(hashed) as usize % SLOTS) as u16;
    slot
}

/// [`slot_of`] the key `{prefix}{key}` without joining them: `prefix` (a namespace) holds no
/// braces, so a hash tag can only be in `key`.
pub(crate) fn slot_of_parts(prefix: &[u8], key: &[u8]) -> u16 {
    if key.contains(&b'{') {
        return slot_of(&[prefix, key].concat());
    }
    let mut crc = crc16::State::<crc16::XMODEM>::new();
    crc.update(prefix);
    crc.update(key);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "SLOTS is 16,384: the remainder fits in u16"
    )]
    let slot = (crc.get() as usize % SLOTS) as u16;
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"bar"), 5_061);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_ne!(
            slot_of(b"foo{}{bar}"),
            slot_of(b"bar"),
            "an empty tag is no tag"
        );
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b""), 0);
        for (prefix, key) in [("ns:", "k1"), ("aicache:v1:", "qa:{x}y"), ("p:", "")] {
            let joined = format!("{prefix}{key}");
            assert_eq!(
                slot_of_parts(prefix.as_bytes(), key.as_bytes()),
                slot_of(joined.as_bytes()),
                "{joined}"
            );
        }
    }
}
