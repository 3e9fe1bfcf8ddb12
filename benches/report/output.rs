//! The table on stdout and `target/aicache-bench/report.json`.

use std::path::PathBuf;

use super::{Plan, Row, median};

pub(crate) fn out_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("aicache-bench")
}

/// Prints each row's median value, baseline and ratio (with the ratios' range) and writes them as
/// JSON.
pub(crate) fn write(rows: Vec<Row>, plan: &Plan) {
    println!(
        "\n{:<30} {:>14} {:>14} {:>8}   ratio min–max   ({} interleaved rounds of {:?})",
        "row", "ops/s", "baseline", "ratio", plan.rounds, plan.round_time
    );
    let mut json = Vec::new();
    for mut row in rows {
        let mut ratios: Vec<f64> = row
            .contender
            .iter()
            .zip(&row.baseline)
            .map(|(c, b)| c / b)
            .collect();
        let ratio = median(&mut ratios);
        let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
        let value = median(&mut row.contender);
        let baseline = median(&mut row.baseline);
        println!(
            "{:<30} {value:>14.0} {baseline:>14.0} {ratio:>8.3}   {lo:.3}–{hi:.3}",
            row.name
        );
        json.push(serde_json::json!({
            "name": row.name,
            "value": value.round(),
            "unit": row.unit,
            "baseline": baseline.round(),
            "ratio": (ratio * 1000.0).round() / 1000.0,
        }));
    }
    let dir = out_path();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}
