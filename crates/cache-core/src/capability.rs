//! What a backend can do, declared once and respected by callers and by the conformance suite.

/// The capabilities a backend declares through [`CacheInterface::capabilities`](crate::CacheInterface::capabilities).
///
/// ```
/// use cache_core::Capabilities;
///
/// let caps = Capabilities::new(1024 * 1024).shared(true);
/// assert_eq!(caps.max_value_size, 1024 * 1024);
/// assert!(caps.shared);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The largest value, in bytes, that `set` accepts. Larger values are refused with
    /// [`ErrorKind::CapacityExceeded`](crate::ErrorKind::CapacityExceeded).
    pub max_value_size: usize,
    /// Whether other processes see the entries (true for Redis, false for an in-process cache).
    pub shared: bool,
    /// Whether entries survive a restart of the process that wrote them.
    pub survives_restart: bool,
}

impl Capabilities {
    /// Capabilities of a process-local backend that holds values up to `max_value_size` bytes.
    pub const fn new(max_value_size: usize) -> Self {
        Self {
            max_value_size,
            shared: false,
            survives_restart: false,
        }
    }

    /// Sets whether other processes see the entries.
    #[must_use]
    pub const fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Sets whether entries survive a restart of the writing process.
    #[must_use]
    pub const fn survives_restart(mut self, survives: bool) -> Self {
        self.survives_restart = survives;
        self
    }
}
