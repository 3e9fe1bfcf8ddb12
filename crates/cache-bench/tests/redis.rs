//! The benchmark library against a real redis-server with the `ci` preset.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failure should panic with its error"
)]

use std::collections::HashSet;
use std::time::Duration;

use cache_bench::{
    BenchmarkReport, CachePerformanceBenchmark, Preset, RegressionCheck, RegressionLevel, Workload,
    report,
};
use cache_redis::RedisCacheConfig;
use cache_testkit::{RedisServer, ServerConfig};

async fn ci_run(server: &RedisServer) -> BenchmarkReport {
    let mut settings = Preset::Ci.settings();
    // A short run: the figures are not asserted, only their presence and coherence.
    settings.iterations = 160;
    settings.warmup = 5;
    assert_eq!(
        settings.text_sizes,
        [200, 2_000, 20_000, 60_000],
        "one text per tier"
    );
    let bench = CachePerformanceBenchmark::new(settings).unwrap();
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_command_timeout(Duration::from_secs(5));
    bench.run_redis_suite(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_has_a_baseline_a_ratio_and_coherent_figures() {
    let server = RedisServer::start(ServerConfig::default());
    let run = ci_run(&server).await;
    let names: HashSet<&str> = run.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), run.results.len(), "names are unique");
    for workload in [
        Workload::Write,
        Workload::ReadThrough,
        Workload::L1Hit,
        Workload::L2Hit,
        Workload::Miss,
        Workload::GetMany,
        Workload::Invalidate,
        Workload::Compression,
    ] {
        assert!(
            run.results.iter().any(|r| r.workload == workload),
            "{workload:?}"
        );
    }
    for target in ["generic", "ai", "codec_lz4", "codec_zstd"] {
        assert!(run.results.iter().any(|r| r.target == target), "{target}");
    }
    for r in &run.results {
        let baseline = r
            .baseline
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no baseline", r.name));
        assert!(baseline.measured.ops_per_sec > 0.0, "{}", r.name);
        assert!(r.ratio.is_some_and(|x| x > 0.0), "{}", r.name);
        assert!(
            (r.measured.success_rate() - 100.0).abs() < 1e-9,
            "{}: {:?}",
            r.name,
            r.measured
        );
        let l = &r.measured.latency;
        assert!(
            l.p50_us <= l.p95_us && l.p95_us <= l.p99_us && l.p99_us <= l.max_us,
            "{}",
            r.name
        );
    }
    // The store counts its own requests: a Redis hit is one request, an L1 hit none.
    let per_op = |name: &str| run.result(name).unwrap().commands_per_op.unwrap();
    assert!(
        (per_op("l2_hit_generic_1k_c1") - 1.0).abs() < 0.05,
        "{}",
        per_op("l2_hit_generic_1k_c1")
    );
    assert!(per_op("l1_hit_generic_1k_c1") < 0.05);
    assert!(
        (per_op("get_many_generic_1k_c1") - 1.0).abs() < 0.05,
        "one MGET per batch"
    );
    assert!(per_op("l1_hit_ai_200b_c8") < 0.05);
    for size in ["200b", "2000b", "20000b", "60000b"] {
        assert!(
            run.result(&format!("l2_hit_ai_{size}_c1")).is_some(),
            "{size}"
        );
    }
    // The L1 accounts for what it holds after a read-through filled it.
    assert!(
        run.result("read_through_generic_1k_c1")
            .unwrap()
            .l1_bytes
            .unwrap()
            > 100 * 1024
    );
    // Realistic text compresses.
    let lz4 = run.result("compression_codec_lz4_40000b_c1").unwrap();
    assert!(
        lz4.compression_ratio.unwrap() < 0.6,
        "{:?}",
        lz4.compression_ratio
    );

    // The report round-trips through JSON, and reads back as the same run.
    let back = BenchmarkReport::from_json(&run.to_json().unwrap()).unwrap();
    assert_eq!(back.results.len(), run.results.len());
    assert!(RegressionCheck::of(&run).compare(&back, &run).is_empty());

    let markdown = report::markdown(&run, Some(&[]));
    assert!(markdown.contains("| `l2_hit_generic_1k_c8` |") && markdown.contains("## Regressions"));
    assert!(report::table(&run).lines().count() > run.results.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_regressions_are_flagged_at_their_level_and_the_chart_has_one_series_each() {
    let server = RedisServer::start(ServerConfig::default());
    let run = ci_run(&server).await;
    // A saved baseline in which one result was 15 % better (a warning at ci's 12/20 %) and
    // another's p99 half of today's (a critical, 100 % worse).
    let mut saved = BenchmarkReport::from_json(&run.to_json().unwrap()).unwrap();
    let warned = "l2_hit_generic_1k_c8";
    let critical = "write_ai_2000b_c1";
    for r in &mut saved.results {
        if r.name == warned {
            r.ratio = r.ratio.map(|x| x / 0.85);
        }
        if r.name == critical {
            r.measured.latency.p99_us /= 2.0;
        }
    }
    let found = RegressionCheck::of(&run).compare(&saved, &run);
    assert_eq!(found.len(), 2, "{found:?}");
    let level = |name: &str| {
        found
            .iter()
            .find(|g| g.result == name)
            .map(|g| (g.level, g.metric))
    };
    assert_eq!(level(warned), Some((RegressionLevel::Warning, "ratio")));
    assert_eq!(level(critical), Some((RegressionLevel::Critical, "p99_us")));
    assert!(report::markdown(&run, Some(&found)).contains("**critical**"));

    let svg = report::svg(&run).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // The series are the 2-pixel lines (axes and mesh are 1 pixel).
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .count();
    assert_eq!(lines, run.results.len(), "one latency series per result");
    for r in &run.results {
        assert!(
            doc.descendants()
                .any(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(r.name.as_str())),
            "{} is labelled",
            r.name
        );
    }
}
