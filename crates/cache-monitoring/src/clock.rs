//! The monitoring clock of latency windows, read on every recorded sample. Events people read
//! the time of (slow operations, breaker transitions, snapshots) take the wall clock itself.

use std::sync::LazyLock;

/// The wall clock when monitoring first read the time, and the monotonic instant it pairs with.
static BASE: LazyLock<(u64, quanta::Instant)> =
    LazyLock::new(|| (cache_core::unix_millis(), quanta::Instant::now()));

/// Milliseconds since the Unix epoch: the wall clock at the first call plus the TSC-backed
/// monotonic time since (a few nanoseconds a read, where the system clock costs about 25 on a
/// virtual machine). Never goes backwards; wall-clock steps after the first call are not seen,
/// which windows sliced in minutes do not mind.
pub(crate) fn now_ms() -> u64 {
    let (wall, instant) = *BASE;
    let elapsed = u64::try_from(instant.elapsed().as_millis()).unwrap_or(u64::MAX);
    wall.saturating_add(elapsed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn follows_the_wall_clock_and_never_goes_back() {
        let first = super::now_ms();
        let wall = cache_core::unix_millis();
        assert!(first.abs_diff(wall) < 1000, "{first} vs {wall}");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(super::now_ms() >= first + 5);
    }
}
