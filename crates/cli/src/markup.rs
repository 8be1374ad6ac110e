//! Text inside HTML and SVG.

/// `text` safe inside HTML or SVG text and attribute values.
pub fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
