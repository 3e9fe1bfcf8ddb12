//! `aicache invalidate`: remove answers, or count them with `--dry-run`.

use std::io::{BufRead, IsTerminal, Write};

use aicache::{FrameStore, KeyPattern, WalkMode, escape_glob};
use serde_json::json;

use crate::InvalidateArgs;
use crate::context::Context;
use crate::exit::CliError;
use crate::output::Output;

pub(crate) async fn run(mut ctx: Context, args: InvalidateArgs) -> Result<Output, CliError> {
    if let Some(tenant) = &args.tenant {
        ctx.config.tenant = Some(tenant.clone());
    }
    let (pattern, what) = match (&args.operation, &args.pattern, args.all) {
        (Some(op), _, _) => {
            aicache::ai::validate_operation(op)?;
            (
                KeyPattern::new(format!("{}:*", escape_glob(op)))?,
                format!("operation {op}"),
            )
        }
        (_, Some(glob), _) => (KeyPattern::new(glob)?, format!("pattern {glob}")),
        _ => (KeyPattern::all(), "every answer".to_owned()),
    };
    let pattern = pattern.with_segments(2);
    if args.all && !args.yes && !args.dry_run {
        confirm()?;
    }
    let (store, namespace) = ctx.ai_store().await?;
    let l1_bound = ctx.config.l1_max_ttl;
    let note = format!(
        "other instances may still serve their L1 copies for up to l1_max_ttl ({l1_bound} s)"
    );
    if args.dry_run {
        let mut count = 0u64;
        let mut cursor = None;
        loop {
            let page = store.walk(&pattern, cursor, WalkMode::Keys).await?;
            count += page.entries.len() as u64;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        return Ok(Output::new(
            format!(
                "dry run: {count} entries of {what} in {namespace} would be removed; nothing was removed\n"
            ),
            json!({"ok": true, "dry_run": true, "namespace": namespace, "matched": count, "removed": 0, "pattern": pattern.as_str()}),
        ));
    }
    let cache = ctx.ai_cache(store).await?;
    let removed = match (&args.operation, &args.pattern) {
        (Some(op), _) => cache.invalidate_by_operation(op).await?,
        (_, Some(glob)) => cache.invalidate_pattern(glob).await?,
        _ => cache.invalidate_all().await?,
    };
    Ok(Output::new(
        format!("removed {removed} entries of {what} in {namespace}; {note}\n"),
        json!({"ok": true, "dry_run": false, "namespace": namespace, "removed": removed, "pattern": pattern.as_str(), "note": note}),
    ))
}

/// Asks before `--all` on a terminal; refuses without one.
fn confirm() -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "--all removes every answer: add --yes (stdin is not a terminal to ask on)",
        ));
    }
    eprint!("Remove every answer of the namespace? Type 'yes' to go on: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::usage("not confirmed; nothing was removed"))
    }
}
