//! `aicache import-legacy` and `aicache convert-namespaces`.

use std::path::Path;
use std::sync::Arc;

use aicache::{CacheCompatibilityWrapper, CompatibilityConfig, Secret};
use serde_json::json;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{Output, progress};

pub(crate) async fn import(
    ctx: &Context,
    prefix: &str,
    threshold: usize,
    fernet_key_file: Option<&Path>,
) -> Result<Output, CliError> {
    let (store, namespace) = ctx.ai_store().await?;
    let python = ctx.store(prefix).await?;
    let mut config = CompatibilityConfig::default().with_text_hash_threshold(threshold);
    if let Some(path) = fernet_key_file {
        let key = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read the Fernet key file {}: {e}",
                path.display()
            ))
        })?;
        config = config.with_fernet_key(Secret::new(key.trim()));
    }
    let wrapper = CacheCompatibilityWrapper::new(ctx.ai_cache(store).await?, python, &config)?;
    let bar = progress(ctx.json, "import", None);
    let report = wrapper
        .import(|r| {
            if let Some(bar) = &bar {
                bar.set_position(r.scanned);
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    let refused: Vec<String> = report
        .refused
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    Ok(Output::new(
        format!(
            "imported {} of {} Python entries under {prefix} into {namespace}: {} already there or removed, {} refused as pickle, {} undecodable, {} expired, {} not Python keys{}\n",
            report.converted,
            report.scanned,
            report.skipped,
            report.refused_pickle,
            report.undecodable,
            report.expired,
            report.foreign,
            if refused.is_empty() {
                String::new()
            } else {
                format!(", refused: {}", refused.join(", "))
            }
        ),
        json!({"ok": true, "namespace": namespace, "prefix": prefix, "scanned": report.scanned,
               "converted": report.converted, "skipped": report.skipped,
               "refused_pickle": report.refused_pickle, "refused": report.refused,
               "undecodable": report.undecodable, "expired": report.expired,
               "foreign": report.foreign, "deferred": report.deferred}),
    ))
}

pub(crate) async fn convert(ctx: &Context) -> Result<Output, CliError> {
    let (store, _) = ctx.ai_store().await?;
    let cache = ctx.ai_cache(Arc::clone(&store)).await?;
    let bar = progress(ctx.json, "convert", None);
    let done = cache.convert_layout().await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let done = done?;
    // An outage in the middle reads as entries that changed meanwhile: say so, not "done".
    crate::context::reachable(&store).await?;
    Ok(Output::new(
        format!(
            "moved {} entries to {}; {} were there already, {} changed meanwhile, {} deferred by a removal, {} unreadable\n",
            done.moved,
            cache.config().namespace(),
            done.already_moved,
            done.raced,
            done.deferred,
            done.unreadable
        ),
        json!({"ok": true, "namespace": cache.config().namespace(), "moved": done.moved,
               "already_moved": done.already_moved, "raced": done.raced,
               "deferred": done.deferred, "unreadable": done.unreadable}),
    ))
}
