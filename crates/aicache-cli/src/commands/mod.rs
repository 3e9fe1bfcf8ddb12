//! One module per group of commands.

pub(crate) mod bench;
pub(crate) mod config;
pub(crate) mod health;
pub(crate) mod invalidate;
pub(crate) mod legacy;
pub(crate) mod stats;
pub(crate) mod transfer;
