//! Where an answer made a constrained choice: the values its schema limits to
//! an `enum` (or a `const`), found in the answer in the order they were written.
//!
//! The engine knows how probable each token was; this module says which
//! stretch of the answer's text is a choice, so the two together give the
//! probability the model gave each chosen value.

use serde_json::Value;

/// One constrained value in an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Its place in the answer, as a JSON Pointer (`/kind`, `/tags/1`; empty for the whole answer).
    pub path: String,
    /// The value.
    pub value: Value,
    /// How many values the schema allowed there (only choices among two or more count).
    pub options: usize,
}

/// Whether `schema` limits some value to a set of choices anywhere (only such answers are traced).
pub fn has_choices(schema: &Value) -> bool {
    match schema {
        Value::Object(object) => {
            object.get("enum").and_then(Value::as_array).is_some_and(|values| values.len() >= 2)
                || object.values().any(has_choices)
        }
        Value::Array(items) => items.iter().any(has_choices),
        _ => false,
    }
}

/// The choices `answer` made under `schema`, in document order (the order they were generated).
/// Follows `properties`, `items`/`prefixItems` and local `$ref`s into `$defs`/`definitions`.
pub fn choices(schema: &Value, answer: &Value) -> Vec<Choice> {
    let mut found = Vec::new();
    walk(schema, schema, answer, String::new(), &mut found, 0);
    found
}

/// Deeper than this is a recursive schema that is not worth following.
const MAX_DEPTH: usize = 32;

fn walk(root: &Value, schema: &Value, value: &Value, path: String, found: &mut Vec<Choice>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(root, schema);
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if options.len() >= 2 && options.contains(value) {
            found.push(Choice { path, value: value.clone(), options: options.len() });
        }
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, field) in fields {
                if let Some(field_schema) = properties.and_then(|p| p.get(key)) {
                    let path = format!("{path}/{}", escape(key));
                    walk(root, field_schema, field, path, found, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            let prefix = schema.get("prefixItems").and_then(Value::as_array);
            for (index, item) in items.iter().enumerate() {
                let item_schema = prefix.and_then(|p| p.get(index)).or_else(|| schema.get("items"));
                if let Some(item_schema) = item_schema {
                    walk(root, item_schema, item, format!("{path}/{index}"), found, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A local `$ref` (`#/$defs/x`, `#/definitions/x`) to what it points at.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..MAX_DEPTH {
        match current.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => match root.pointer(pointer) {
                Some(target) => current = target,
                None => return current,
            },
            None => return current,
        }
    }
    current
}

/// A key as a JSON Pointer token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "$defs": {"place": {"enum": ["edge", "center"]}},
            "properties": {
                "kind": {"enum": ["scratch", "crack", "none"]},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/place"}},
                "note": {"type": "string"},
                "fixed": {"enum": ["only"]}
            }
        })
    }

    #[test]
    fn finds_choices_in_document_order() {
        let answer = json!({"tags": ["center", "edge"], "kind": "crack", "note": "crack", "fixed": "only"});
        let found = choices(&schema(), &answer);
        let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/tags/0", "/tags/1", "/kind"]);
        assert_eq!(found[2].value, json!("crack"));
        assert_eq!(found[2].options, 3);
    }

    #[test]
    fn a_whole_answer_can_be_the_choice() {
        let found = choices(&json!({"enum": ["A", "B", "C", "D"]}), &json!("C"));
        assert_eq!(found, vec![Choice { path: String::new(), value: json!("C"), options: 4 }]);
        assert!(has_choices(&schema()));
        assert!(!has_choices(&json!({"type": "object", "properties": {"a": {"enum": ["x"]}}})));
    }
}
