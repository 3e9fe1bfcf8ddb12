//! Time-to-live values.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// A validated time-to-live: at least one millisecond, at most [`Ttl::MAX`].
///
/// Every cache entry expires; there is no "forever". A TTL is stored with millisecond precision.
///
/// ```
/// use cache_core::Ttl;
/// use std::time::Duration;
///
/// let ttl = Ttl::from_secs(3600)?;
/// assert_eq!(ttl.as_duration(), Duration::from_secs(3600));
/// assert!(Ttl::from_secs(0).is_err());
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(Duration);

impl Ttl {
    /// The longest TTL accepted: ten years.
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Validates `duration` as a TTL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the duration is under one millisecond or above [`Ttl::MAX`].
    pub fn new(duration: Duration) -> Result<Self> {
        if duration < Duration::from_millis(1) || duration > Self::MAX {
            return Err(Error::new(ErrorKind::InvalidInput, "TTL out of range")
                .with_context("field", "ttl")
                .with_context("value", format!("{duration:?}"))
                .with_context("allowed", "1 ms ..= 10 years"));
        }
        Ok(Self(duration))
    }

    /// A TTL of `secs` seconds.
    ///
    /// # Errors
    /// As [`Ttl::new`].
    pub fn from_secs(secs: u64) -> Result<Self> {
        Self::new(Duration::from_secs(secs))
    }

    /// A TTL of `millis` milliseconds.
    ///
    /// # Errors
    /// As [`Ttl::new`].
    pub fn from_millis(millis: u64) -> Result<Self> {
        Self::new(Duration::from_millis(millis))
    }

    /// The TTL as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// The TTL in whole milliseconds (never zero).
    pub fn as_millis(self) -> u64 {
        // Bounded by Ttl::MAX, which is far below u64::MAX milliseconds.
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The shorter of two TTLs.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        if other.0 < self.0 { other } else { self }
    }
}

impl fmt::Debug for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ttl({:?})", self.0)
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = Error;
    fn try_from(value: Duration) -> Result<Self> {
        Self::new(value)
    }
}

impl From<Ttl> for Duration {
    fn from(value: Ttl) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Ttl::new(Duration::from_micros(999)).is_err());
        assert_eq!(Ttl::from_millis(1).unwrap().as_millis(), 1);
        assert!(Ttl::new(Ttl::MAX).is_ok());
        let err = Ttl::new(Ttl::MAX + Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("field: ttl"));
    }

    #[test]
    fn min_picks_shorter() {
        let a = Ttl::from_secs(5).unwrap();
        let b = Ttl::from_secs(3).unwrap();
        assert_eq!(a.min(b), b);
        assert_eq!(b.min(a), b);
    }
}
