//! Structured output: whether an answer has the shape its request asked for.
//!
//! The local engine enforces a format while it samples (a grammar made from
//! the schema), so its answers are well-formed by construction. This crate
//! checks the finished answer anyway, on every route, because
//! - a grammar does not capture every keyword of a schema (string lengths,
//!   numeric bounds, formats are checked here, not while sampling);
//! - an answer cut by `max_tokens` is incomplete JSON and must say so;
//! - a cloud upstream may ignore `response_format` altogether.
//!
//! The same check refuses a schema that is not a valid JSON Schema before any
//! work is done, so a bad schema is a 400 and never unconstrained text.

pub mod choices;
pub mod tools;

use edgeway_core::{FinishReason, OutputFormat};
use serde_json::Value;

/// Why a requested format cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The schema is not JSON.
    #[error("the schema is not valid JSON: {0}")]
    NotJson(String),
    /// The schema is JSON but not a JSON Schema this server can check.
    #[error("the schema is not a valid JSON Schema: {0}")]
    InvalidSchema(String),
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The answer has the requested shape.
    Valid,
    /// Generation was cut (`finish_reason: length`) before the answer was complete.
    Truncated,
    /// The answer does not have the requested shape; the reason is written for the client.
    Invalid(String),
    /// A raw grammar: enforced while sampling, with nothing to check afterwards.
    Unchecked,
}

impl Verdict {
    /// `valid`, `truncated`, `invalid` or `unchecked`, as logs and metrics spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Truncated => "truncated",
            Verdict::Invalid(_) => "invalid",
            Verdict::Unchecked => "unchecked",
        }
    }

    /// True unless the answer is known not to have the requested shape.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Valid | Verdict::Unchecked)
    }
}

/// A compiled check for one requested format.
pub struct FormatCheck {
    kind: &'static str,
    rule: Rule,
}

enum Rule {
    JsonObject,
    Schema(Box<jsonschema::Validator>),
    Unchecked,
}

impl std::fmt::Debug for FormatCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = match self.rule {
            Rule::JsonObject => "json_object",
            Rule::Schema(_) => "json_schema",
            Rule::Unchecked => "unchecked",
        };
        f.debug_struct("FormatCheck").field("kind", &self.kind).field("rule", &rule).finish()
    }
}

impl FormatCheck {
    /// Compiles the check for `format`; a schema that is not a valid JSON Schema is an error.
    pub fn new(format: &OutputFormat) -> Result<Self, FormatError> {
        let rule = match format {
            OutputFormat::JsonObject => Rule::JsonObject,
            OutputFormat::Grammar(_) => Rule::Unchecked,
            OutputFormat::JsonSchema { schema, .. } => {
                let schema: Value =
                    serde_json::from_str(schema).map_err(|error| FormatError::NotJson(error.to_string()))?;
                check_schema_shape(&schema)?;
                let validator = jsonschema::validator_for(&schema)
                    .map_err(|error| FormatError::InvalidSchema(error.to_string()))?;
                Rule::Schema(Box::new(validator))
            }
        };
        Ok(Self { kind: format.kind(), rule })
    }

    /// The kind of format checked (`json_object`, `json_schema`, `grammar`), as logs spell it.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Checks a finished answer that ended for `finish`.
    pub fn check(&self, answer: &str, finish: FinishReason) -> Verdict {
        let incomplete = |reason: String| match finish {
            FinishReason::Length => Verdict::Truncated,
            FinishReason::Stop | FinishReason::ToolCalls => Verdict::Invalid(reason),
        };
        let value = match &self.rule {
            Rule::Unchecked => return Verdict::Unchecked,
            Rule::JsonObject | Rule::Schema(_) => match serde_json::from_str::<Value>(answer.trim()) {
                Ok(value) => value,
                Err(error) => return incomplete(format!("the answer is not JSON: {error}")),
            },
        };
        match &self.rule {
            Rule::JsonObject if !value.is_object() => incomplete("the answer is JSON but not an object".into()),
            Rule::Schema(validator) => match validator.iter_errors(&value).next() {
                None => Verdict::Valid,
                Some(error) => {
                    let at = error.instance_path().to_string();
                    let at = if at.is_empty() { "the answer".to_owned() } else { format!("at {at}") };
                    incomplete(format!("the answer does not match the schema: {at}: {error}"))
                }
            },
            _ => Verdict::Valid,
        }
    }
}

/// A schema must be an object or a boolean (JSON Schema's rule); anything else is a
/// mistake the validator would accept silently.
fn check_schema_shape(schema: &Value) -> Result<(), FormatError> {
    match schema {
        Value::Object(_) | Value::Bool(_) => Ok(()),
        other => Err(FormatError::InvalidSchema(format!(
            "a schema must be a JSON object, got {}",
            match other {
                Value::Null => "null",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                _ => "something else",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> OutputFormat {
        OutputFormat::JsonSchema { name: None, schema: text.into(), strict: true }
    }

    const PART: &str = r#"{"type":"object","properties":{"defect":{"type":"boolean"},
        "kind":{"enum":["scratch","crack","none"]},"size_mm":{"type":"number","minimum":0}},
        "required":["defect","kind"],"additionalProperties":false}"#;

    #[test]
    fn a_matching_answer_is_valid() {
        let check = FormatCheck::new(&schema(PART)).unwrap();
        assert_eq!(check.check(r#" {"defect": true, "kind": "scratch"}"#, FinishReason::Stop), Verdict::Valid);
    }

    #[test]
    fn a_mismatch_names_where() {
        let check = FormatCheck::new(&schema(PART)).unwrap();
        let Verdict::Invalid(reason) = check.check(r#"{"defect": true, "kind": "dent"}"#, FinishReason::Stop) else {
            panic!("expected invalid");
        };
        assert!(reason.contains("/kind"), "{reason}");
        let Verdict::Invalid(reason) = check.check(r#"{"defect": 1, "kind": "none"}"#, FinishReason::Stop) else {
            panic!("expected invalid");
        };
        assert!(reason.contains("/defect"), "{reason}");
    }

    #[test]
    fn a_cut_answer_is_truncated_not_invalid() {
        let check = FormatCheck::new(&schema(PART)).unwrap();
        assert_eq!(check.check(r#"{"defect": tr"#, FinishReason::Length), Verdict::Truncated);
        assert!(matches!(check.check(r#"{"defect": tr"#, FinishReason::Stop), Verdict::Invalid(_)));
        // Cut exactly at the end: complete and valid, whatever the finish reason.
        assert_eq!(check.check(r#"{"defect":false,"kind":"none"}"#, FinishReason::Length), Verdict::Valid);
    }

    #[test]
    fn json_object_wants_an_object() {
        let check = FormatCheck::new(&OutputFormat::JsonObject).unwrap();
        assert_eq!(check.check(r#"{"a": [1, 2]}"#, FinishReason::Stop), Verdict::Valid);
        assert!(matches!(check.check("[1, 2]", FinishReason::Stop), Verdict::Invalid(_)));
        assert!(matches!(check.check("Sure! Here is", FinishReason::Stop), Verdict::Invalid(_)));
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert!(matches!(FormatCheck::new(&schema("{not json")), Err(FormatError::NotJson(_))));
        assert!(matches!(FormatCheck::new(&schema(r#""object""#)), Err(FormatError::InvalidSchema(_))));
        assert!(matches!(FormatCheck::new(&schema(r#"{"type": "objekt"}"#)), Err(FormatError::InvalidSchema(_))));
        assert!(matches!(
            FormatCheck::new(&schema(r#"{"type": "string", "pattern": "(unclosed"}"#)),
            Err(FormatError::InvalidSchema(_))
        ));
    }

    #[test]
    fn grammars_are_not_checked_afterwards() {
        let check = FormatCheck::new(&OutputFormat::Grammar("root ::= \"yes\"".into())).unwrap();
        assert_eq!(check.check("anything", FinishReason::Stop), Verdict::Unchecked);
    }
}
