//! `aicache bench`: the benchmark suite against the configured Redis, with reports in a directory.

use std::path::Path;

use aicache::BenchmarkReport;
use aicache::bench::{
    BenchSettings, CachePerformanceBenchmark, Preset, RegressionCheck, RegressionLevel, report,
};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, FAILURE};
use crate::output::Output;

pub(crate) async fn run(
    ctx: &Context,
    preset: &str,
    compare: Option<&Path>,
    out: &Path,
) -> Result<Output, CliError> {
    let preset = Preset::parse(preset)?;
    let redis = ctx.redis()?;
    // Fail fast (exit 3) before any workload runs.
    ctx.store("aicache-bench").await?;
    let saved = match compare {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
            Some(BenchmarkReport::from_json(&text)?)
        }
        None => None,
    };
    let bench = CachePerformanceBenchmark::new(BenchSettings::from_env(preset)?)?;
    let run = bench.run_redis_suite(&redis).await?;
    let regressions = saved
        .as_ref()
        .map(|saved| RegressionCheck::of(&run).compare(saved, &run));
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", out.display())))?;
    let write = |name: &str, body: &str| {
        std::fs::write(out.join(name), body).map_err(|e| {
            CliError::failure(format!("cannot write {}: {e}", out.join(name).display()))
        })
    };
    write("bench.json", &run.to_json()?)?;
    write("bench.md", &report::markdown(&run, regressions.as_deref()))?;
    write("bench.svg", &report::svg(&run)?)?;
    let critical = regressions
        .as_ref()
        .is_some_and(|r| r.iter().any(|g| g.level == RegressionLevel::Critical));
    let mut text = report::table(&run);
    text.push_str(&format!(
        "\nwrote bench.json, bench.md and bench.svg in {}\n",
        out.display()
    ));
    let doc = json!({"ok": !critical, "out": out.display().to_string(), "results": run.results.len(),
        "regressions": regressions.as_ref().map(|r| r.iter().map(|g| json!({
            "result": g.result, "metric": g.metric, "before": g.before, "after": g.after,
            "worse_by_pct": g.worse_by_pct,
            "level": if g.level == RegressionLevel::Critical { "critical" } else { "warning" }})).collect::<Vec<_>>())});
    if critical {
        return Err(
            CliError::new(FAILURE, "critical regressions against the saved run").with_details(doc),
        );
    }
    Ok(Output::new(text, doc))
}
