//! The SVG chart of a report (plotters, SVG backend, no font files).

use cache_core::{Error, ErrorKind, Result};
use plotters::prelude::*;

use crate::result::BenchmarkReport;

fn drawing_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Backend, "cannot draw the benchmark chart").with_context("cause", e)
}

pub(crate) fn draw(report: &BenchmarkReport) -> Result<String> {
    let results = &report.results;
    let mut svg = String::new();
    {
        let height = 520 + 18 * u32::try_from(results.len()).unwrap_or(u32::MAX).min(200);
        let root = SVGBackend::with_string(&mut svg, (1100, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing_error)?;
        let (top, bottom) = root.split_vertically(height / 2);
        let max_latency = results
            .iter()
            .map(|r| r.measured.latency.max_us)
            .fold(1.0_f64, f64::max);
        let mut latency = ChartBuilder::on(&top)
            .caption(
                "Latency percentiles (µs, log scale) per result",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .right_y_label_area_size(260)
            .build_cartesian_2d(0.0_f64..3.0, (1.0_f64..max_latency * 1.5).log_scale())
            .map_err(drawing_error)?;
        latency
            .configure_mesh()
            .x_labels(4)
            .x_label_formatter(&|x| {
                let labels = [(0.0, "p50"), (1.0, "p95"), (2.0, "p99"), (3.0, "max")];
                labels
                    .iter()
                    .find(|(at, _)| (x - at).abs() < 0.5)
                    .map_or("", |(_, label)| label)
                    .to_owned()
            })
            .y_desc("µs")
            .draw()
            .map_err(drawing_error)?;
        for (i, r) in results.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let l = &r.measured.latency;
            let points = [l.p50_us, l.p95_us, l.p99_us, l.max_us]
                .into_iter()
                .enumerate()
                .map(|(x, y)| (x as f64, y.max(1.0)));
            latency
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(drawing_error)?;
            latency
                .draw_series(std::iter::once(Text::new(
                    r.name.clone(),
                    (3.0, l.max_us.max(1.0)),
                    ("sans-serif", 11).into_font().color(&color),
                )))
                .map_err(drawing_error)?;
        }
        let max_ops = results
            .iter()
            .map(|r| r.measured.ops_per_sec)
            .fold(1.0_f64, f64::max);
        let count = results.len().max(1) as f64;
        let mut throughput = ChartBuilder::on(&bottom)
            .caption("Throughput (ops/s) per result", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0_f64..count, 0.0_f64..max_ops * 1.1)
            .map_err(drawing_error)?;
        throughput
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("ops/s")
            .draw()
            .map_err(drawing_error)?;
        throughput
            .draw_series(results.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.1, 0.0), (x + 0.9, r.measured.ops_per_sec)],
                    Palette99::pick(i).filled(),
                )
            }))
            .map_err(drawing_error)?;
        root.present().map_err(drawing_error)?;
    }
    Ok(svg)
}
