//! A latency histogram that forgets: samples older than the retention window stop counting.

use crate::clock::now_ms;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How many slices the retention window is cut into; a sample leaves the window one slice at a time.
const SLICES: u64 = 6;
/// The largest value recorded, in microseconds (one hour); larger values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;
/// Significant digits kept: values are exact to 1 % (a percentile of 1,000 µs is 990..=1,010).
const SIGNIFICANT_DIGITS: u8 = 2;

/// The most memory one window's histograms take, in bytes: every slice allocated, 32-bit counts
/// (about 13 KB a slice). Slices are allocated when first written, so an idle window costs
/// nothing and one written for a minute costs one slice.
pub const MAX_WINDOW_BYTES: usize = 6 * 14 * 1024;

/// A thread-safe latency window: record durations, read a [`LatencySummary`] of the last
/// `retention`.
///
/// ```
/// use std::time::Duration;
/// use cache_monitoring::LatencyWindow;
///
/// let window = LatencyWindow::new(Duration::from_secs(3600));
/// window.record(Duration::from_micros(250));
/// assert_eq!(window.summary().count, 1);
/// ```
pub struct LatencyWindow {
    histogram: std::sync::Mutex<WindowedHistogram>,
}

impl std::fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyWindow")
            .field("summary", &self.summary())
            .finish()
    }
}

impl LatencyWindow {
    /// A window over the last `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            histogram: std::sync::Mutex::new(WindowedHistogram::new(retention)),
        }
    }

    /// Records one duration.
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(now_ms(), micros);
    }

    /// Forgets every sample (and frees the slices).
    pub fn clear(&self) {
        self.histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The durations recorded within the window.
    pub fn summary(&self) -> LatencySummary {
        self.histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .summary(now_ms())
    }
}

/// A windowed histogram of microsecond values with two significant digits, one lazily
/// allocated histogram per slice.
pub(crate) struct WindowedHistogram {
    slice_ms: u64,
    slices: Vec<(u64, Option<Histogram<u32>>)>,
}

/// Summary statistics of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Samples in the window.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Smallest.
    pub min_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

fn empty() -> Option<Histogram<u32>> {
    Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS).ok()
}

impl WindowedHistogram {
    pub(crate) fn new(retention: Duration) -> Self {
        let retention_ms = u64::try_from(retention.as_millis())
            .unwrap_or(u64::MAX)
            .max(SLICES);
        Self {
            slice_ms: retention_ms / SLICES,
            slices: Vec::new(),
        }
    }

    /// Records `value_us` at time `now_ms`.
    pub(crate) fn record(&mut self, now_ms: u64, value_us: u64) {
        let slice = now_ms / self.slice_ms;
        if self.slices.is_empty() {
            self.slices = (0..SLICES).map(|_| (u64::MAX, None)).collect();
        }
        let Some(index) = usize::try_from(slice % SLICES).ok() else {
            return;
        };
        let Some((slot, histogram)) = self.slices.get_mut(index) else {
            return;
        };
        if *slot != slice {
            if let Some(h) = histogram {
                h.reset();
            }
            *slot = slice;
        }
        if histogram.is_none() {
            *histogram = empty();
        }
        if let Some(h) = histogram {
            h.saturating_record(value_us.clamp(1, MAX_MICROS));
        }
    }

    /// The samples recorded within the window ending at `now_ms`, merged.
    pub(crate) fn merged(&self, now_ms: u64) -> Option<Histogram<u32>> {
        let current = now_ms / self.slice_ms;
        let mut merged = empty()?;
        for (slot, histogram) in &self.slices {
            if let Some(histogram) = histogram
                && *slot != u64::MAX
                && current.saturating_sub(*slot) < SLICES
            {
                merged.add(histogram).ok()?;
            }
        }
        Some(merged)
    }

    /// Bytes the allocated slices take (their counts).
    #[cfg(test)]
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.slices
            .iter()
            .filter_map(|(_, h)| h.as_ref())
            .map(|h| h.distinct_values() * std::mem::size_of::<u32>())
            .sum()
    }

    /// The summary of the window ending at `now_ms`.
    pub(crate) fn summary(&self, now_ms: u64) -> LatencySummary {
        match self.merged(now_ms).filter(|h| !h.is_empty()) {
            Some(h) => LatencySummary {
                count: h.len(),
                mean_us: h.mean(),
                min_us: h.min(),
                max_us: h.max(),
                p50_us: h.value_at_quantile(0.5),
                p95_us: h.value_at_quantile(0.95),
                p99_us: h.value_at_quantile(0.99),
            },
            None => LatencySummary {
                count: 0,
                mean_us: 0.0,
                min_us: 0,
                max_us: 0,
                p50_us: 0,
                p95_us: 0,
                p99_us: 0,
            },
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slices.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_precision() {
        let mut h = WindowedHistogram::new(Duration::from_secs(3600));
        for v in 1..=1000 {
            h.record(1_000, v);
        }
        let s = h.summary(1_000);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert!((1000..=1010).contains(&s.max_us), "within 1 %: {s:?}");
        assert!((495..=505).contains(&s.p50_us), "{s:?}");
        assert!((940..=960).contains(&s.p95_us), "{s:?}");
        assert!((980..=1000).contains(&s.p99_us), "{s:?}");
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut h = WindowedHistogram::new(Duration::from_secs(12));
        h.record(0, 100);
        h.record(6_000, 200);
        assert_eq!(h.summary(6_000).count, 2);
        assert_eq!(
            h.summary(12_500).count,
            1,
            "the first slice left the window"
        );
        assert_eq!(h.summary(30_000).count, 0);
        h.record(30_000, 5);
        assert_eq!(h.summary(30_000).max_us, 5, "a reused slice starts empty");
    }

    #[test]
    fn memory_is_allocated_by_slice_and_bounded() {
        let mut h = WindowedHistogram::new(Duration::from_secs(3600));
        assert_eq!(h.allocated_bytes(), 0, "an idle window costs nothing");
        h.record(0, 10);
        let one = h.allocated_bytes();
        assert!(one > 0 && one <= MAX_WINDOW_BYTES / 6, "{one}");
        for minute in 0..60 {
            h.record(minute * 60_000, 10);
        }
        assert!(
            h.allocated_bytes() <= MAX_WINDOW_BYTES,
            "{}",
            h.allocated_bytes()
        );
    }

    #[test]
    fn empty_is_well_formed() {
        let h = WindowedHistogram::new(Duration::from_secs(60));
        assert_eq!(h.summary(0).count, 0);
    }
}
