//! The dashboard's charts: time series drawn as SVG on the server (`edgeway_plot`), so the
//! page needs no script at all and its Content-Security-Policy can forbid every one.

use edgeway_plot::{Panel, Stroke, Svg};

/// One line of a chart.
pub struct Line<'a> {
    /// Its legend.
    pub label: String,
    /// CSS colour.
    pub colour: &'a str,
    /// One value per time slice.
    pub values: Vec<f64>,
}

/// Colours for lines, in order.
pub const PALETTE: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/// A chart of `lines` over `n` time slices of `bucket_ms`, the last one now; the x axis reads
/// time ago ("-45 min", "now").
pub fn time_series(title: &str, unit: &str, bucket_ms: i64, n: usize, lines: &[Line]) -> String {
    let (width, height) = (560.0, 240.0);
    let mut svg = Svg::new(width, height);
    svg.title(width / 2.0, 20.0, title);
    let top = lines.iter().flat_map(|l| l.values.iter().copied()).fold(0.0f64, f64::max);
    let panel = Panel {
        left: 56.0,
        top: 34.0,
        width: width - 76.0,
        height: height - 90.0,
        x_range: (0.0, n.saturating_sub(1).max(1) as f64),
        y_range: (0.0, nice_ceiling(top)),
    };
    let ago = |x: f64| {
        let ms = (n as f64 - 1.0 - x) * bucket_ms as f64;
        match ms {
            ms if ms < 0.5 => "now".to_owned(),
            ms if ms < 2.0 * 3_600_000.0 => format!("-{:.0} min", ms / 60_000.0),
            ms if ms < 2.0 * 86_400_000.0 => format!("-{:.0} h", ms / 3_600_000.0),
            ms => format!("-{:.1} d", ms / 86_400_000.0),
        }
    };
    panel.grid(&mut svg, 4, ago, format_count);
    panel.frame(&mut svg, "#999");
    svg.vertical_text(14.0, panel.top + panel.height / 2.0, unit);
    for (i, line) in lines.iter().enumerate() {
        let points: Vec<(f64, f64)> = line.values.iter().enumerate().map(|(x, &y)| (x as f64, y)).collect();
        panel.polyline(&mut svg, &points, &Stroke::bold(line.colour));
        let x = 60.0 + (i % 4) as f64 * 125.0;
        let y = height - 20.0 + (i / 4) as f64 * 14.0;
        svg.legend_entry(x, y, &Stroke::bold(line.colour), &line.label);
    }
    svg.finish()
}

/// The smallest of 1, 2 or 5 × 10ⁿ at or above `value` (at least 1): round gridlines.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&c| c >= value).unwrap_or(10.0 * power)
}

fn format_count(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridlines_land_on_round_numbers_and_names_are_escaped() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(200.0), 200.0);
        let line = Line { label: "<edge>".into(), colour: PALETTE[0], values: vec![0.0, 3.0, 1.0] };
        let svg = time_series("requests", "per minute", 60_000, 3, &[line]);
        assert!(svg.starts_with("<svg") && svg.contains("&lt;edge&gt;") && svg.contains("now"), "{svg}");
        assert!(svg.contains("-2 min"), "{svg}");
    }
}
