//! Resharding a test cluster: adding a primary, and moving a slot with its keys between
//! primaries as `redis-cli --cluster reshard` does (`IMPORTING`/`MIGRATING`, `MIGRATE`, then
//! `SETSLOT … NODE`).

use std::time::{Duration, Instant};

use super::{ADMIN_PASSWORD, ADMIN_USER, READY_TIMEOUT, RedisCluster, node_config};
use crate::server::RedisServer;

impl RedisCluster {
    /// Starts one more node and joins it as a primary that serves no slot yet, as a scale-out
    /// begins (move slots to it with [`move_slot`](Self::move_slot)); its port, once every node
    /// knows it and it reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When the node does not start or join within 60 s.
    pub fn add_primary(&mut self) -> u16 {
        let node = node_config(self.user.as_ref(), self.tls.as_ref())
            .and_then(RedisServer::try_start)
            .unwrap_or_else(|e| panic!("{e}"));
        let port = node.port();
        let existing = self.primary_ports()[0];
        self.nodes.push(node);
        self.watch(self.nodes.len() - 1);
        let (new, existing) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{existing}"));
        self.cli(&["--cluster", "add-node", &new, &existing])
            .unwrap_or_else(|e| panic!("redis-cli --cluster add-node failed: {e}"));
        let deadline = Instant::now() + READY_TIMEOUT;
        let known_by_all = || {
            let ready = self
                .cli(&["-p", &port.to_string(), "cluster", "info"])
                .is_ok_and(|info| info.contains("cluster_state:ok"));
            ready
                && self.live_nodes().all(|n| {
                    self.cli(&["-p", &n.port().to_string(), "cluster", "nodes"])
                        .is_ok_and(|text| {
                            text.lines()
                                .any(|l| l.contains(&format!("{new}@")) && l.contains("master"))
                        })
                })
        };
        while !known_by_all() {
            assert!(
                Instant::now() < deadline,
                "node {new} did not join the cluster"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        port
    }

    /// Starts moving `slot` from the primary on `from` to the one on `to` (`IMPORTING` on `to`,
    /// then `MIGRATING` on `from`): from now on, `from` answers `ASK` for the slot's keys it no
    /// longer holds.
    ///
    /// # Panics
    /// When a node refuses.
    pub fn begin_slot_move(&self, slot: u16, from: u16, to: u16) {
        let slot = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        for (port, state, id) in [(to, "importing", from_id), (from, "migrating", to_id)] {
            self.setslot(port, &[&slot, state, &id])
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {state} failed: {e}"));
        }
    }

    /// Moves the keys of `slot` that the primary on `from` still holds to the one on `to`
    /// (`MIGRATE`), during a move [`begin_slot_move`](Self::begin_slot_move) started.
    ///
    /// # Panics
    /// When a node refuses.
    pub fn migrate_slot_keys(&self, slot: u16, from: u16, to: u16) {
        let (from_port, slot) = (from.to_string(), slot.to_string());
        loop {
            let keys = self
                .cli(&["-p", &from_port, "cluster", "getkeysinslot", &slot, "100"])
                .unwrap_or_else(|e| panic!("CLUSTER GETKEYSINSLOT failed: {e}"));
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                return;
            }
            let to_port = to.to_string();
            let mut args = vec!["-p", &from_port, "migrate", "127.0.0.1", &to_port, "", "0"];
            args.push("5000");
            if self.user.is_some() {
                args.extend(["AUTH2", ADMIN_USER, ADMIN_PASSWORD]);
            }
            args.push("KEYS");
            args.extend(keys);
            let reply = self
                .cli(&args)
                .unwrap_or_else(|e| panic!("MIGRATE failed: {e}"));
            // redis-cli exits 0 on an error reply: without this check a refused MIGRATE
            // would loop forever on the same keys.
            assert!(
                matches!(reply.trim(), "OK" | "NOKEY"),
                "MIGRATE answered {reply:?}"
            );
        }
    }

    /// Ends a move: every primary learns that `to` serves `slot` (`CLUSTER SETSLOT … NODE`).
    ///
    /// # Panics
    /// When a node refuses.
    pub fn finish_slot_move(&self, slot: u16, from: u16, to: u16) {
        let (slot, to_id) = (slot.to_string(), self.node_id(to));
        // The destination first, then the source, as Redis's resharding does.
        let mut ports = vec![to, from];
        ports.extend(
            self.primary_ports()
                .into_iter()
                .filter(|p| ![to, from].contains(p)),
        );
        for port in ports {
            self.setslot(port, &[&slot, "node", &to_id])
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT NODE failed: {e}"));
        }
    }

    /// Moves `slot` and its keys from the primary on `from` to the one on `to`, as a resharding
    /// does: clients that still send its keys to `from` get `MOVED`.
    ///
    /// # Panics
    /// When a node refuses.
    pub fn move_slot(&self, slot: u16, from: u16, to: u16) {
        self.begin_slot_move(slot, from, to);
        self.migrate_slot_keys(slot, from, to);
        self.finish_slot_move(slot, from, to);
    }

    /// The slot of the Redis key `redis_key`, the primary serving it, and another primary to
    /// move it to.
    ///
    /// # Panics
    /// When the cluster has a single primary.
    pub fn slot_move_for(&self, redis_key: &str) -> (u16, u16, u16) {
        let (slot, from) = (self.slot_of(redis_key), self.primary_for(redis_key));
        let to = self
            .primary_ports()
            .into_iter()
            .find(|&p| p != from)
            .unwrap_or_else(|| panic!("no other primary to move slot {slot} to"));
        (slot, from, to)
    }

    /// `CLUSTER SETSLOT args…` on the node on `port`.
    fn setslot(&self, port: u16, args: &[&str]) -> Result<String, crate::LaunchError> {
        let port = port.to_string();
        let mut full = vec!["-p", &port, "cluster", "setslot"];
        full.extend_from_slice(args);
        self.cli(&full)
    }
}
