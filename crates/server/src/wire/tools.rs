//! OpenAI's tool-calling fields: `tools`, `tool_choice`, `parallel_tool_calls`,
//! the `tool_calls` of assistant messages, and how calls go back out.

use edgeway_core::{ToolCall, ToolCallDelta, ToolChoice, ToolSpec, ToolUse};
use edgeway_structured::tools::ToolsCheck;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{invalid, ApiError};

/// Most tools one request may offer (OpenAI's limit).
pub const MAX_TOOLS: usize = 128;

/// A tool as sent: `{"type": "function", "function": {...}}`.
#[derive(Debug, Deserialize)]
pub struct WireTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Option<WireFunction>,
}

/// A function definition.
#[derive(Debug, Deserialize)]
pub struct WireFunction {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object; absent means a function without arguments.
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

/// A call in an assistant message of the history.
#[derive(Debug, Deserialize)]
pub struct WireToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub function: WireCalledFunction,
}

/// The function a history call named.
#[derive(Debug, Deserialize)]
pub struct WireCalledFunction {
    pub name: String,
    /// JSON text, as OpenAI sends it (an object is accepted too).
    pub arguments: Value,
}

impl WireToolCall {
    /// The core call; arguments become JSON text.
    pub fn into_core(self) -> Result<ToolCall, ApiError> {
        if self.kind.as_deref().is_some_and(|kind| kind != "function") {
            return Err(invalid("messages", "tool_calls entries must have type 'function'"));
        }
        let arguments = match self.function.arguments {
            Value::String(text) => text,
            value @ Value::Object(_) => value.to_string(),
            _ => return Err(invalid("messages", "tool_calls[].function.arguments must be a JSON string")),
        };
        Ok(ToolCall { id: self.id, name: self.function.name, arguments })
    }
}

/// Checks a function name the way OpenAI does: letters, digits, `_` and `-`, at most 64.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How a request spells its tools, for the messages that explain a wrong one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolDialect {
    /// Chat Completions: `{"type": "function", "function": {"name": ...}}`.
    Chat,
    /// The Responses API: flat, `{"type": "function", "name": ...}`.
    Responses,
}

impl ToolDialect {
    /// How this dialect names one function in `tool_choice`.
    fn named_choice(self) -> &'static str {
        match self {
            ToolDialect::Chat => "{\"type\": \"function\", \"function\": {\"name\": ...}}",
            ToolDialect::Responses => "{\"type\": \"function\", \"name\": ...}",
        }
    }
}

/// Validates `tools`, `tool_choice` and `parallel_tool_calls` into the core's [`ToolUse`]
/// and the check the calls get afterwards; `None` when the request offers no tools.
pub fn validate_tools(
    tools: Option<Vec<WireTool>>,
    choice: Option<Value>,
    parallel: Option<bool>,
) -> Result<Option<(ToolUse, ToolsCheck)>, ApiError> {
    let functions = tools
        .map(|tools| {
            tools
                .into_iter()
                .map(|tool| {
                    if tool.kind != "function" {
                        return Err(unsupported_tool(&tool.kind));
                    }
                    tool.function.ok_or_else(|| invalid("tools", "a tool of type 'function' needs 'function'"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    validate_functions(functions, choice, parallel, ToolDialect::Chat)
}

/// The 400 for a tool that is not a function (a hosted tool such as `web_search`).
pub fn unsupported_tool(kind: &str) -> ApiError {
    invalid("tools", format!("tools of type '{kind}' are not supported; use 'function'"))
}

/// What both dialects share once their tools are unwrapped to functions: the limits,
/// names and schemas of the functions, the `tool_choice` forms, and the compiled check.
pub fn validate_functions(
    functions: Option<Vec<WireFunction>>,
    choice: Option<Value>,
    parallel: Option<bool>,
    dialect: ToolDialect,
) -> Result<Option<(ToolUse, ToolsCheck)>, ApiError> {
    let Some(functions) = functions else {
        if choice.as_ref().is_some_and(|c| !c.is_null()) {
            return Err(invalid("tool_choice", "tool_choice needs tools"));
        }
        return Ok(None);
    };
    if functions.is_empty() {
        return Err(invalid("tools", "tools must hold at least one tool; leave the field out for none"));
    }
    if functions.len() > MAX_TOOLS {
        return Err(invalid("tools", format!("at most {MAX_TOOLS} tools per request, got {}", functions.len())));
    }
    let mut specs: Vec<ToolSpec> = Vec::with_capacity(functions.len());
    for function in functions {
        if !valid_name(&function.name) {
            return Err(invalid(
                "tools",
                format!(
                    "tool name '{}' must be 1 to 64 letters, digits, underscores or dashes",
                    function.name.chars().take(80).collect::<String>()
                ),
            ));
        }
        if specs.iter().any(|spec| spec.name == function.name) {
            return Err(invalid("tools", format!("tool '{}' is defined twice", function.name)));
        }
        let parameters = match function.parameters {
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(value @ Value::Object(_)) => value,
            Some(_) => {
                return Err(invalid(
                    "tools",
                    format!("the parameters of tool '{}' must be a JSON Schema object", function.name),
                ))
            }
        };
        specs.push(ToolSpec {
            name: function.name,
            description: function.description,
            parameters: parameters.to_string(),
            strict: function.strict.unwrap_or(false),
        });
    }
    let choice = tool_choice(choice, &specs, dialect)?;
    let tools = ToolUse { tools: specs, choice, parallel: parallel.unwrap_or(true) };
    let check = ToolsCheck::new(&tools)
        .map_err(|(name, error)| invalid("tools", format!("the parameters of tool '{name}': {error}")))?;
    Ok(Some((tools, check)))
}

/// `tool_choice`: `auto`, `none`, `required`, or one of `specs` named in the dialect's form.
fn tool_choice(choice: Option<Value>, specs: &[ToolSpec], dialect: ToolDialect) -> Result<ToolChoice, ApiError> {
    let choice = match choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(text)) => match text.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!("tool_choice must be 'auto', 'none', 'required' or a function, got '{other}'"),
                ))
            }
        },
        Some(Value::Object(object)) => {
            if let Some(kind) = object.get("type").and_then(Value::as_str).filter(|kind| *kind != "function") {
                return Err(invalid(
                    "tool_choice",
                    format!(
                        "tool_choice of type '{kind}' is not supported; name a function as {}",
                        dialect.named_choice()
                    ),
                ));
            }
            let name = object
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| object.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid("tool_choice", format!("tool_choice names a function as {}", dialect.named_choice()))
                })?;
            if !specs.iter().any(|spec| spec.name == name) {
                return Err(invalid(
                    "tool_choice",
                    format!("tool_choice names '{name}', which is not among the tools"),
                ));
            }
            ToolChoice::Function(name.to_owned())
        }
        Some(_) => return Err(invalid("tool_choice", "tool_choice must be a string or an object")),
    };
    Ok(choice)
}

/// A call in a response message.
#[derive(Debug, Serialize)]
pub struct ResponseToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ResponseFunction,
}

/// The function a response call names.
#[derive(Debug, Serialize)]
pub struct ResponseFunction {
    pub name: String,
    pub arguments: String,
}

impl From<ToolCall> for ResponseToolCall {
    fn from(call: ToolCall) -> Self {
        Self {
            id: call.id,
            kind: "function",
            function: ResponseFunction { name: call.name, arguments: call.arguments },
        }
    }
}

/// A call, or a piece of one, in a streamed chunk's `delta.tool_calls`.
#[derive(Debug, Serialize)]
pub struct ChunkToolCall {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: ChunkFunction,
}

/// The function part of a streamed call piece.
#[derive(Debug, Serialize)]
pub struct ChunkFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

impl From<ToolCallDelta> for ChunkToolCall {
    fn from(delta: ToolCallDelta) -> Self {
        let kind = delta.id.as_ref().map(|_| "function");
        Self {
            index: delta.index,
            id: delta.id,
            kind,
            function: ChunkFunction { name: delta.name, arguments: delta.arguments },
        }
    }
}

/// Joins streamed call pieces into whole calls, by index.
#[derive(Debug, Default)]
pub struct CallAssembler {
    calls: Vec<ToolCall>,
}

impl CallAssembler {
    /// Adds one piece.
    pub fn push(&mut self, delta: &ToolCallDelta) {
        let index = delta.index as usize;
        while self.calls.len() <= index {
            self.calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
        }
        let call = &mut self.calls[index];
        if let Some(id) = &delta.id {
            call.id.clone_from(id);
        }
        if let Some(name) = &delta.name {
            call.name.push_str(name);
        }
        call.arguments.push_str(&delta.arguments);
    }

    /// The calls so far.
    pub fn calls(&self) -> &[ToolCall] {
        &self.calls
    }

    /// The whole calls.
    pub fn into_calls(self) -> Vec<ToolCall> {
        self.calls
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str) -> WireTool {
        serde_json::from_value(
            json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}),
        )
        .expect("tool")
    }

    #[test]
    fn tool_choice_forms() {
        let parse =
            |choice: Value| validate_tools(Some(vec![tool("a")]), Some(choice), None).map(|t| t.map(|t| t.0.choice));
        assert_eq!(parse(json!("auto")).ok().flatten(), Some(ToolChoice::Auto));
        assert_eq!(parse(json!("none")).ok().flatten(), Some(ToolChoice::None));
        assert_eq!(parse(json!("required")).ok().flatten(), Some(ToolChoice::Required));
        assert_eq!(
            parse(json!({"type": "function", "function": {"name": "a"}})).ok().flatten(),
            Some(ToolChoice::Function("a".into()))
        );
        assert!(parse(json!({"type": "function", "function": {"name": "b"}})).is_err());
        assert!(parse(json!("sometimes")).is_err());
    }

    #[test]
    fn bad_tools_are_refused() {
        assert!(validate_tools(Some(vec![]), None, None).is_err());
        assert!(validate_tools(Some(vec![tool("a b")]), None, None).is_err());
        assert!(validate_tools(Some(vec![tool("a"), tool("a")]), None, None).is_err());
        assert!(validate_tools(None, Some(json!("auto")), None).is_err());
        let bad_schema: WireTool =
            serde_json::from_value(json!({"type": "function", "function": {"name": "a", "parameters": {"type": 7}}}))
                .expect("tool");
        assert!(validate_tools(Some(vec![bad_schema]), None, None).is_err());
    }

    #[test]
    fn pieces_join_by_index() {
        let mut calls = CallAssembler::default();
        let piece = |index, id: Option<&str>, name: Option<&str>, arguments: &str| ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: arguments.into(),
        };
        calls.push(&piece(0, Some("c0"), Some("a"), "{\"x\":"));
        calls.push(&piece(1, Some("c1"), Some("b"), "{}"));
        calls.push(&piece(0, None, None, "1}"));
        let calls = calls.into_calls();
        assert_eq!(calls[0].arguments, "{\"x\":1}");
        assert_eq!(calls[1].id, "c1");
    }
}
