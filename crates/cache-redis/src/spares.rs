//! Spare handles of the shared connection, kept per thread.
//!
//! Every command needs a handle of its own (redis-rs's connections take `&mut self`), and cloning
//! the shared one bumps three reference counts that every core shares; dropping it decrements
//! them again. With 50 tasks reading, those cache lines bounce between cores on every command
//! (about 3 % of an L2 read's CPU). A call takes a spare its thread kept instead, and gives it
//! back when its command is over, so the counts move only when a thread has none to spare.
//!
//! Each spare is tagged with the generation of the connection it handles: a spare of a replaced
//! connection is never handed out, and installing a new connection drops every thread's spares
//! (so a replaced connection is closed once its last in-flight command ends).

use std::sync::Mutex;

use thread_local::ThreadLocal;

use crate::hot::HotConnection;

/// Spares one thread keeps at most: about the commands in flight at once on one core.
pub(crate) const SPARES_PER_THREAD: usize = 64;

/// Per-thread spare handles of one link's connection.
#[derive(Default)]
pub(crate) struct Spares {
    per_thread: ThreadLocal<ThreadSpares>,
}

/// One thread's spares, tagged with their generation. Locked only by its own thread but for
/// [`Spares::clear`], so never contended on the read path; aligned to its own cache lines, since
/// `ThreadLocal` lays the threads' values side by side and a lock sharing a line with another
/// thread's would bounce between cores as the reference counts did.
#[derive(Default)]
#[repr(align(128))]
struct ThreadSpares(Mutex<Vec<(u64, HotConnection)>>);

impl Spares {
    /// A spare handle of the connection of `generation`, if this thread kept one. Spares of
    /// other generations met on the way are dropped.
    pub(crate) fn take(&self, generation: u64) -> Option<HotConnection> {
        let mut spares = self.per_thread.get()?.0.lock().ok()?;
        while let Some((tagged, connection)) = spares.pop() {
            if tagged == generation {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection`, a handle of the connection of `generation`, for this thread's next
    /// call (dropped when the thread keeps [`SPARES_PER_THREAD`] already).
    pub(crate) fn give_back(&self, generation: u64, connection: HotConnection) {
        let Ok(mut spares) = self.per_thread.get_or_default().0.lock() else {
            return;
        };
        if spares.len() < SPARES_PER_THREAD {
            spares.push((generation, connection));
        }
    }

    /// Drops every thread's spares (a new connection was installed).
    pub(crate) fn clear(&self) {
        for spares in self.per_thread.iter() {
            let dropped = match spares.0.lock() {
                Ok(mut spares) => std::mem::take(&mut *spares),
                Err(_) => continue,
            };
            drop(dropped);
        }
    }

    /// Spares kept by every thread together.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.per_thread
            .iter()
            .map(|spares| spares.0.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_testkit::{RedisServer, ServerConfig};

    async fn handle(server: &RedisServer) -> HotConnection {
        let client = redis::Client::open(server.url()).unwrap();
        HotConnection::Single(client.get_multiplexed_async_connection().await.unwrap())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_thread_takes_back_what_it_gave_and_keeps_at_most_its_share() {
        let server = RedisServer::start(ServerConfig::default());
        let connection = handle(&server).await;
        let spares = Spares::default();
        assert!(spares.take(0).is_none(), "nothing given back yet");
        for _ in 0..SPARES_PER_THREAD + 10 {
            spares.give_back(0, connection.clone());
        }
        assert_eq!(spares.len(), SPARES_PER_THREAD);
        let mut taken = spares.take(0).expect("a spare of generation 0");
        let pong: String = redis::cmd("PING").query_async(&mut taken).await.unwrap();
        assert_eq!(pong, "PONG", "a spare handles the live connection");
        assert_eq!(spares.len(), SPARES_PER_THREAD - 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_spare_of_another_generation_is_dropped_not_handed_out() {
        let server = RedisServer::start(ServerConfig::default());
        let connection = handle(&server).await;
        let spares = Spares::default();
        spares.give_back(0, connection.clone());
        spares.give_back(1, connection.clone());
        spares.give_back(0, connection);
        assert!(
            spares.take(1).is_some(),
            "the generation-1 spare, under the newer 0"
        );
        assert!(
            spares.take(1).is_none(),
            "only generation-0 spares were left"
        );
        assert_eq!(spares.len(), 0, "the stale spares met on the way are gone");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn clear_drops_the_spares_of_every_thread() {
        let server = RedisServer::start(ServerConfig::default());
        let connection = handle(&server).await;
        let spares = Spares::default();
        spares.give_back(0, connection.clone());
        std::thread::scope(|scope| {
            scope.spawn(|| spares.give_back(0, connection.clone()));
        });
        assert_eq!(spares.len(), 2, "one spare on each of two threads");
        spares.clear();
        assert_eq!(spares.len(), 0);
        assert!(spares.take(0).is_none());
    }
}
