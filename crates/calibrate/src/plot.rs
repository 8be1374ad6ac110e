//! Quality-vs-cloud-share curves as a standalone SVG (no fonts or libraries needed to view it).

use std::fmt::Write;

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
    let (low, high) = ((low - pad).max(0.0), (high + pad).min(1.0));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |share: f64| LEFT + share.clamp(0.0, 1.0) * plot_w;
    let y = |quality: f64| TOP + (1.0 - (quality - low) / (high - low)) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    for k in 0..=10 {
        let share = k as f64 / 10.0;
        let quality = low + (high - low) * k as f64 / 10.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#eee"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}%</text>"##,
            x(share),
            TOP,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            k * 10
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#eee"/><text x="{3}" y="{4:.1}" text-anchor="end">{5:.1}%</text>"##,
            LEFT,
            y(quality),
            LEFT + plot_w,
            LEFT - 6.0,
            y(quality) + 4.0,
            quality * 100.0
        );
    }
    let _ =
        writeln!(svg, r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">share of queries sent to the cloud</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">quality (mean grade)</text>"#,
        TOP + plot_h / 2.0
    );
    if let Some((target, label)) = &target_quality {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#999" stroke-dasharray="2,3"/><text x="{2}" y="{3:.1}" fill="#666">{4}</text>"##,
            y(*target),
            LEFT + plot_w,
            LEFT + 6.0,
            y(*target) - 5.0,
            escape(label)
        );
    }
    for (index, s) in series.iter().enumerate() {
        let mut points: Vec<&Point> = s.points.iter().collect();
        points.sort_by(|a, b| a.share.total_cmp(&b.share));
        let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.share), y(p.quality))).collect();
        let dash = if s.dashed { r#" stroke-dasharray="6,4""# } else { "" };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            s.colour
        );
        let legend_y = TOP + 10.0 + index as f64 * 20.0;
        let legend_x = LEFT + plot_w + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            legend_x + 24.0,
            s.colour,
            legend_x + 30.0,
            legend_y + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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
    }
}
