//! The backend conformance suite against every in-repo configuration.

mod in_memory {
    use aicache::{Bytes, InMemoryCache, MemoryCacheConfig};

    async fn setup() -> (InMemoryCache<Bytes>, ()) {
        let config = MemoryCacheConfig::default().with_max_entries(10_000);
        (InMemoryCache::new(config).unwrap(), ())
    }

    cache_testkit::conformance_suite!(setup);
}

mod in_memory_through_dyn {
    use aicache::{InMemoryCache, MemoryCacheConfig, SharedCache};

    async fn setup() -> (SharedCache, ()) {
        let config = MemoryCacheConfig::default().with_max_entries(10_000);
        (
            SharedCache::new(InMemoryCache::<aicache::Bytes>::new(config).unwrap()),
            (),
        )
    }

    cache_testkit::conformance_suite!(setup);
}

mod redis_with_l1 {
    use aicache::GenericRedisCache;
    use cache_testkit::RedisServer;

    async fn setup() -> (GenericRedisCache, RedisServer) {
        let server = crate::support::server();
        let cache = crate::support::redis_cache(crate::support::test_config(&server.url())).await;
        assert!(cache.is_l2_available());
        (cache, server)
    }

    cache_testkit::conformance_suite!(setup);
}

mod redis_without_l1 {
    use aicache::GenericRedisCache;
    use cache_testkit::RedisServer;

    async fn setup() -> (GenericRedisCache, RedisServer) {
        let server = crate::support::server();
        let config = crate::support::test_config(&server.url()).with_l1(None);
        let cache = crate::support::redis_cache(config).await;
        assert!(cache.is_l2_available());
        (cache, server)
    }

    cache_testkit::conformance_suite!(setup);
}

mod redis_unix_socket_through_dyn {
    use aicache::SharedCache;
    use cache_testkit::{RedisServer, ServerConfig};

    async fn setup() -> (SharedCache, RedisServer) {
        let server = RedisServer::start(ServerConfig::default().unix());
        let config = crate::support::test_config(&server.url()).with_l1(None);
        let cache = crate::support::redis_cache(config).await;
        assert!(cache.is_l2_available());
        (SharedCache::new(cache), server)
    }

    cache_testkit::conformance_suite!(setup);
}

mod memory_frame_store {
    use aicache::memory::MemoryFrameStore;

    async fn setup() -> (MemoryFrameStore, ()) {
        (MemoryFrameStore::new("test"), ())
    }

    cache_testkit::frame_store_suite!(setup);
}

mod redis_frame_store {
    use aicache::RedisStore;
    use cache_testkit::RedisServer;

    async fn setup() -> (RedisStore, RedisServer) {
        let server = crate::support::server();
        let config = crate::support::test_config(&server.url()).with_l1(None);
        (RedisStore::connect(&config, None).await.unwrap(), server)
    }

    cache_testkit::frame_store_suite!(setup);
}
