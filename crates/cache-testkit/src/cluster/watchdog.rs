//! The process that cleans up after a cluster whose owner never drops it (a `static`): once the
//! owning process is gone it kills the nodes and removes their working directories, which a
//! `TempDir` in a `static` never does.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Polls `$1` (the owner's pid) once a second; then kills the pids and removes the directories
/// that follow, told apart by their form (a directory is an absolute path). The pause before the
/// removal lets the killed nodes stop writing into their directories.
const SCRIPT: &str = r#"parent=$1; shift
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for arg in "$@"; do case $arg in /*) ;; *) kill -9 "$arg" 2>/dev/null ;; esac; done
sleep 1
for arg in "$@"; do case $arg in /*) rm -rf -- "$arg" ;; esac; done"#;

/// Starts a watchdog for the nodes `pids`, working in `dirs`, of the process `owner`.
///
/// In a session of its own (`setsid`), so that killing the test's process group does not take
/// the watchdog with it; plain `sh` where `setsid` is missing.
pub(super) fn spawn(owner: u32, pids: &[u32], dirs: &[&Path]) -> io::Result<Child> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "watchdog".into(),
        owner.to_string().into(),
    ];
    args.extend(pids.iter().map(|pid| pid.to_string().into()));
    args.extend(dirs.iter().map(|dir| dir.as_os_str().to_owned()));
    let start = |program: &str, args: &[std::ffi::OsString]| {
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
    use std::process::Child;
    use std::time::{Duration, Instant};

    use super::*;

    fn sleeper() -> Child {
        Command::new("sleep").arg("600").spawn().unwrap()
    }

    #[test]
    fn once_the_owner_is_gone_the_nodes_are_killed_and_their_directories_removed() {
        let (mut owner, mut node) = (sleeper(), sleeper());
        let dir = tempfile::Builder::new()
            .prefix("aicache-watchdog-")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::write(dir.join("dump.rdb"), b"data").unwrap();
        let mut watchdog = spawn(owner.id(), &[node.id()], &[&dir]).unwrap();

        // While the owner lives, the watchdog leaves everything alone.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(node.try_wait().unwrap().is_none(), "node killed too early");
        assert!(dir.exists(), "directory removed too early");

        owner.kill().unwrap();
        owner.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && watchdog.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = node.try_wait().unwrap();
        let _ = node.kill();
        assert!(
            watchdog.try_wait().unwrap().is_some(),
            "the watchdog did not finish"
        );
        assert!(killed.is_some(), "the node outlived its owner");
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}
