//! Structured-output fields as clients send them: OpenAI's `response_format`,
//! llama-server's `json_schema` and `grammar`, and Ollama's `format` ([`ollama_format`]).
//!
//! Every schema is compiled here, so a schema that is not a valid JSON Schema
//! is a 400 that names the problem before any work is done (the engine then
//! refuses one it cannot turn into a grammar, also with a 400).

use edgeway_core::OutputFormat;
use edgeway_structured::FormatCheck;
use serde_json::Value;

use crate::error::{invalid, ApiError};

/// Largest schema or grammar accepted, in bytes of JSON text.
pub const MAX_FORMAT_BYTES: usize = 64 * 1024;

/// The three ways to ask for a format, as sent; at most one may be set.
#[derive(Debug, Default)]
pub struct FormatFields {
    /// OpenAI's `response_format`.
    pub response_format: Option<Value>,
    /// llama-server's `json_schema`: a schema, unwrapped.
    pub json_schema: Option<Value>,
    /// llama-server's `grammar`: GBNF text.
    pub grammar: Option<String>,
}

impl FormatFields {
    /// The requested format (`None` for free text) and the compiled check its answer will
    /// get: a schema is compiled once, here, and one that does not compile is refused.
    pub fn validate(self) -> Result<Option<Checked>, ApiError> {
        let given = [self.response_format.is_some(), self.json_schema.is_some(), self.grammar.is_some()];
        if given.iter().filter(|&&set| set).count() > 1 {
            return Err(invalid(
                "response_format",
                "give at most one of response_format, json_schema and grammar".to_owned(),
            ));
        }
        let format = match (self.response_format, self.json_schema, self.grammar) {
            (Some(format), _, _) => response_format(format)?,
            (_, Some(schema), _) => Some(schema_format("json_schema", None, schema, false)?),
            (_, _, Some(grammar)) => {
                if grammar.trim().is_empty() {
                    return Err(invalid("grammar", "grammar is empty".to_owned()));
                }
                if grammar.len() > MAX_FORMAT_BYTES {
                    return Err(invalid("grammar", format!("grammar is longer than {MAX_FORMAT_BYTES} bytes")));
                }
                Some(checked("grammar", OutputFormat::Grammar(grammar))?)
            }
            _ => None,
        };
        Ok(format)
    }
}

/// `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`. llama-server's
/// shorter forms, a `schema` directly beside `type` (with `json_object` or `json_schema`),
/// are accepted too.
fn response_format(value: Value) -> Result<Option<Checked>, ApiError> {
    const PARAM: &str = "response_format";
    let Value::Object(mut fields) = value else {
        return Err(invalid(PARAM, "response_format must be an object such as {\"type\": \"json_object\"}".to_owned()));
    };
    let kind = match fields.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(invalid(
                PARAM,
                "response_format.type must be 'text', 'json_object' or 'json_schema'".to_owned(),
            ))
        }
    };
    match kind.as_str() {
        "text" => Ok(None),
        "json_object" => match fields.remove("schema") {
            Some(schema) => Ok(Some(schema_format(PARAM, None, schema, false)?)),
            None => Ok(Some(checked(PARAM, OutputFormat::JsonObject)?)),
        },
        "json_schema" => {
            let (name, schema, strict) = match fields.remove("json_schema") {
                Some(Value::Object(mut spec)) => {
                    let name = spec.get("name").and_then(Value::as_str).map(str::to_owned);
                    let strict = spec.get("strict").and_then(Value::as_bool).unwrap_or(false);
                    let schema = spec.remove("schema").ok_or_else(|| {
                        invalid(
                            PARAM,
                            "response_format.json_schema.schema is missing: give the JSON Schema there".to_owned(),
                        )
                    })?;
                    (name, schema, strict)
                }
                Some(_) => return Err(invalid(PARAM, "response_format.json_schema must be an object".to_owned())),
                None => match fields.remove("schema") {
                    Some(schema) => (None, schema, false),
                    None => {
                        return Err(invalid(
                            PARAM,
                            "response_format of type json_schema needs json_schema: {\"name\", \"schema\"}".to_owned(),
                        ))
                    }
                },
            };
            Ok(Some(schema_format(PARAM, name, schema, strict)?))
        }
        other => Err(invalid(
            PARAM,
            format!("response_format.type '{other}' is not supported; use 'text', 'json_object' or 'json_schema'"),
        )),
    }
}

/// Ollama's `format`: `"json"` (any JSON object) or a JSON Schema object; `""` and `null` ask for free text.
pub fn ollama_format(value: Value) -> Result<Option<Checked>, ApiError> {
    const PARAM: &str = "format";
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.is_empty() => Ok(None),
        Value::String(text) if text == "json" => Ok(Some(checked(PARAM, OutputFormat::JsonObject)?)),
        Value::Object(_) => Ok(Some(schema_format(PARAM, None, value, false)?)),
        other => Err(invalid(PARAM, format!("format must be \"json\" or a JSON schema object, got {other}"))),
    }
}

/// The Responses API's `text.format`: `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "name", "schema", "strict"}` (flat, where `response_format`
/// nests the schema under `json_schema`).
pub fn text_format(value: Value) -> Result<Option<Checked>, ApiError> {
    const PARAM: &str = "text.format";
    let Value::Object(mut fields) = value else {
        return Err(invalid(PARAM, "text.format must be an object such as {\"type\": \"json_object\"}".to_owned()));
    };
    match fields.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(checked(PARAM, OutputFormat::JsonObject)?)),
        Some("json_schema") => {
            let name = fields.get("name").and_then(Value::as_str).map(str::to_owned);
            let strict = fields.get("strict").and_then(Value::as_bool).unwrap_or(false);
            let schema = fields.remove("schema").ok_or_else(|| {
                invalid(PARAM, "text.format of type json_schema needs schema: the JSON Schema of the answer".to_owned())
            })?;
            Ok(Some(schema_format(PARAM, name, schema, strict)?))
        }
        Some(other) => Err(invalid(
            PARAM,
            format!("text.format.type '{other}' is not supported; use 'text', 'json_object' or 'json_schema'"),
        )),
        None => Err(invalid(PARAM, "text.format.type must be 'text', 'json_object' or 'json_schema'".to_owned())),
    }
}

/// A format and the compiled check of its answers.
pub type Checked = (OutputFormat, FormatCheck);

/// Compiles the check for `format`; a schema that does not compile is refused, naming `param`.
fn checked(param: &'static str, format: OutputFormat) -> Result<Checked, ApiError> {
    let check = FormatCheck::new(&format).map_err(|error| invalid(param, error.to_string()))?;
    Ok((format, check))
}

/// A JSON-Schema format, once the schema compiles.
fn schema_format(param: &'static str, name: Option<String>, schema: Value, strict: bool) -> Result<Checked, ApiError> {
    let text = schema.to_string();
    if text.len() > MAX_FORMAT_BYTES {
        return Err(invalid(param, format!("the schema is longer than {MAX_FORMAT_BYTES} bytes")));
    }
    checked(param, OutputFormat::JsonSchema { name, schema: text, strict })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The format `fields` ask for, without its compiled check.
    fn format_of(fields: FormatFields) -> Result<Option<OutputFormat>, ApiError> {
        fields.validate().map(|checked| checked.map(|(format, _)| format))
    }

    fn from_response_format(value: Value) -> Result<Option<OutputFormat>, ApiError> {
        format_of(FormatFields { response_format: Some(value), ..FormatFields::default() })
    }

    #[test]
    fn openai_shapes() {
        assert_eq!(from_response_format(json!({"type": "text"})).unwrap(), None);
        assert_eq!(from_response_format(json!({"type": "json_object"})).unwrap(), Some(OutputFormat::JsonObject));
        let format = from_response_format(json!({"type": "json_schema", "json_schema": {
            "name": "part", "strict": true, "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
        }}))
        .unwrap()
        .unwrap();
        let OutputFormat::JsonSchema { name, schema, strict } = format else { panic!("expected a schema") };
        assert_eq!(name.as_deref(), Some("part"));
        assert!(strict);
        assert!(schema.contains("boolean"));
    }

    #[test]
    fn responses_text_format() {
        let format_of = |value: Value| text_format(value).map(|checked| checked.map(|(format, _)| format));
        assert_eq!(format_of(json!({"type": "text"})).unwrap(), None);
        assert_eq!(format_of(json!({"type": "json_object"})).unwrap(), Some(OutputFormat::JsonObject));
        let format = format_of(json!({"type": "json_schema", "name": "part", "strict": true,
            "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}))
        .unwrap()
        .unwrap();
        let OutputFormat::JsonSchema { name, strict, .. } = format else { panic!("expected a schema") };
        assert_eq!((name.as_deref(), strict), (Some("part"), true));
        assert!(format_of(json!({"type": "json_schema", "name": "x"}))
            .unwrap_err()
            .to_string()
            .contains("needs schema"));
        assert!(format_of(json!({"type": "xml"})).unwrap_err().to_string().contains("'xml' is not supported"));
    }

    #[test]
    fn llama_server_shapes() {
        let schema = json!({"type": "object"});
        let fields = FormatFields { json_schema: Some(schema.clone()), ..FormatFields::default() };
        assert!(matches!(format_of(fields).unwrap(), Some(OutputFormat::JsonSchema { .. })));
        let short = from_response_format(json!({"type": "json_object", "schema": schema})).unwrap();
        assert!(matches!(short, Some(OutputFormat::JsonSchema { .. })));
        let fields = FormatFields { grammar: Some("root ::= \"yes\" | \"no\"".into()), ..FormatFields::default() };
        assert!(matches!(format_of(fields).unwrap(), Some(OutputFormat::Grammar(_))));
    }

    #[test]
    fn mistakes_are_named() {
        let message = |result: Result<Option<OutputFormat>, ApiError>| result.unwrap_err().to_string();
        assert!(message(from_response_format(json!({"type": "xml"}))).contains("'xml' is not supported"));
        assert!(message(from_response_format(json!("json"))).contains("must be an object"));
        assert!(message(from_response_format(json!({"type": "json_schema"}))).contains("needs json_schema"));
        assert!(message(from_response_format(json!({"type": "json_schema", "json_schema": {"name": "x"}})))
            .contains("schema is missing"));
        assert!(message(from_response_format(
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}})
        ))
        .contains("not a valid JSON Schema"));
        let both = FormatFields {
            response_format: Some(json!({"type": "json_object"})),
            grammar: Some("root ::= \"a\"".into()),
            ..FormatFields::default()
        };
        assert!(message(format_of(both)).contains("at most one"));
        let empty = FormatFields { grammar: Some("  ".into()), ..FormatFields::default() };
        assert!(message(format_of(empty)).contains("empty"));
    }
}
