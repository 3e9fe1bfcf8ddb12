//! aicache's migration tooling.
//!
//! This crate will hold `CacheMigrationManager`: backup to a versioned file format of its own,
//! restore, and copy between stores, walking keys with `SCAN` through cache-redis. See
//! `ARCHITECTURE.md`.
