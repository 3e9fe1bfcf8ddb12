//! Spare handles of the shared connection, kept per thread.
//!
//! Every command needs a handle of its own (redis-rs's connections take `&mut self`), and cloning
//! the shared one bumps three reference counts that every core shares; dropping it decrements
//! them again. With 50 tasks reading one server, those cache lines bounce between cores on every
//! command (about 8 % of the generic L2 read's client samples, `docs/performance.md`). A call
//! takes a spare its thread kept instead, and gives it back when its command is over, so the
//! counts move only when a thread has none to spare.
//!
//! Spares belong to one generation of the connection, the one installed now: installing a new
//! one drops every thread's spares, and a handle of an older generation is never kept nor handed
//! out (both checked under the thread's lock, which the drop also takes), so a replaced
//! connection closes once its last in-flight command ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use thread_local::ThreadLocal;

use crate::breaker::lock;
use crate::hot::HotConnection;

/// Spares one thread keeps at most: about the commands in flight at once on one core.
pub(crate) const SPARES_PER_THREAD: usize = 64;

/// Per-thread spare handles of one link's connection, and that connection's generation.
#[derive(Default)]
pub(crate) struct Spares {
    /// The installed connection's generation.
    generation: AtomicU64,
    per_thread: ThreadLocal<ThreadSpares>,
}

/// One thread's spares. Locked only by its own thread but for [`Spares::install`], so never
/// contended on the read path; aligned to its own cache lines, since `ThreadLocal` lays the
/// threads' values side by side and a lock sharing a line with another thread's would bounce
/// between cores as the reference counts did.
#[derive(Default)]
#[repr(align(128))]
struct ThreadSpares(Mutex<Vec<HotConnection>>);

impl ThreadSpares {
    fn lock(&self) -> MutexGuard<'_, Vec<HotConnection>> {
        // A `Vec` of handles is consistent whatever panicked while it was locked.
        lock(&self.0)
    }
}

impl Spares {
    /// The installed connection's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A spare handle of the connection of `generation`, if this thread kept one and that
    /// connection is still the installed one.
    pub(crate) fn take(&self, generation: u64) -> Option<HotConnection> {
        let mut spares = self.per_thread.get()?.lock();
        if self.generation() != generation {
            return None;
        }
        spares.pop()
    }

    /// Keeps `connection`, a handle of the connection of `generation`, for this thread's next
    /// call; dropped when that connection was replaced meanwhile, or when the thread keeps
    /// [`SPARES_PER_THREAD`] already.
    pub(crate) fn give_back(&self, generation: u64, connection: HotConnection) {
        let mut spares = self.per_thread.get_or_default().lock();
        if self.generation() == generation && spares.len() < SPARES_PER_THREAD {
            spares.push(connection);
        }
    }

    /// Makes `generation` the installed one and drops every thread's spares (of the replaced
    /// connection). The generation never moves backwards.
    pub(crate) fn install(&self, generation: u64) {
        self.generation.fetch_max(generation, Ordering::AcqRel);
        for spares in self.per_thread.iter() {
            let dropped = std::mem::take(&mut *spares.lock());
            drop(dropped);
        }
    }

    /// Spares kept by every thread together.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.per_thread
            .iter()
            .map(|spares| spares.lock().len())
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
    async fn a_handle_of_a_replaced_connection_is_neither_kept_nor_handed_out() {
        let server = RedisServer::start(ServerConfig::default());
        let connection = handle(&server).await;
        let spares = Spares::default();
        spares.give_back(0, connection.clone());
        assert!(
            spares.take(1).is_none(),
            "generation 1 is not installed yet"
        );
        spares.install(1);
        assert_eq!(
            spares.len(),
            0,
            "installing dropped the spare of generation 0"
        );
        // A call that was in flight across the install gives its handle back late.
        spares.give_back(0, connection.clone());
        assert_eq!(spares.len(), 0, "a late handle of generation 0 is not kept");
        assert!(spares.take(0).is_none(), "nor handed out for generation 0");
        spares.give_back(1, connection);
        assert!(spares.take(1).is_some());
        spares.install(0);
        assert_eq!(
            spares.generation(),
            1,
            "the generation never moves backwards"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn install_drops_the_spares_of_every_thread() {
        let server = RedisServer::start(ServerConfig::default());
        let connection = handle(&server).await;
        let spares = Spares::default();
        spares.give_back(0, connection.clone());
        std::thread::scope(|scope| {
            scope.spawn(|| spares.give_back(0, connection.clone()));
        });
        assert_eq!(spares.len(), 2, "one spare on each of two threads");
        spares.install(1);
        assert_eq!(spares.len(), 0);
        assert!(spares.take(1).is_none());
    }
}
