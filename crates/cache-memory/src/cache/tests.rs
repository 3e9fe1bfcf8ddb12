use super::*;

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap()
}

fn small(max_entries: usize) -> InMemoryCache<Bytes> {
    InMemoryCache::new(MemoryCacheConfig::default().with_max_entries(max_entries)).unwrap()
}

#[test]
fn overwriting_a_key_in_a_full_cache_evicts_nothing() {
    let cache = small(3);
    for i in 0..3 {
        cache
            .insert(key(&format!("k{i}")), Bytes::from_static(b"v"), ttl(60))
            .unwrap();
    }
    cache
        .insert(key("k2"), Bytes::from_static(b"w"), ttl(60))
        .unwrap();
    for i in 0..3 {
        assert!(
            cache.contains(&format!("k{i}")),
            "k{i} must survive an overwrite of k2"
        );
    }
    assert_eq!(cache.fetch("k2").as_deref(), Some(&b"w"[..]));
    assert_eq!(cache.stats().evictions, 0);
}

#[test]
fn entry_cap_holds() {
    let cache = small(3);
    for i in 0..10 {
        cache
            .insert(key(&format!("k{i}")), Bytes::from_static(b"v"), ttl(60))
            .unwrap();
    }
    let stats = cache.stats();
    assert!(stats.entries <= 3, "{stats:?}");
    assert!(stats.evictions >= 7, "{stats:?}");
}

#[test]
fn byte_budget_holds() {
    let config = MemoryCacheConfig::default()
        .with_max_entries(1000)
        .with_max_bytes(64 * 1024);
    let cache: InMemoryCache<Bytes> = InMemoryCache::new(config).unwrap();
    for i in 0..200 {
        cache
            .insert(key(&format!("k{i}")), Bytes::from(vec![0u8; 1024]), ttl(60))
            .unwrap();
    }
    let stats = cache.stats();
    assert!(stats.bytes <= 64 * 1024, "{stats:?}");
    assert!(stats.evictions > 0);
}

#[test]
fn falsy_values_are_hits() {
    let cache = small(10);
    for (k, v) in [
        ("zero", &b"0"[..]),
        ("empty", b""),
        ("list", b"[]"),
        ("null", b"null"),
    ] {
        cache
            .insert(key(k), Bytes::copy_from_slice(v), ttl(60))
            .unwrap();
        assert_eq!(cache.fetch(k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(cache.stats().hits, 4);
    assert_eq!(cache.stats().misses, 0);
}

#[test]
fn too_large_is_refused_not_dropped() {
    let config = MemoryCacheConfig::default().with_max_bytes(64 * 1024);
    let cache: InMemoryCache<Bytes> = InMemoryCache::new(config).unwrap();
    let limit = cache.max_value_size();
    assert!(limit > 0);
    let err = cache
        .insert(key("big"), Bytes::from(vec![0u8; limit + 1]), ttl(60))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CapacityExceeded);
    assert_eq!(cache.stats().rejected_too_large, 1);
    cache
        .insert(key("fits"), Bytes::from(vec![0u8; limit]), ttl(60))
        .unwrap();
    assert!(
        cache.contains("fits"),
        "a value at the limit must really be stored"
    );
}

#[test]
fn ttl_is_enforced_on_read() {
    let cache = small(10);
    cache
        .insert(
            key("short"),
            Bytes::from_static(b"v"),
            Ttl::from_millis(400).unwrap(),
        )
        .unwrap();
    assert!(cache.fetch("short").is_some());
    std::thread::sleep(Duration::from_millis(700));
    assert!(cache.fetch("short").is_none());
    assert!(!cache.contains("short"));
    let stats = cache.stats();
    assert_eq!(stats.expirations, 1);
    assert_eq!(stats.entries, 0);
}

#[test]
fn sweep_reclaims_unread_expired_entries() {
    let config = MemoryCacheConfig::default()
        .with_max_entries(100)
        .with_sweep_interval(Duration::from_millis(1));
    let cache: InMemoryCache<Bytes> = InMemoryCache::new(config).unwrap();
    for i in 0..5 {
        cache
            .insert(
                key(&format!("old{i}")),
                Bytes::from_static(b"v"),
                Ttl::from_millis(10).unwrap(),
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    cache
        .insert(key("new"), Bytes::from_static(b"v"), ttl(60))
        .unwrap();
    assert_eq!(
        cache.inner.cache.len(),
        1,
        "the write swept the expired entries"
    );
    assert_eq!(cache.stats().expirations, 5);
}

#[test]
fn patterns_select_like_redis() {
    let cache = small(100);
    for k in ["op:sum:1", "op:summarize:1", "lit*[x]", "litXY"] {
        cache
            .insert(key(k), Bytes::from_static(b"v"), ttl(60))
            .unwrap();
    }
    let mut found = cache.keys_matching(&KeyPattern::new("op:sum:*").unwrap());
    found.sort();
    assert_eq!(found, vec![key("op:sum:1")]);
    let literal = KeyPattern::new(cache_core::escape_glob("lit*[x]")).unwrap();
    assert_eq!(cache.remove_matching(&literal), vec![key("lit*[x]")]);
    assert!(cache.contains("litXY"));
}

#[test]
fn invalid_config_names_the_field() {
    let err =
        InMemoryCache::<Bytes>::new(MemoryCacheConfig::default().with_max_entries(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("max_entries: got 0"), "{err}");
}

#[tokio::test]
async fn set_many_refuses_the_whole_batch() {
    let config = MemoryCacheConfig::default().with_max_bytes(64 * 1024);
    let cache: InMemoryCache<Bytes> = InMemoryCache::new(config).unwrap();
    let too_big = Bytes::from(vec![0u8; cache.max_value_size() + 1]);
    let batch = vec![(key("a"), Bytes::from_static(b"1")), (key("b"), too_big)];
    let err = cache.set_many(&batch, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CapacityExceeded);
    assert!(!cache.contains("a"));
}

#[test]
fn a_capacity_of_n_entries_holds_n_distinct_entries() {
    for n in [10, 100, 1000, 10_000, 100_000] {
        let cache = small(n);
        for i in 0..n {
            cache
                .insert(key(&format!("hot:{i}")), Bytes::from_static(b"v"), ttl(60))
                .unwrap();
        }
        let held = (0..n)
            .filter(|i| cache.contains(&format!("hot:{i}")))
            .count();
        assert_eq!(
            held, n,
            "a cache of {n} entries holds {held} of {n} distinct keys"
        );
    }
}

#[test]
fn a_new_cache_has_room_for_what_it_may_hold_and_filling_it_never_regrows_its_table() {
    let cache = small(1_000);
    // quick_cache reports the table's allocation (its slab's, by the slots in use).
    let reserved = cache.inner.cache.memory_used().map;
    assert!(reserved > 0, "nothing reserved");
    for i in 0..1_000 {
        cache
            .insert(key(&format!("k{i}")), Bytes::from_static(b"v"), ttl(60))
            .unwrap();
    }
    assert_eq!(
        cache.inner.cache.memory_used().map,
        reserved,
        "1,000 entries fit the reservation"
    );
}

#[test]
fn the_reservation_is_bounded_whatever_the_configured_capacity() {
    let config = MemoryCacheConfig::default()
        .with_max_entries(crate::config::MAX_ENTRIES)
        .with_max_bytes(1 << 40);
    let cache: InMemoryCache<Bytes> = InMemoryCache::new(config).unwrap();
    let reserved = cache.inner.cache.memory_used().map;
    assert!(
        reserved < 4 << 20,
        "{reserved} bytes reserved for {MAX_RESERVED_ENTRIES} entries"
    );
    // A budget of 4 KiB holds at most 18 entries of the minimum charge: no room for more.
    let tiny = InMemoryCache::<Bytes>::new(
        MemoryCacheConfig::default()
            .with_max_entries(1_000_000)
            .with_max_bytes(4096),
    )
    .unwrap();
    assert!(tiny.inner.cache.memory_used().map < reserved / 100);
}

#[test]
fn the_keys_it_remembers_after_evicting_them_fit_a_sixteenth_of_the_budget() {
    // 200,000 distinct entries through a 1 MiB budget configured for a million entries: quick_cache
    // remembers evicted keys (ghosts) up to half its estimated item count, in slots the byte
    // budget does not charge.
    let cache = InMemoryCache::<Bytes>::new(
        MemoryCacheConfig::default()
            .with_max_entries(1_000_000)
            .with_max_bytes(1 << 20),
    )
    .unwrap();
    for i in 0..200_000 {
        cache
            .insert(key(&format!("k{i}")), Bytes::from_static(b"v"), ttl(60))
            .unwrap();
    }
    let used = cache.inner.cache.memory_used();
    let resident = cache.inner.cache.len() as u64 * GHOST_BYTES;
    let ghosts = used.total() as u64 - resident.min(used.total() as u64);
    assert!(
        ghosts <= (1 << 20) / 16 + (1 << 16),
        "{used:?} for {} entries",
        cache.inner.cache.len()
    );
}
