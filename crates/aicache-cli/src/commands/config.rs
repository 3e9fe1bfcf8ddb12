//! `aicache config validate|show|presets|docs`.

use aicache::{PRESETS, redact_url, reference_markdown};
use serde_json::{Value, json};

use crate::ConfigCommand;
use crate::context::Context;
use crate::exit::CliError;
use crate::output::Output;

pub(crate) fn run(ctx: &Context, command: &ConfigCommand) -> Result<Output, CliError> {
    match command {
        ConfigCommand::Validate => validate(ctx),
        ConfigCommand::Show => show(ctx),
        ConfigCommand::Presets => {
            let text: String = PRESETS
                .iter()
                .map(|p| format!("{}: {}\n", p.name, p.reasoning))
                .collect();
            let doc: Vec<Value> = PRESETS
                .iter()
                .map(|p| json!({"name": p.name, "reasoning": p.reasoning}))
                .collect();
            Ok(Output::new(text, json!({"ok": true, "presets": doc})))
        }
        ConfigCommand::Docs => {
            let docs = reference_markdown();
            Ok(Output::new(
                docs.clone(),
                json!({"ok": true, "markdown": docs}),
            ))
        }
    }
}

fn finding(issue: &aicache::ValidationIssue) -> Value {
    json!({"field": issue.field, "value": issue.value, "allowed": issue.allowed, "fix": issue.hint})
}

fn validate(ctx: &Context) -> Result<Output, CliError> {
    let result = ctx.config.validate();
    let mut text = String::new();
    for (level, issues) in [("error", &result.errors), ("warning", &result.warnings)] {
        for i in issues {
            text.push_str(&format!(
                "{level}: {} = {:?}; allowed: {}; fix: {}\n",
                i.field, i.value, i.allowed, i.hint
            ));
        }
    }
    let doc = json!({
        "ok": result.is_valid(),
        "file": ctx.file.as_ref().map(|f| f.display().to_string()),
        "errors": result.errors.iter().map(finding).collect::<Vec<_>>(),
        "warnings": result.warnings.iter().map(finding).collect::<Vec<_>>(),
    });
    if !result.is_valid() {
        return Err(CliError::usage(format!(
            "the configuration has {} error(s):\n{}",
            result.errors.len(),
            text.trim_end()
        ))
        .with_details(doc));
    }
    if text.is_empty() {
        text.push_str("the configuration is valid\n");
    }
    Ok(Output::new(text, doc))
}

fn show(ctx: &Context) -> Result<Output, CliError> {
    // Secrets serialize as "***"; a password inside the URL is redacted too.
    let mut doc = serde_json::to_value(&ctx.config)
        .map_err(|e| CliError::failure(format!("cannot show the configuration: {e}")))?;
    if let Some(url) = ctx.config.redis_url.as_deref() {
        doc["redis_url"] = Value::from(redact_url(url));
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    Ok(Output::new(text, json!({"ok": true, "config": doc})))
}
