//! Quality against file size and against energy per token, as one standalone SVG with two panels.

use std::fmt::Write;

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
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!("{} vs size and energy, baseline {}", quality_name, comparison.rows[comparison.baseline].name);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        width / 2.0,
        crate::markup::escape_markup(&title)
    );
    let (q_low, q_high) = range(points.iter().map(|p| p.3), true);
    for (panel, (axis, pick)) in [("file size (MiB)", 1usize), (energy_name, 2usize)].into_iter().enumerate() {
        let left = LEFT + panel as f64 * (PANEL_W + GAP);
        let value = |p: &(String, f64, f64, f64)| if pick == 1 { p.1 } else { p.2 };
        let (x_low, x_high) = range(points.iter().map(value), false);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x = |v: f64| left + (v - x_low) / (x_high - x_low) * PANEL_W;
        let y = |q: f64| TOP + (1.0 - (q - q_low) / (q_high - q_low)) * plot_h;
        for k in 0..=5 {
            let xv = x_low + (x_high - x_low) * k as f64 / 5.0;
            let qv = q_low + (q_high - q_low) * k as f64 / 5.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#eee"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"##,
                x(xv),
                TOP,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                tick(xv)
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}" stroke="#eee"/><text x="{3:.1}" y="{4:.1}" text-anchor="end">{5:.3}</text>"##,
                left,
                y(qv),
                left + PANEL_W,
                left - 6.0,
                y(qv) + 4.0,
                qv
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{plot_h}" fill="none" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            left + PANEL_W / 2.0,
            HEIGHT - 18.0,
            crate::markup::escape_markup(axis)
        );
        for point in &points {
            let (px, py) = (x(value(point)), y(point.3));
            let _ = writeln!(
                svg,
                r##"<circle cx="{px:.1}" cy="{py:.1}" r="5" fill="#1f77b4"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                px + 8.0,
                py - 6.0,
                crate::markup::escape_markup(&point.0)
            );
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        quality_name
    );
    svg.push_str("</svg>\n");
    svg
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

fn tick(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}
