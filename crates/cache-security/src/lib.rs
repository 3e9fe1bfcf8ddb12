//! aicache's security layer.
//!
//! This crate will hold `SecurityConfig`, the one Redis connection factory (AUTH, ACL users, TLS
//! with rustls), `RedisCacheSecurityManager` with live security checks, and an AEAD implementation
//! of `cache_core::Cipher` for encryption at rest. Until it lands, the connection factory lives in
//! cache-redis (`connection.rs`), in one place, ready to move. See the security issue.
