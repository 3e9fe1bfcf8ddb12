//! `aicache backup`, `restore` and `migrate`.

use std::path::Path;

use aicache::KeyPattern;
use aicache::migrate::{
    CacheMigrationManager, Progress, ProgressSink, RestorePolicy, VerifyOptions,
};
use serde_json::json;

use crate::Policy;
use crate::context::Context;
use crate::exit::{CliError, FAILURE};
use crate::output::{Output, progress};

fn manager(ctx: &Context, what: &str) -> (CacheMigrationManager, Option<indicatif::ProgressBar>) {
    let bar = progress(ctx.json, what, None);
    let manager = match &bar {
        Some(bar) => {
            let bar = bar.clone();
            CacheMigrationManager::new().with_progress(ProgressSink::new(move |p: &Progress| {
                if let Some(total) = p.estimated_bytes.or(p.estimated_entries) {
                    bar.set_length(total);
                }
                bar.set_position(if p.estimated_bytes.is_some() {
                    p.bytes
                } else {
                    p.entries
                });
            }))
        }
        None => CacheMigrationManager::new(),
    };
    (manager, bar)
}

pub(crate) async fn backup(
    ctx: &Context,
    file: &Path,
    pattern: Option<&str>,
) -> Result<Output, CliError> {
    let (store, namespace) = ctx.ai_store().await?;
    let filter = match pattern {
        Some(glob) => KeyPattern::new(glob)?.with_segments(2),
        None => KeyPattern::all().with_segments(2),
    };
    let (manager, bar) = manager(ctx, "backup");
    let result = manager.backup_to_path(store.as_ref(), &filter, file).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = result?;
    Ok(Output::new(
        format!(
            "backed up {} entries of {namespace} into {} ({} bytes, {:.0} % saved by compression, {:.1?})\n",
            result.keys_backed_up,
            file.display(),
            result.compressed_size_bytes,
            result.compression_ratio() * 100.0,
            result.backup_time
        ),
        json!({"ok": true, "file": file.display().to_string(), "namespace": namespace,
               "entries": result.keys_backed_up, "chunks": result.chunks,
               "bytes": result.total_size_bytes, "file_bytes": result.compressed_size_bytes,
               "seconds": result.backup_time.as_secs_f64()}),
    ))
}

pub(crate) async fn restore(
    ctx: &Context,
    file: &Path,
    policy: Policy,
) -> Result<Output, CliError> {
    let (store, namespace) = ctx.ai_store().await?;
    let policy = match policy {
        Policy::SkipExisting => RestorePolicy::SkipExisting,
        Policy::Overwrite => RestorePolicy::Overwrite,
        Policy::OverwriteIfNewer => RestorePolicy::OverwriteIfNewer,
    };
    let (manager, bar) = manager(ctx, "restore");
    let result = manager
        .restore_from_path(file, store.as_ref(), policy)
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = result?;
    let mut text = format!(
        "restored {} of {} entries into {namespace}: {} kept as they were (present or removed), {} expired, {} too large\n",
        result.keys_restored,
        result.keys_processed,
        result.keys_skipped,
        result.keys_expired,
        result.keys_failed
    );
    for warning in &result.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    Ok(Output::new(
        text,
        json!({"ok": true, "namespace": namespace, "read": result.keys_processed,
               "restored": result.keys_restored, "skipped": result.keys_skipped,
               "expired": result.keys_expired, "failed": result.keys_failed,
               "warnings": result.warnings}),
    ))
}

pub(crate) async fn migrate(
    ctx: &Context,
    from: &Path,
    to: &Path,
    verify: bool,
) -> Result<Output, CliError> {
    // Each side from its own file alone: the environment would make both sides one server.
    let source = Context::load_file_only(from, ctx.json)?;
    let target = Context::load_file_only(to, ctx.json)?;
    if source.config.redis_url == target.config.redis_url
        && source.config.redis_cluster_urls == target.config.redis_cluster_urls
        && source.ai_config()?.namespace() == target.ai_config()?.namespace()
    {
        return Err(CliError::usage(
            "the source and the target are the same server and namespace",
        ));
    }
    let (source_store, source_ns) = source.ai_store().await?;
    let (target_store, target_ns) = target.ai_store().await?;
    let (manager, bar) = manager(ctx, "migrate");
    let result = manager
        .migrate(
            source_store.as_ref(),
            target_store.as_ref(),
            &KeyPattern::all().with_segments(2),
            RestorePolicy::SkipExisting,
        )
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = result?;
    let mut text = format!(
        "migrated {} of {} entries from {source_ns} to {target_ns} ({} kept as they were, {} expired)\n",
        result.keys_migrated, result.keys_processed, result.keys_skipped, result.keys_expired
    );
    let mut doc = json!({"ok": true, "from": source_ns, "to": target_ns,
        "read": result.keys_processed, "migrated": result.keys_migrated,
        "skipped": result.keys_skipped, "expired": result.keys_expired});
    if verify {
        let check = manager
            .verify(
                source_store.as_ref(),
                target_store.as_ref(),
                &VerifyOptions::default(),
            )
            .await?;
        text.push_str(&format!(
            "verify: {} matched, {} mismatched, {} missing in the target, {} missing in the source, {} TTLs off\n",
            check.keys_matched, check.keys_mismatched, check.missing_target, check.missing_source, check.ttl_mismatched
        ));
        doc["verify"] = json!({"matched": check.keys_matched, "mismatched": check.keys_mismatched,
            "missing_target": check.missing_target, "missing_source": check.missing_source,
            "ttl_mismatched": check.ttl_mismatched, "consistent": check.is_consistent()});
        if !check.is_consistent() {
            return Err(CliError::new(FAILURE, text.trim_end().to_owned()).with_details(doc));
        }
    }
    Ok(Output::new(text, doc))
}
