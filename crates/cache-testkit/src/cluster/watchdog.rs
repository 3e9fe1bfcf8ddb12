//! The process that cleans up after a cluster whose owner never drops it (a `static`): once the
//! owning process is gone it kills the nodes and removes their working directories, which a
//! `TempDir` in a `static` never does.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Arguments: the owner's pid, the nodes' pids, `--`, their directories. Polls the owner once a
/// second; then kills the nodes, waits (at most 5 s in all) until each is gone, so that none
/// writes into a directory being removed, and removes the directories.
const SCRIPT: &str = r#"owner=$1; shift
pids=
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do pids="$pids $1"; shift; done
[ "$#" -gt 0 ] && shift
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
[ -n "$pids" ] && kill -9 $pids 2>/dev/null
tries=0
for pid in $pids; do
  while [ "$tries" -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1; tries=$((tries + 1))
  done
done
rm -rf -- "$@""#;

/// Starts a watchdog for the nodes `pids`, working in `dirs`, of the process `owner`.
///
/// In a session of its own (`setsid`), so that killing the test's process group does not take
/// the watchdog with it; plain `sh` where `setsid` is missing.
pub(super) fn spawn(owner: u32, pids: &[u32], dirs: &[&Path]) -> io::Result<Child> {
    let mut args: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "watchdog".into(),
        owner.to_string().into(),
    ];
    args.extend(pids.iter().map(|pid| pid.to_string().into()));
    args.push("--".into());
    args.extend(dirs.iter().map(|dir| dir.as_os_str().to_owned()));
    let start = |program: &str, args: &[OsString]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    start("setsid", &args).or_else(|_| start("sh", &args[1..]))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A child process killed when dropped, so that a failed assertion leaves none behind.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sleeper() -> Reaped {
        Reaped(Command::new("sleep").arg("600").spawn().unwrap())
    }

    #[test]
    fn once_the_owner_is_gone_the_nodes_are_killed_and_their_directories_removed() {
        let (mut owner, mut node) = (sleeper(), sleeper());
        // A space in the path: the directories reach the script as arguments, never as text.
        let dir = tempfile::Builder::new()
            .prefix("aicache watchdog ")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("dump.rdb"), b"data").unwrap();
        let mut watchdog = Reaped(spawn(owner.0.id(), &[node.0.id()], &[dir.path()]).unwrap());

        // While the owner lives, the watchdog (polling it once a second) leaves everything alone.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            watchdog.0.try_wait().unwrap().is_none(),
            "the watchdog quit"
        );
        assert!(
            node.0.try_wait().unwrap().is_none(),
            "node killed too early"
        );
        assert!(dir.path().exists(), "directory removed too early");

        owner.0.kill().unwrap();
        owner.0.wait().unwrap();
        // The node is this process's child, a zombie until reaped here: the watchdog waits out its
        // 5 s for it before removing the directory.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && watchdog.0.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            watchdog.0.try_wait().unwrap().is_some(),
            "the watchdog did not finish"
        );
        assert!(
            node.0.try_wait().unwrap().is_some(),
            "the node outlived its owner"
        );
        assert!(
            !dir.path().exists(),
            "{} was left behind",
            dir.path().display()
        );
    }
}
