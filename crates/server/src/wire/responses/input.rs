//! The Responses API's `input`: a string, or a list of items (messages, function
//! calls and their outputs), turned into the conversation the core takes.
//!
//! The server is stateless, so the items are the whole conversation: a client
//! that ran a tool sends back the model's `function_call` and its own
//! `function_call_output`, as the Agents SDK does.

use edgeway_core::{ChatMessage, ToolCall};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{invalid, ApiError};

/// `input` as sent.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InputField {
    /// One user message.
    Text(String),
    /// Items, in conversation order (checked one by one, so that errors can name the item).
    Items(Vec<Value>),
}

/// A message item: `{"type": "message", "role", "content"}`, `type` optional.
#[derive(Debug, Deserialize)]
struct MessageItem {
    role: String,
    content: Content,
}

/// Message content, or a function call's output: a string, or a list of typed parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message: `input_text`, `output_text`, `refusal`, or one this server refuses.
#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    refusal: Option<String>,
}

/// A call the model made earlier: `{"type": "function_call", "call_id", "name", "arguments"}`.
#[derive(Debug, Deserialize)]
struct FunctionCallItem {
    call_id: String,
    name: String,
    /// JSON text, as OpenAI sends it (an object is accepted too).
    arguments: Value,
}

/// What the client's function returned: `{"type": "function_call_output", "call_id", "output"}`.
#[derive(Debug, Deserialize)]
struct FunctionCallOutputItem {
    call_id: String,
    output: Content,
}

/// What an item is, from its `type`.
#[derive(Debug, PartialEq, Eq)]
enum ItemKind {
    /// A message (`type` `message`, or none).
    Message,
    /// A function call of the model.
    FunctionCall,
    /// A function's result.
    FunctionCallOutput,
    /// Reasoning of another model: it has nothing this server's models can read, and is skipped.
    Reasoning,
    /// A reference to a stored item, which a stateless server cannot resolve.
    Reference,
    /// An item of a hosted tool or another type this server does not run.
    Unsupported(String),
}

impl ItemKind {
    fn of(item: &Value) -> Self {
        match item.get("type").and_then(Value::as_str) {
            None | Some("message") => ItemKind::Message,
            Some("function_call") => ItemKind::FunctionCall,
            Some("function_call_output") => ItemKind::FunctionCallOutput,
            Some("reasoning") => ItemKind::Reasoning,
            Some("item_reference") => ItemKind::Reference,
            Some(other) => ItemKind::Unsupported(other.to_owned()),
        }
    }
}

const ROLES: &[&str] = &["user", "system", "developer", "assistant"];

/// The conversation: `instructions` as a system message first, then the input.
pub fn conversation(instructions: Option<String>, input: InputField) -> Result<Vec<ChatMessage>, ApiError> {
    let mut messages = Vec::new();
    if let Some(instructions) = instructions.filter(|text| !text.is_empty()) {
        messages.push(ChatMessage::new("system", instructions));
    }
    match input {
        InputField::Text(text) => messages.push(ChatMessage::new("user", text)),
        InputField::Items(items) => {
            if items.is_empty() {
                return Err(invalid("input", "input must hold at least one item"));
            }
            for (index, item) in items.into_iter().enumerate() {
                push_item(&mut messages, index, item)?;
            }
        }
    }
    Ok(messages)
}

/// Adds one item: a message, a call (joining the assistant message before it), or a call's output.
fn push_item(messages: &mut Vec<ChatMessage>, index: usize, item: Value) -> Result<(), ApiError> {
    if !item.is_object() {
        return Err(invalid("input", format!("input[{index}] must be an object")));
    }
    match ItemKind::of(&item) {
        ItemKind::Message => {
            let message: MessageItem = parse(index, item)?;
            if !ROLES.contains(&message.role.as_str()) {
                return Err(invalid(
                    "input",
                    format!("input[{index}] has role '{}'; use one of {}", message.role, ROLES.join(", ")),
                ));
            }
            // The templates of small models know `system`, not OpenAI's newer `developer`.
            let role = if message.role == "developer" { "system".to_owned() } else { message.role };
            messages.push(ChatMessage::new(role, text_of(index, message.content)?));
        }
        ItemKind::FunctionCall => {
            let call: FunctionCallItem = parse(index, item)?;
            let arguments = match call.arguments {
                Value::String(text) => text,
                value @ Value::Object(_) => value.to_string(),
                _ => return Err(invalid("input", format!("input[{index}].arguments must be a JSON string"))),
            };
            let call = ToolCall { id: non_empty_id(index, call.call_id)?, name: call.name, arguments };
            match messages.last_mut() {
                Some(last) if last.role == "assistant" => last.tool_calls.push(call),
                _ => messages.push(ChatMessage { tool_calls: vec![call], ..ChatMessage::new("assistant", "") }),
            }
        }
        ItemKind::FunctionCallOutput => {
            let output: FunctionCallOutputItem = parse(index, item)?;
            let id = non_empty_id(index, output.call_id)?;
            messages.push(ChatMessage {
                tool_call_id: Some(id),
                ..ChatMessage::new("tool", text_of(index, output.output)?)
            });
        }
        ItemKind::Reasoning => {}
        ItemKind::Reference => {
            return Err(invalid(
                "input",
                format!(
                    "input[{index}] is an item_reference, but this server is stateless and stores no items: send the \
                     item itself"
                ),
            ))
        }
        ItemKind::Unsupported(kind) => {
            return Err(invalid(
                "input",
                format!(
                    "input[{index}] has type '{kind}', which this server does not support; send message, \
                     function_call and function_call_output items"
                ),
            ))
        }
    }
    Ok(())
}

fn parse<T: DeserializeOwned>(index: usize, item: Value) -> Result<T, ApiError> {
    serde_json::from_value(item).map_err(|error| invalid("input", format!("input[{index}]: {error}")))
}

fn non_empty_id(index: usize, id: String) -> Result<String, ApiError> {
    if id.is_empty() {
        return Err(invalid("input", format!("input[{index}].call_id is empty")));
    }
    Ok(id)
}

/// The text of a message or of a call's output; parts other than text are refused.
fn text_of(index: usize, content: Content) -> Result<String, ApiError> {
    let parts = match content {
        Content::Text(text) => return Ok(text),
        Content::Parts(parts) => parts,
    };
    let mut text = String::new();
    for part in parts {
        match (part.kind.as_str(), part.text, part.refusal) {
            ("input_text" | "output_text" | "text", Some(piece), _) | ("refusal", _, Some(piece)) => {
                text.push_str(&piece);
            }
            (kind, _, _) => {
                return Err(invalid(
                    "input",
                    format!("input[{index}] has a content part of type '{kind}', which is not supported; send text"),
                ))
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn items(value: Value) -> InputField {
        serde_json::from_value(value).expect("input")
    }

    #[test]
    fn a_string_is_one_user_message_after_the_instructions() {
        let messages = conversation(Some("Be brief.".into()), InputField::Text("Hi".into())).unwrap();
        assert_eq!(messages, vec![ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")]);
    }

    #[test]
    fn calls_join_one_assistant_message_and_outputs_answer_them() {
        let input = items(json!([
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": {"city": "Rome"}, "id": "fc_1"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]}
        ]));
        let messages = conversation(None, input).unwrap();
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[1].role, "assistant");
        let ids: Vec<&str> = messages[1].tool_calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert_eq!(messages[1].tool_calls[1].arguments, "{\"city\":\"Rome\"}");
        assert_eq!((messages[2].role.as_str(), messages[2].tool_call_id.as_deref()), ("tool", Some("c1")));
        assert_eq!(messages[3].content, "rain");
        assert_eq!(messages[4], ChatMessage::new("assistant", "Done."));
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let refused = |value: Value| conversation(None, items(value)).unwrap_err().to_string();
        assert!(refused(json!([])).contains("at least one"));
        assert!(refused(json!([{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]))
            .contains("'input_image'"));
        assert!(refused(json!([{"type": "item_reference", "id": "msg_1"}])).contains("stateless"));
        assert!(refused(json!([{"type": "web_search_call", "id": "ws_1"}])).contains("'web_search_call'"));
        assert!(refused(json!([{"role": "tool", "content": "x"}])).contains("role 'tool'"));
        assert!(refused(json!([{"type": "function_call_output", "call_id": "", "output": "x"}])).contains("empty"));
    }
}
