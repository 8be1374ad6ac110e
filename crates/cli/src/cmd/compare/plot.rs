//! Quality against file size and against energy per token, as one standalone SVG with two panels.

use edgeway_plot::{Panel, Svg};

use super::report::Comparison;

const PANEL_W: f64 = 420.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const GAP: f64 = 90.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// Two scatter plots side by side: quality vs size (MiB), quality vs energy per token (mJ).
pub fn accuracy_vs_size_and_energy(comparison: &Comparison) -> String {
    let quality_name = if comparison.embedding { "recall@5 (mean of sets)" } else { "accuracy (mean grade)" };
    // (precision, MiB, mJ per token, quality) per variant.
    let points: Vec<(String, f64, f64, f64)> = comparison
        .rows
        .iter()
        .map(|row| {
            let m = &row.measured;
            let joules = if comparison.embedding { m.prompt_j_per_token } else { m.gen_j_per_token.unwrap_or(0.0) };
            (m.precision.clone(), m.file_bytes as f64 / (1024.0 * 1024.0), joules * 1000.0, row.quality)
        })
        .collect();
    let energy_name =
        if comparison.embedding { "energy per embedded token (mJ)" } else { "energy per generated token (mJ)" };
    let width = LEFT + PANEL_W * 2.0 + GAP + 90.0;
    let mut svg = Svg::new(width, HEIGHT);
    let title = format!("{} vs size and energy, baseline {}", quality_name, comparison.rows[comparison.baseline].name);
    svg.title(width / 2.0, 24.0, &title);
    let y_range = range(points.iter().map(|p| p.3), true);
    for (panel, (axis, pick)) in [("file size (MiB)", 1usize), (energy_name, 2usize)].into_iter().enumerate() {
        let value = |p: &(String, f64, f64, f64)| if pick == 1 { p.1 } else { p.2 };
        let panel = Panel {
            left: LEFT + panel as f64 * (PANEL_W + GAP),
            top: TOP,
            width: PANEL_W,
            height: HEIGHT - TOP - BOTTOM,
            x_range: range(points.iter().map(value), false),
            y_range,
        };
        panel.grid(&mut svg, 5, tick, |quality| format!("{quality:.3}"));
        panel.frame(&mut svg, "#888");
        panel.x_axis_label(&mut svg, BOTTOM - 18.0, axis);
        for point in &points {
            panel.labelled_point(&mut svg, (value(point), point.3), "#1f77b4", &point.0);
        }
    }
    svg.vertical_text(18.0, TOP + (HEIGHT - TOP - BOTTOM) / 2.0, quality_name);
    svg.finish()
}

/// An axis range around the values with 8 % padding; from zero for sizes and energies.
fn range(values: impl Iterator<Item = f64>, quality: bool) -> (f64, f64) {
    let (low, high) = values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if low > high {
        return (0.0, 1.0);
    }
    let pad = ((high - low) * 0.08).max(if quality { 0.01 } else { high.abs() * 0.05 + 1e-9 });
    let low = if quality { (low - pad).max(0.0) } else { 0.0 };
    (low, high + pad)
}

/// A tick label with as many decimals as its size calls for.
fn tick(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}
