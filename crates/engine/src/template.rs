//! Chat prompts that carry tools: the model's own Jinja template when it
//! knows tools, else a tool prompt of ours in front of the template
//! llama.cpp renders.
//!
//! llama.cpp's built-in renderer (used for plain chats, see
//! [`crate::model`]) recognizes templates by pattern and knows no tools. A
//! GGUF's `tokenizer.chat_template` is Jinja, written for Hugging Face's
//! renderer, so it is rendered here with `minijinja` configured the way
//! transformers configures Jinja2: blocks trimmed, Python string methods,
//! `raise_exception`, a `tojson` that writes JSON as Python's `json.dumps`
//! does (the spacing the model saw in training).
//!
//! Templates that ignore `tools` (SmolLM2's ChatML, for one) get the generic
//! form instead: the tools described in the system message, earlier calls
//! written as `<tool_call>` blocks and results as `<tool_response>` blocks,
//! which [`edgeway_structured::tools::ToolCallParser`] reads back.

use std::io;

use edgeway_core::{BackendError, ChatMessage, ToolUse};
use edgeway_structured::tools::{tool_json, CLOSE_TAG, OPEN_TAG};
use minijinja::{Environment, ErrorKind};
use serde_json::{json, Value};

/// The name the template is stored under in its environment.
const NAME: &str = "chat";

/// A model's Jinja chat template, ready to render conversations with tools.
pub struct JinjaTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for JinjaTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JinjaTemplate").finish_non_exhaustive()
    }
}

impl JinjaTemplate {
    /// Compiles `source` if it renders tools; `None` for templates that never mention them
    /// (or do not compile), which get the generic tool prompt.
    pub fn for_tools(source: &str, bos_token: String, eos_token: String) -> Option<Self> {
        if !source.contains("tools") {
            return None;
        }
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        match env.add_template_owned(NAME, source.to_owned()) {
            Ok(()) => Some(Self { env, bos_token, eos_token }),
            Err(error) => {
                tracing::warn!(%error, "the model's chat template does not compile as Jinja; tools use the generic prompt");
                None
            }
        }
    }

    /// The prompt for `messages` with `tools` offered, ending where the assistant's turn begins.
    pub fn render(&self, messages: &[ChatMessage], tools: Option<&ToolUse>) -> Result<String, BackendError> {
        let template = self.env.get_template(NAME).map_err(template_error)?;
        let tools: Option<Vec<Value>> = tools.map(|tools| tools.callable().map(tool_json).collect());
        let context = json!({
            "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
            "tools": tools.filter(|tools| !tools.is_empty()),
            "add_generation_prompt": true,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        });
        template.render(context).map_err(template_error)
    }
}

fn template_error(error: minijinja::Error) -> BackendError {
    match error.kind() {
        // The template itself refused the conversation (roles out of order, say).
        ErrorKind::InvalidOperation => {
            BackendError::InvalidRequest(format!("the model's chat template refused the conversation: {error}"))
        }
        _ => BackendError::Internal(format!("cannot render the model's chat template: {error}")),
    }
}

/// `raise_exception(message)`, which Hugging Face templates call on conversations they refuse.
fn raise_exception(message: String) -> Result<minijinja::Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)` (Llama 3's templates put today's date in the system prompt).
fn strftime_now(format: String) -> Result<String, minijinja::Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    // chrono reports a bad format as a formatting error, which `to_string` would turn into a panic.
    write!(out, "{}", chrono::Utc::now().format(&format)).map_err(|_| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("strftime_now: bad format '{format}'"))
    })?;
    Ok(out)
}

/// `x | tojson` (and `tojson(indent=N)`) as transformers defines it: `json.dumps`
/// with non-ASCII kept and Python's `", "` and `": "` separators, not minijinja's
/// HTML-safe escaping.
fn tojson(value: minijinja::Value, kwargs: minijinja::value::Kwargs) -> Result<minijinja::Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let value = serde_json::to_value(&value)
        .map_err(|error| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {error}")))?;
    let mut out = Vec::new();
    let written = match indent {
        Some(width) => {
            let indent = " ".repeat(width);
            let mut serializer = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes()),
            );
            serde::Serialize::serialize(&value, &mut serializer)
        }
        None => {
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
            serde::Serialize::serialize(&value, &mut serializer)
        }
    };
    written.map_err(|error| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {error}")))?;
    Ok(minijinja::Value::from_safe_string(String::from_utf8_lossy(&out).into_owned()))
}

/// JSON on one line with Python's default separators: `{"a": 1, "b": [1, 2]}`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// A message as Hugging Face templates expect it: arguments as objects, not JSON text.
fn message_json(message: &ChatMessage) -> Value {
    let mut value = json!({ "role": message.role, "content": message.content });
    if !message.tool_calls.is_empty() {
        if message.content.is_empty() {
            value["content"] = Value::Null;
        }
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| {
                let arguments: Value =
                    serde_json::from_str(&call.arguments).unwrap_or_else(|_| Value::String(call.arguments.clone()));
                json!({ "id": call.id, "type": "function", "function": { "name": call.name, "arguments": arguments } })
            })
            .collect();
        value["tool_calls"] = Value::Array(calls);
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = Value::String(id.clone());
    }
    value
}

/// The conversation in the generic tool form, for templates that know no tools:
/// the tools described in the system message, calls and results as tagged text.
pub fn generic_messages(messages: &[ChatMessage], tools: Option<&ToolUse>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
    let callable: Vec<Value> = tools.map(|tools| tools.callable().map(tool_json).collect()).unwrap_or_default();
    if !callable.is_empty() {
        let prompt = tool_prompt(&callable, tools.is_some_and(ToolUse::call_required));
        match messages.first() {
            Some(first) if first.role == "system" => {
                out.push(ChatMessage::new("system", format!("{}\n\n{prompt}", first.content)));
            }
            _ => out.push(ChatMessage::new("system", prompt)),
        }
    }
    let skip_first_system = !callable.is_empty() && messages.first().is_some_and(|m| m.role == "system");
    for message in messages.iter().skip(usize::from(skip_first_system)) {
        let converted = match message.role.as_str() {
            "assistant" if !message.tool_calls.is_empty() => {
                let mut text = message.content.clone();
                for call in &message.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    let arguments: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                    let body = json!({ "name": call.name, "arguments": arguments });
                    text.push_str(&format!("{OPEN_TAG}\n{body}\n{CLOSE_TAG}"));
                }
                ChatMessage::new("assistant", text)
            }
            "tool" => ChatMessage::new("user", format!("<tool_response>\n{}\n</tool_response>", message.content)),
            _ => ChatMessage::new(message.role.clone(), message.content.clone()),
        };
        // Consecutive tool results become one user turn, as Hermes-style templates write them.
        match out.last_mut() {
            Some(last)
                if message.role == "tool" && last.role == "user" && last.content.ends_with("</tool_response>") =>
            {
                last.content.push('\n');
                last.content.push_str(&converted.content);
            }
            _ => out.push(converted),
        }
    }
    out
}

/// The system-prompt text that offers `tools` in the generic form.
fn tool_prompt(tools: &[Value], required: bool) -> String {
    let listing: Vec<String> = tools.iter().map(Value::to_string).collect();
    let when = if required {
        "Answer with at least one function call."
    } else {
        "Call a function only when it helps to answer; otherwise answer in plain text."
    };
    format!(
        "You can call these functions, described as JSON Schema:\n<tools>\n{}\n</tools>\n\n\
         To call one, write its name and arguments as a JSON object between {OPEN_TAG} and {CLOSE_TAG} tags:\n\
         {OPEN_TAG}\n{{\"name\": \"function_name\", \"arguments\": {{\"argument\": \"value\"}}}}\n{CLOSE_TAG}\n\
         The results come back between <tool_response> tags. {when}",
        listing.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use edgeway_core::{ToolCall, ToolChoice, ToolSpec};

    use super::*;

    fn tools(choice: ToolChoice) -> ToolUse {
        ToolUse {
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: Some("Weather in a city".into()),
                parameters: r#"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"#
                    .into(),
                strict: false,
            }],
            choice,
            parallel: true,
        }
    }

    fn conversation() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Weather in Oslo?"),
            ChatMessage {
                role: "assistant".into(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into(),
                }],
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".into(),
                content: "4 C".into(),
                tool_call_id: Some("call_1".into()),
                ..ChatMessage::default()
            },
        ]
    }

    /// A small Hermes-style template written for this test (the shape Qwen2.5's has).
    const HERMES_STYLE: &str = r#"{%- if tools %}<|im_start|>system
{{ messages[0].content if messages[0].role == 'system' else 'You are helpful.' }}
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and tools %}{# already written #}
{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{% for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content.strip() }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

    #[test]
    fn renders_tools_and_calls_with_a_hermes_style_template() {
        let template = JinjaTemplate::for_tools(HERMES_STYLE, String::new(), "<|im_end|>".into()).expect("compiles");
        let text = template.render(&conversation(), Some(&tools(ToolChoice::Auto))).expect("renders");
        assert!(text.starts_with("<|im_start|>system\nBe brief.\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""), "{text}");
        assert!(
            text.contains(
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"
            ),
            "{text}"
        );
        assert!(text.contains("<tool_response>\n4 C\n</tool_response>"), "{text}");
        assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
    }

    #[test]
    fn tool_choice_none_hides_the_tools() {
        let template = JinjaTemplate::for_tools(HERMES_STYLE, String::new(), String::new()).expect("compiles");
        let text = template.render(&conversation()[..2], Some(&tools(ToolChoice::None))).expect("renders");
        assert!(!text.contains("<tools>"), "{text}");
    }

    #[test]
    fn templates_without_tools_are_not_used_for_them() {
        assert!(JinjaTemplate::for_tools(
            "{% for m in messages %}{{ m.content }}{% endfor %}",
            String::new(),
            String::new()
        )
        .is_none());
    }

    #[test]
    fn raise_exception_is_the_clients_error() {
        let source = "{% if tools %}{{ raise_exception('tools need a user message') }}{% endif %}";
        let template = JinjaTemplate::for_tools(source, String::new(), String::new()).expect("compiles");
        let error = template.render(&conversation(), Some(&tools(ToolChoice::Auto))).unwrap_err();
        assert!(
            matches!(error, BackendError::InvalidRequest(ref m) if m.contains("tools need a user message")),
            "{error:?}"
        );
    }

    #[test]
    fn generic_form_describes_tools_and_writes_calls_as_tags() {
        let messages = generic_messages(&conversation(), Some(&tools(ToolChoice::Required)));
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0].role, "system");
        assert!(messages[0].content.starts_with("Be brief.\n\nYou can call these functions"));
        assert!(messages[0].content.contains("\"name\":\"get_weather\""));
        assert!(messages[0].content.contains("at least one function call"));
        assert_eq!(
            messages[2].content,
            "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}\n</tool_call>"
        );
        assert_eq!(messages[3].role, "user");
        assert_eq!(messages[3].content, "<tool_response>\n4 C\n</tool_response>");
    }

    #[test]
    fn strftime_now_formats_today_and_refuses_bad_formats() {
        assert_eq!(strftime_now("%Y".into()).unwrap(), chrono::Utc::now().format("%Y").to_string());
        assert!(strftime_now("%Q".into()).is_err());
    }

    #[test]
    fn tojson_uses_python_spacing() {
        let mut env = Environment::new();
        env.add_filter("tojson", tojson);
        let out = env.render_str("{{ x | tojson }}", json!({"x": {"a": [1, 2], "b": "<é>"}})).expect("renders");
        assert_eq!(out, r#"{"a": [1, 2], "b": "<é>"}"#);
    }
}
