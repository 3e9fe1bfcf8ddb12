//! `aicache`: the operators' command-line tool, on the facade.
//!
//! Every command reads the configuration the services read (`--config FILE`, then `AICACHE_*`,
//! then `--redis-url` / `--password-file`), prints a summary (or one JSON document on stdout with
//! `--json`), shows progress bars on stderr when it is a terminal, and exits with a documented
//! code: 0 ok, 1 failure, 2 usage or configuration error, 3 Redis unreachable, 4 refused by
//! authentication or TLS.
#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod commands;
mod context;
mod exit;
mod output;

use context::Context;
use exit::CliError;

/// Operate the aicache caches of a service: see what they hold, remove answers, back up,
/// restore, migrate, import the Python service's entries, benchmark, and check configuration
/// and security.
#[derive(Debug, Parser)]
#[command(name = "aicache", version, about)]
struct Cli {
    /// A configuration file (TOML, YAML or JSON), layered under `AICACHE_*`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The Redis URL (overrides the configuration; put no password in it: see --password-file).
    #[arg(long, global = true, value_name = "URL")]
    redis_url: Option<String>,
    /// The seed nodes of a Redis Cluster, comma-separated (overrides the configuration; no
    /// passwords in them either).
    #[arg(long, global = true, value_name = "URLS", value_delimiter = ',')]
    redis_cluster_urls: Vec<String>,
    /// A file holding the Redis password (secrets never go on the command line).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What Redis holds per operation (from a SCAN sample), TTL spread and server memory.
    Stats {
        /// Entries sampled at most.
        #[arg(long, default_value_t = 10_000)]
        sample: u64,
        /// Refresh every SECONDS until interrupted (with --json, one document per line).
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
    },
    /// Remove answers: one operation's, those matching a glob, or all of them.
    Invalidate(InvalidateArgs),
    /// Back the AI namespace up into FILE.
    Backup {
        /// The backup file (written to a temporary file, then renamed).
        file: PathBuf,
        /// Only keys matching this glob (over `{operation}:{digest}`).
        #[arg(long)]
        pattern: Option<String>,
    },
    /// Restore a backup into the AI namespace.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// What to do with keys Redis already holds.
        #[arg(long, value_enum, default_value_t = Policy::SkipExisting)]
        policy: Policy,
    },
    /// Copy the AI namespace from one configuration's Redis to another's.
    Migrate {
        /// The source's configuration file.
        #[arg(long, value_name = "FILE")]
        from_config: PathBuf,
        /// The target's configuration file.
        #[arg(long, value_name = "FILE")]
        to_config: PathBuf,
        /// Compare both sides afterwards.
        #[arg(long)]
        verify: bool,
    },
    /// Import the Python service's entries (never its pickles) into the AI namespace.
    ImportLegacy {
        /// The Python service's key prefix.
        #[arg(long, default_value = "ai_cache")]
        prefix: String,
        /// The text-hash threshold its keys were built with (1000, or 500 through its factory).
        #[arg(long, default_value_t = 1000)]
        threshold: usize,
        /// A file holding its REDIS_ENCRYPTION_KEY (Fernet), if it encrypted.
        #[arg(long, value_name = "FILE")]
        fernet_key_file: Option<PathBuf>,
    },
    /// Move a tenant's entries from aicache 0.1's layout to the disjoint one.
    ConvertNamespaces,
    /// Run the benchmark suite against the configured Redis.
    Bench {
        /// The preset (thresholds and iterations).
        #[arg(long, default_value = "ci")]
        preset: String,
        /// A saved `bench.json` to check for regressions against.
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
        /// Where bench.json, bench.md and bench.svg go.
        #[arg(long, value_name = "DIR", default_value = "aicache-bench")]
        out: PathBuf,
    },
    /// Check, print or document the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Security checks.
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Whether Redis answers, the breaker and the replay queue.
    Health,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(false).args(["operation", "pattern", "all"])))]
struct InvalidateArgs {
    /// Every answer of this operation.
    #[arg(long)]
    operation: Option<String>,
    /// Every answer whose key (`{operation}:{digest}`) matches this glob.
    #[arg(long)]
    pattern: Option<String>,
    /// Every answer of the namespace.
    #[arg(long)]
    all: bool,
    /// The tenant whose namespace is meant.
    #[arg(long)]
    tenant: Option<String>,
    /// Count what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before `--all`.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    SkipExisting,
    Overwrite,
    OverwriteIfNewer,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print every finding (field, value, allowed range, fix); exit 2 on errors.
    Validate,
    /// Print the effective configuration, secrets redacted.
    Show,
    /// List the presets and why they are set as they are.
    Presets,
    /// Print the reference of every setting (Markdown).
    Docs,
}

#[derive(Debug, Subcommand)]
enum SecurityCommand {
    /// Probe the server: TLS, certificates, the user, dangerous commands; a score out of 100.
    Check,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let wants_json = std::env::args().any(|a| a == "--json");
            if wants_json && e.use_stderr() {
                return exit::report(&CliError::usage(e.to_string().trim().to_owned()), true);
            }
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return exit::report(&CliError::failure(format!("cannot start: {e}")), json),
    };
    match runtime.block_on(run(cli)) {
        Ok(out) => {
            out.print(json);
            ExitCode::SUCCESS
        }
        Err(e) => exit::report(&e, json),
    }
}

async fn run(cli: Cli) -> Result<output::Output, CliError> {
    let ctx = Context::load(
        cli.config.as_deref(),
        (cli.redis_url.as_deref(), &cli.redis_cluster_urls),
        cli.password_file.as_deref(),
        cli.json,
    )?;
    match cli.command {
        Command::Stats { sample, watch } => commands::stats::run(&ctx, sample, watch).await,
        Command::Invalidate(args) => commands::invalidate::run(ctx, args).await,
        Command::Backup { file, pattern } => {
            commands::transfer::backup(&ctx, &file, pattern.as_deref()).await
        }
        Command::Restore { file, policy } => commands::transfer::restore(&ctx, &file, policy).await,
        Command::Migrate {
            from_config,
            to_config,
            verify,
        } => commands::transfer::migrate(&ctx, &from_config, &to_config, verify).await,
        Command::ImportLegacy {
            prefix,
            threshold,
            fernet_key_file,
        } => commands::legacy::import(&ctx, &prefix, threshold, fernet_key_file.as_deref()).await,
        Command::ConvertNamespaces => commands::legacy::convert(&ctx).await,
        Command::Bench {
            preset,
            compare,
            out,
        } => commands::bench::run(&ctx, &preset, compare.as_deref(), &out).await,
        Command::Config(sub) => commands::config::run(&ctx, &sub),
        Command::Security(SecurityCommand::Check) => commands::health::security(&ctx).await,
        Command::Health => commands::health::health(&ctx).await,
    }
}
