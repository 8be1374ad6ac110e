//! The probability of each constrained choice an answer made: the grammar
//! probe's per-token probabilities, multiplied over the tokens that spell
//! each value the schema limits to an `enum`.
//!
//! This is the "confidence for free" of structured output: an answer that
//! must be one of `A`/`B`/`C`/`D`, or a class label, says how sure the model
//! was among exactly the allowed values, which the router can escalate on.

use edgeway_core::{ChoiceProbability, OutputFormat};
use edgeway_structured::choices::{choices, has_choices};
use serde_json::Value;

/// One answer's text and the probability of each of its tokens under the grammar.
#[derive(Debug)]
pub struct ChoiceTrace {
    schema: Value,
    text: Vec<u8>,
    /// Byte range of each token in `text`, and its probability.
    tokens: Vec<(usize, usize, f32)>,
}

impl ChoiceTrace {
    /// A trace for answers in `format`, when its schema has choices to report.
    pub fn for_format(format: &OutputFormat) -> Option<Self> {
        let OutputFormat::JsonSchema { schema, .. } = format else { return None };
        let schema: Value = serde_json::from_str(schema).ok()?;
        has_choices(&schema).then(|| Self { schema, text: Vec::new(), tokens: Vec::new() })
    }

    /// Adds one generated token.
    pub fn record(&mut self, bytes: &[u8], probability: f32) {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        self.tokens.push((start, self.text.len(), probability));
    }

    /// The choices the finished answer made and their probabilities, in the order written.
    pub fn finish(&self) -> Vec<ChoiceProbability> {
        let Ok(text) = std::str::from_utf8(&self.text) else { return Vec::new() };
        let Ok(answer) = serde_json::from_str::<Value>(text.trim()) else { return Vec::new() };
        let mut cursor = 0;
        let mut found = Vec::new();
        for choice in choices(&self.schema, &answer) {
            let needle = choice.value.to_string();
            let Some(at) = text[cursor..].find(&needle).map(|offset| cursor + offset) else { continue };
            cursor = at + needle.len();
            // A string's quotes are structure, not the choice: only the tokens of its letters count.
            let (start, end) = if choice.value.is_string() { (at + 1, cursor - 1) } else { (at, cursor) };
            let probability =
                self.tokens.iter().filter(|(from, to, _)| *from < end && *to > start).map(|(_, _, p)| *p).product();
            found.push(ChoiceProbability { path: choice.path, value: needle, probability });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_the_tokens_of_each_chosen_value() {
        let format = OutputFormat::JsonSchema {
            name: None,
            schema: r#"{"type": "object", "properties": {"kind": {"enum": ["scratch", "crack"]}, "ok": {"type": "boolean"}}}"#.into(),
            strict: false,
        };
        let mut trace = ChoiceTrace::for_format(&format).expect("has choices");
        for (piece, p) in
            [("{\"", 1.0), ("kind", 1.0), ("\": \"", 0.9), ("cr", 0.5), ("ack", 0.8), ("\", \"ok\": true}", 1.0)]
        {
            trace.record(piece.as_bytes(), p);
        }
        let found = trace.finish();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].path.as_str(), found[0].value.as_str()), ("/kind", "\"crack\""));
        assert!((found[0].probability - 0.4).abs() < 1e-6, "{}", found[0].probability);
    }

    #[test]
    fn schemas_without_choices_are_not_traced() {
        let format = OutputFormat::JsonSchema { name: None, schema: r#"{"type": "object"}"#.into(), strict: false };
        assert!(ChoiceTrace::for_format(&format).is_none());
        assert!(ChoiceTrace::for_format(&OutputFormat::JsonObject).is_none());
    }
}
