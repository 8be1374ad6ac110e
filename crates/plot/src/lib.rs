//! Standalone SVG charts: one file, no fonts, scripts or libraries needed to view it.
//!
//! An [`Svg`] is the document (white background, title, free text); a [`Panel`] is one plotting
//! area inside it that maps data to the page and draws gridlines with tick labels, its frame,
//! axis labels, lines and labelled points. `edgeway calibrate` draws its quality-vs-cloud-share
//! curves with one panel; `edgeway compare` its two scatter plots side by side.
//!
//! Every piece of text goes through [`escape`], so names from users and files are safe.

use std::fmt::Write;

/// `text` safe inside HTML or SVG text and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// How a piece of text sits on its anchor point (SVG's `text-anchor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Text starts at the point.
    Start,
    /// Text is centred on the point.
    Middle,
    /// Text ends at the point.
    End,
}

impl Anchor {
    fn attribute(self) -> &'static str {
        match self {
            Anchor::Start => "",
            Anchor::Middle => r#" text-anchor="middle""#,
            Anchor::End => r#" text-anchor="end""#,
        }
    }
}

/// An SVG document being drawn; [`Svg::finish`] closes it.
#[derive(Debug)]
pub struct Svg {
    out: String,
    width: f64,
}

impl Svg {
    /// A `width` × `height` document on a white background, in 12-pixel sans-serif.
    pub fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        Self { out, width }
    }

    /// The document's width.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// A 15-pixel title centred on `x` at height `y`.
    pub fn title(&mut self, x: f64, y: f64, text: &str) {
        let _ =
            writeln!(self.out, r#"<text x="{x}" y="{y}" font-size="15" text-anchor="middle">{}</text>"#, escape(text));
    }

    /// Text at (`x`, `y`), in `fill` when given.
    pub fn text(&mut self, x: f64, y: f64, anchor: Anchor, fill: Option<&str>, text: &str) {
        let fill = fill.map(|fill| format!(r#" fill="{}""#, escape(fill))).unwrap_or_default();
        let _ =
            writeln!(self.out, r#"<text x="{x:.1}" y="{y:.1}"{}{fill}>{}</text>"#, anchor.attribute(), escape(text));
    }

    /// Text read bottom to top, centred on (`x`, `y`): a y-axis label.
    pub fn vertical_text(&mut self, x: f64, y: f64, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text transform="translate({x},{y:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            escape(text)
        );
    }

    /// A straight line from (`x1`, `y1`) to (`x2`, `y2`).
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &Stroke) {
        let _ = writeln!(self.out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"{stroke}/>"#);
    }

    /// An entry of a legend at (`x`, `y`): a short line in `stroke`, then `label`.
    pub fn legend_entry(&mut self, x: f64, y: f64, stroke: &Stroke, label: &str) {
        self.line((x, y), (x + 24.0, y), stroke);
        self.text(x + 30.0, y + 4.0, Anchor::Start, None, label);
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// How a line is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Stroke {
    /// CSS colour.
    pub colour: String,
    /// Width in pixels (SVG's default, 1, when `None`).
    pub width: Option<f64>,
    /// Dash pattern (SVG's `stroke-dasharray`, e.g. `6,4`), solid when `None`.
    pub dash: Option<String>,
}

impl Stroke {
    /// A solid one-pixel line.
    pub fn thin(colour: &str) -> Self {
        Self { colour: colour.to_owned(), width: None, dash: None }
    }

    /// A solid two-pixel line, for data.
    pub fn bold(colour: &str) -> Self {
        Self { colour: colour.to_owned(), width: Some(2.0), dash: None }
    }

    /// The same line, dashed with `pattern`.
    pub fn dashed(mut self, pattern: &str) -> Self {
        self.dash = Some(pattern.to_owned());
        self
    }
}

impl std::fmt::Display for Stroke {
    /// The line's SVG attributes, each after a space.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, r#" stroke="{}""#, escape(&self.colour))?;
        if let Some(width) = self.width {
            write!(f, r#" stroke-width="{width}""#)?;
        }
        if let Some(dash) = &self.dash {
            write!(f, r#" stroke-dasharray="{}""#, escape(dash))?;
        }
        Ok(())
    }
}

/// One plotting area: a rectangle on the page and the data ranges it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panel {
    /// Left edge on the page.
    pub left: f64,
    /// Top edge on the page.
    pub top: f64,
    /// Width on the page.
    pub width: f64,
    /// Height on the page.
    pub height: f64,
    /// The data values at the left and right edges.
    pub x_range: (f64, f64),
    /// The data values at the bottom and top edges.
    pub y_range: (f64, f64),
}

impl Panel {
    /// The page position of data value `value` on the x axis (clamped to the panel).
    pub fn x(&self, value: f64) -> f64 {
        let (low, high) = self.x_range;
        self.left + ((value - low) / (high - low)).clamp(0.0, 1.0) * self.width
    }

    /// The page position of data value `value` on the y axis (larger values higher up).
    pub fn y(&self, value: f64) -> f64 {
        let (low, high) = self.y_range;
        self.top + (1.0 - (value - low) / (high - low)) * self.height
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// Light gridlines at `steps + 1` evenly spaced values on both axes, labelled below the panel
    /// with `x_label` and left of it with `y_label`.
    pub fn grid(&self, svg: &mut Svg, steps: usize, x_label: impl Fn(f64) -> String, y_label: impl Fn(f64) -> String) {
        let grid = Stroke::thin("#eee");
        for k in 0..=steps {
            let share = k as f64 / steps as f64;
            let xv = self.x_range.0 + (self.x_range.1 - self.x_range.0) * share;
            let yv = self.y_range.0 + (self.y_range.1 - self.y_range.0) * share;
            let (x, y) = (self.x(xv), self.y(yv));
            svg.line((x, self.top), (x, self.bottom()), &grid);
            svg.text(x, self.bottom() + 16.0, Anchor::Middle, None, &x_label(xv));
            svg.line((self.left, y), (self.left + self.width, y), &grid);
            svg.text(self.left - 6.0, y + 4.0, Anchor::End, None, &y_label(yv));
        }
    }

    /// The panel's outline.
    pub fn frame(&self, svg: &mut Svg, colour: &str) {
        let _ = writeln!(
            svg.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{}"/>"#,
            self.left,
            self.top,
            self.width,
            self.height,
            escape(colour)
        );
    }

    /// The x axis's name, centred `below` pixels under the panel.
    pub fn x_axis_label(&self, svg: &mut Svg, below: f64, text: &str) {
        svg.text(self.left + self.width / 2.0, self.bottom() + below, Anchor::Middle, None, text);
    }

    /// A line through data `points`, in the order given.
    pub fn polyline(&self, svg: &mut Svg, points: &[(f64, f64)], stroke: &Stroke) {
        let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", self.x(x), self.y(y))).collect();
        let _ = writeln!(svg.out, r#"<polyline points="{}" fill="none"{stroke}/>"#, path.join(" "));
    }

    /// A horizontal line across the panel at data value `value`, with `label` just above its left end.
    pub fn horizontal_rule(&self, svg: &mut Svg, value: f64, stroke: &Stroke, label: &str) {
        let y = self.y(value);
        svg.line((self.left, y), (self.left + self.width, y), stroke);
        svg.text(self.left + 6.0, y - 5.0, Anchor::Start, Some("#666"), label);
    }

    /// A dot at data point (`x`, `y`) in `colour`, with `label` above its right.
    pub fn labelled_point(&self, svg: &mut Svg, (x, y): (f64, f64), colour: &str, label: &str) {
        let (px, py) = (self.x(x), self.y(y));
        let _ = writeln!(svg.out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="5" fill="{}"/>"#, escape(colour));
        svg.text(px + 8.0, py - 6.0, Anchor::Start, None, label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel() -> Panel {
        Panel { left: 10.0, top: 20.0, width: 100.0, height: 50.0, x_range: (0.0, 1.0), y_range: (0.0, 10.0) }
    }

    #[test]
    fn escapes_markup_in_text_and_attributes() {
        assert_eq!(escape(r#"<a href="x">&</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        let mut svg = Svg::new(200.0, 100.0);
        svg.title(100.0, 20.0, "q4 & q8 <b>");
        let svg = svg.finish();
        assert!(svg.contains("q4 &amp; q8 &lt;b&gt;"), "{svg}");
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn maps_data_into_the_panel() {
        let panel = panel();
        assert_eq!((panel.x(0.0), panel.x(0.5), panel.x(1.0)), (10.0, 60.0, 110.0));
        assert_eq!(panel.x(2.0), 110.0, "clamped to the right edge");
        assert_eq!((panel.y(0.0), panel.y(10.0)), (70.0, 20.0), "larger values higher up");
    }

    #[test]
    fn a_document_holds_every_element_once_and_closes() {
        let panel = panel();
        let mut svg = Svg::new(200.0, 100.0);
        panel.grid(&mut svg, 4, |x| format!("{x:.2}"), |y| format!("{y:.0}"));
        panel.frame(&mut svg, "black");
        panel.polyline(&mut svg, &[(0.0, 0.0), (1.0, 10.0)], &Stroke::bold("blue").dashed("6,4"));
        panel.horizontal_rule(&mut svg, 5.0, &Stroke::thin("#999").dashed("2,3"), "target");
        panel.labelled_point(&mut svg, (0.5, 5.0), "#1f77b4", "Q4_0");
        svg.legend_entry(150.0, 30.0, &Stroke::bold("blue"), "scorer");
        svg.vertical_text(18.0, 45.0, "quality");
        let svg = svg.finish();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<svg").count(), 1);
        // Five gridlines each way, the rule and the legend's line.
        assert_eq!(svg.matches(r##"stroke="#eee""##).count(), 10);
        assert_eq!(svg.matches("<line").count(), 12);
        assert!(svg.contains(r#"<polyline points="10.0,70.0 110.0,20.0" fill="none" stroke="blue" stroke-width="2" stroke-dasharray="6,4"/>"#), "{svg}");
        assert!(svg.contains(">0.25</text>") && svg.contains(">10</text>"));
        assert!(svg.contains(r##"<circle cx="60.0" cy="45.0" r="5" fill="#1f77b4"/>"##), "{svg}");
        assert!(svg.contains(r##"fill="#666">target</text>"##), "{svg}");
        assert!(svg.contains("rotate(-90)"));
    }
}
