//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! - `test`: makes sure `redis-server` exists (installing it with apt on Debian as root), then runs
//!   every test of the workspace, the top-level `tests/` included.
//! - `ci`: what `.ci/run` runs: `test`, then `cargo fmt --check`, the generated docs check, the
//!   MSRV check (no dependency declares a newer `rust-version`), clippy with warnings denied on
//!   all targets (workspace with all features, then the facade with no features, each feature
//!   alone), the memory-only builds' tests (no redis-rs pulled in), and `cargo doc` with warnings
//!   denied; each phase prints its time.
//! - `codegen [--check]`: regenerates `docs/configuration.md` (or checks it is current).
//! - `bench [--quick]`: the ratio report (`target/aicache-bench/report.json`) and the criterion
//!   micro-benches.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

type Outcome = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("ci") => ci(),
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        Some("codegen") => codegen(args.iter().any(|a| a == "--check")),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask <test | ci | bench [--quick] | codegen [--check]>".to_string()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command) -> Outcome {
    println!("$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

fn redis_server_version() -> Option<String> {
    let output = Command::new(redis_server_binary())
        .arg("--version")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Makes sure `redis-server` runs, installing it on Debian as root; otherwise fails and says how.
fn ensure_redis_server() -> Outcome {
    if let Some(version) = redis_server_version() {
        println!("xtask: using {version}");
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y redis-server";
    if !Path::new("/etc/debian_version").exists() || !is_root() {
        return Err(format!(
            "`{}` is missing and cannot be installed automatically here. Install it (Debian/Ubuntu, \
             as root: `{install}`), or point REDIS_SERVER_BIN at a redis-server binary.",
            redis_server_binary()
        ));
    }
    println!("xtask: redis-server is missing; installing it: {install}");
    let mut update = Command::new("apt-get");
    update.arg("update");
    run(update)?;
    let mut get = Command::new("apt-get");
    get.args(["install", "-y", "--no-install-recommends", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(get)?;
    // The package starts a system service on 6379; the tests never use it, so stop it if it runs.
    let _ = Command::new("service")
        .args(["redis-server", "stop"])
        .output();
    match redis_server_version() {
        Some(version) => {
            println!("xtask: installed {version}");
            Ok(())
        }
        None => Err(format!(
            "installing redis-server did not provide a working binary ({install})"
        )),
    }
}

/// The top-level test binaries, as cargo names them when it runs them.
const TOP_LEVEL_TESTS: [&str; 2] = ["tests/integration/main.rs", "tests/chaos/main.rs"];

fn test() -> Outcome {
    ensure_redis_server()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--locked"])
        .stderr(Stdio::piped());
    println!("$ {cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    // Cargo announces each test binary on stderr; pass it through and watch for the top-level one.
    let mut saw = [false; TOP_LEVEL_TESTS.len()];
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (seen, binary) in saw.iter_mut().zip(TOP_LEVEL_TESTS) {
                *seen |= line.contains("Running") && line.contains(binary);
            }
            eprintln!("{line}");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo test did not finish: {e}"))?;
    if !status.success() {
        return Err(format!("cargo test failed with {status}"));
    }
    let missing: Vec<&str> = TOP_LEVEL_TESTS
        .iter()
        .zip(saw)
        .filter(|(_, seen)| !seen)
        .map(|(binary, _)| *binary)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "cargo test passed but never ran the top-level tests {missing:?}"
        ));
    }
    println!(
        "xtask: all tests passed, including the top-level tests/ ({})",
        TOP_LEVEL_TESTS.join(", ")
    );
    Ok(())
}

/// Regenerates `docs/configuration.md` from cache-config (or, with `--check`, fails when it is
/// stale). The generator is a test of cache-config, so the check also runs with every test.
fn codegen(check: bool) -> Outcome {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "cache-config",
        "--lib",
        "--",
        "--exact",
        "reference::tests::docs_configuration_md_is_up_to_date",
    ]);
    if check {
        cmd.env_remove("UPDATE_CONFIG_DOCS");
    } else {
        cmd.env("UPDATE_CONFIG_DOCS", "1");
    }
    println!("$ {cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "docs/configuration.md is stale or its generator failed; run `cargo xtask codegen`\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // A renamed test would match nothing and pass vacuously: insist that it ran.
    if !stdout.contains("test result: ok. 1 passed") {
        return Err(format!("the docs generator test did not run:\n{stdout}"));
    }
    println!(
        "xtask: docs/configuration.md {}",
        if check {
            "is up to date"
        } else {
            "regenerated"
        }
    );
    Ok(())
}

/// The facade's features, checked one at a time (and all together, and none) by `ci`.
const FEATURES: [&str; 8] = [
    "memory",
    "redis",
    "ai",
    "config",
    "monitoring",
    "prometheus",
    "migrate",
    "bench",
];

/// What `.ci/run` runs: the tests first (the README's second command), then every habit the
/// project keeps, each a phase with its time.
fn ci() -> Outcome {
    phase("tests (cargo xtask test)", test)?;
    phase("format", || {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--check"]);
        run(fmt)
    })?;
    phase("generated docs", || codegen(true))?;
    phase("minimum supported Rust version", msrv)?;
    phase("clippy, workspace, all targets and features", || {
        clippy(&["--workspace", "--all-targets", "--all-features"])
    })?;
    phase("feature matrix (clippy on the facade)", || {
        clippy(&["-p", "aicache", "--all-targets", "--no-default-features"])?;
        for feature in FEATURES {
            clippy(&[
                "-p",
                "aicache",
                "--all-targets",
                "--no-default-features",
                "--features",
                feature,
            ])?;
        }
        Ok(())
    })?;
    phase(
        "memory-only builds pass their tests, without redis-rs",
        memory_only,
    )?;
    phase("charts without system libraries", no_font_libraries)?;
    phase("docs", || {
        let mut doc = cargo();
        doc.args([
            "doc",
            "--workspace",
            "--no-deps",
            "--locked",
            "--all-features",
        ])
        .env("RUSTDOCFLAGS", "-D warnings");
        run(doc)
    })
}

fn phase(name: &str, step: impl FnOnce() -> Outcome) -> Outcome {
    let started = std::time::Instant::now();
    println!("xtask: phase {name}");
    let outcome = step();
    println!(
        "xtask: phase {name}: {} in {:.0?}",
        if outcome.is_ok() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    outcome
}

fn clippy(args: &[&str]) -> Outcome {
    let mut clippy = cargo();
    clippy
        .arg("clippy")
        .args(args)
        .args(["--locked", "--", "-D", "warnings"]);
    run(clippy)
}

/// The memory-only builds (`memory` alone, `ai` without `redis`) pass the facade's tests and pull
/// in no redis-rs.
fn memory_only() -> Outcome {
    for feature in ["memory", "ai"] {
        let mut test = cargo();
        test.args([
            "test",
            "-p",
            "aicache",
            "--locked",
            "--no-default-features",
            "--features",
            feature,
        ]);
        run(test)?;
        let mut tree = cargo();
        tree.args([
            "tree",
            "-p",
            "aicache",
            "-e",
            "normal",
            "--locked",
            "--no-default-features",
            "--features",
            feature,
        ]);
        println!("$ {tree:?}");
        let output = tree
            .output()
            .map_err(|e| format!("cannot run {tree:?}: {e}"))?;
        let listing = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("{tree:?} failed"));
        }
        if let Some(line) = listing.lines().find(|l| l.contains(" redis v")) {
            return Err(format!(
                "the `{feature}`-only facade pulls in redis-rs: {}",
                line.trim()
            ));
        }
    }
    Ok(())
}

/// Checks that no dependency declares a `rust-version` newer than the workspace's (language
/// features are not checked: only one toolchain, stable, exists here).
/// `cache-bench` draws its SVG charts with plotters' SVG backend only: no font-kit, freetype or
/// fontconfig (system libraries) in its dependency tree.
fn no_font_libraries() -> Outcome {
    let mut tree = cargo();
    tree.args(["tree", "-p", "cache-bench", "-e", "normal", "--locked"]);
    let output = tree
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = ["font-kit", "freetype", "fontconfig", "yeslogic"]
        .into_iter()
        .filter(|name| text.contains(name))
        .collect();
    if found.is_empty() {
        println!("xtask: cache-bench depends on no font library");
        Ok(())
    } else {
        Err(format!("cache-bench pulls in {}", found.join(", ")))
    }
}

fn msrv() -> Outcome {
    let mut metadata = cargo();
    metadata.args(["metadata", "--format-version", "1", "--locked"]);
    let output = metadata
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed something else than JSON: {e}"))?;
    let ours = workspace_rust_version()?;
    let members: Vec<&str> = json["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let mut newer = Vec::new();
    for package in json["packages"].as_array().into_iter().flatten() {
        let id = package["id"].as_str().unwrap_or_default();
        let Some(theirs) = package["rust_version"].as_str() else {
            continue;
        };
        if !members.contains(&id) && version_key(theirs) > version_key(&ours) {
            newer.push(format!(
                "{} {} needs {theirs}",
                package["name"].as_str().unwrap_or("?"),
                package["version"].as_str().unwrap_or("?")
            ));
        }
    }
    if newer.is_empty() {
        println!("xtask: every dependency builds with rust-version {ours}");
        Ok(())
    } else {
        Err(format!(
            "dependencies need a newer Rust than the workspace's rust-version {ours}: {}",
            newer.join(", ")
        ))
    }
}

/// `rust-version` of `[workspace.package]` in the root `Cargo.toml`.
fn workspace_rust_version() -> Result<String, String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))
        .map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    manifest
        .lines()
        .find_map(|line| {
            let value = line.trim().strip_prefix("rust-version")?.trim();
            let value = value.strip_prefix('=')?.trim();
            Some(value.trim_matches('"').to_string())
        })
        .ok_or_else(|| "no rust-version in the root Cargo.toml".to_string())
}

/// `major.minor.patch` as numbers, a missing part counting as 0 (`1.88` is `1.88.0`).
fn version_key(version: &str) -> [u64; 3] {
    let mut parts = version.split('.').map(|part| part.parse().unwrap_or(0));
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

fn bench(quick: bool) -> Outcome {
    ensure_redis_server()?;
    let mut report = cargo();
    report.args([
        "bench",
        "-p",
        "aicache",
        "--features",
        "migrate",
        "--bench",
        "report",
        "--",
    ]);
    if quick {
        report.arg("--quick");
    }
    run(report)?;
    let mut criterion = cargo();
    criterion.args(["bench", "-p", "aicache", "--bench", "cache", "--"]);
    if quick {
        criterion.arg("--quick");
    }
    run(criterion)?;
    println!(
        "xtask: ratio report in {}",
        root().join("target/aicache-bench/report.json").display()
    );
    Ok(())
}
