//! Quality-vs-cloud-share curves as a standalone SVG (no fonts or libraries needed to view it).

use edgeway_plot::{Panel, Stroke, Svg};

use crate::curve::Point;

/// One line on the plot.
pub struct Series<'a> {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub colour: &'a str,
    /// Dashed (for references such as random and oracle).
    pub dashed: bool,
    /// The points, in any order (drawn sorted by share).
    pub points: &'a [Point],
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// Draws the series with cloud share on x (0–100 %) and quality on y, plus a
/// horizontal line at `target_quality` when given.
pub fn quality_vs_share(title: &str, series: &[Series], target_quality: Option<(f64, String)>) -> String {
    let all = series.iter().flat_map(|s| s.points.iter().map(|p| p.quality));
    let (mut low, mut high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), q| (lo.min(q), hi.max(q)));
    if let Some((target, _)) = &target_quality {
        low = low.min(*target);
        high = high.max(*target);
    }
    if low > high {
        (low, high) = (0.0, 1.0);
    }
    let pad = ((high - low) * 0.05).max(0.01);
    let panel = Panel {
        left: LEFT,
        top: TOP,
        width: WIDTH - LEFT - RIGHT,
        height: HEIGHT - TOP - BOTTOM,
        x_range: (0.0, 1.0),
        y_range: ((low - pad).max(0.0), (high + pad).min(1.0)),
    };

    let mut svg = Svg::new(WIDTH, HEIGHT);
    svg.title(LEFT + panel.width / 2.0, 22.0, title);
    panel.grid(&mut svg, 10, |share| format!("{:.0}%", share * 100.0), |quality| format!("{:.1}%", quality * 100.0));
    panel.frame(&mut svg, "black");
    panel.x_axis_label(&mut svg, BOTTOM - 18.0, "share of queries sent to the cloud");
    svg.vertical_text(18.0, TOP + panel.height / 2.0, "quality (mean grade)");
    if let Some((target, label)) = &target_quality {
        panel.horizontal_rule(&mut svg, *target, &Stroke::thin("#999").dashed("2,3"), label);
    }
    for (index, s) in series.iter().enumerate() {
        let mut points: Vec<(f64, f64)> = s.points.iter().map(|p| (p.share, p.quality)).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let stroke = Stroke::bold(s.colour);
        let stroke = if s.dashed { stroke.dashed("6,4") } else { stroke };
        panel.polyline(&mut svg, &points, &stroke);
        svg.legend_entry(LEFT + panel.width + 14.0, TOP + 10.0 + index as f64 * 20.0, &stroke, &s.label);
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_and_the_target() {
        let points = [
            Point { share: 0.0, quality: 0.3, cost: 0.0, threshold: None },
            Point { share: 1.0, quality: 0.6, cost: 1.0, threshold: None },
        ];
        let svg = quality_vs_share(
            "a & b",
            &[
                Series { label: "scorer".into(), colour: "blue", dashed: false, points: &points },
                Series { label: "random".into(), colour: "grey", dashed: true, points: &points },
            ],
            Some((0.57, "95 % of cloud".into())),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &amp; b") && svg.contains("95 % of cloud"));
        assert!(svg.contains(">100%</text>") && svg.contains(r#"stroke-dasharray="6,4""#));
    }

    #[test]
    fn the_quality_axis_spans_the_points_and_the_target() {
        let points = [Point { share: 0.5, quality: 0.4, cost: 0.5, threshold: None }];
        let series = [Series { label: "s".into(), colour: "blue", dashed: false, points: &points }];
        // The axis runs from 0.4 to 0.8, padded by 5 % of that span (2 points) on each side.
        let svg = quality_vs_share("t", &series, Some((0.8, "target".into())));
        assert!(svg.contains(">38.0%</text>") && svg.contains(">82.0%</text>"), "{svg}");
    }
}
