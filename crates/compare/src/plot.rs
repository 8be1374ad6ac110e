//! Quality against file size and against energy per token, as one standalone SVG with two panels.

use edgeway_plot::{Panel, Svg};

use crate::report::Comparison;

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
    let title = format!("{} vs size and energy, baseline {}", quality_name, comparison.base().name);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{settings, variant};

    #[test]
    fn ranges_start_at_zero_for_sizes_and_pad_quality() {
        // Padding is 8 % of the span, at least 5 % of the top for sizes and 1 point for quality.
        let (low, high) = range([10.0, 20.0].into_iter(), false);
        assert_eq!(low, 0.0);
        assert!((high - 21.0).abs() < 1e-6, "{high}");
        let (low, high) = range([0.5, 0.6, f64::NAN].into_iter(), true);
        assert!((low - 0.49).abs() < 1e-9 && (high - 0.61).abs() < 1e-9, "{low} {high}");
        assert_eq!(range(std::iter::empty(), true), (0.0, 1.0));
    }

    #[test]
    fn ticks_keep_three_significant_figures_or_so() {
        assert_eq!((tick(123.4), tick(12.34), tick(0.1234)), ("123".into(), "12.3".into(), "0.123".into()));
    }

    #[test]
    fn draws_each_variant_in_both_panels() {
        let measured = vec![
            variant("Q8_0", 1 << 20, &[("1", Some("A"), 1.0)]),
            variant("Q4_<0>", 1 << 19, &[("1", Some("B"), 0.0)]),
        ];
        let comparison = Comparison::new(vec!["q8".into(), "q4".into()], measured, 0, &settings());
        let svg = accuracy_vs_size_and_energy(&comparison);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("Q4_&lt;0&gt;") && !svg.contains("Q4_<0>"), "names are escaped");
        assert!(svg.contains("baseline q8") && svg.contains("energy per generated token (mJ)"));
    }
}
