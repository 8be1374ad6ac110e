//! Function calls in a model's text: what the model writes when it calls a
//! tool, and the schema a call must follow.
//!
//! Small open models write calls the Hermes way (Qwen2.5, Hermes, SmolLM3 and
//! the edge engine's own tool prompt for templates without tools):
//!
//! ```text
//! <tool_call>
//! {"name": "get_weather", "arguments": {"city": "Oslo"}}
//! </tool_call>
//! ```
//!
//! [`ToolCallParser`] splits streamed text into plain text and such calls. It
//! holds back only what could still become a tag, so text streams as it
//! comes; a call is released whole when its closing tag arrives. When the
//! answer carries no tags but is, as a whole, a JSON call object (some models
//! answer `{"name": …, "arguments": …}` bare), [`ToolCallParser::finish`]
//! recognizes it: the generic fallback.

use edgeway_core::{FinishReason, OutputFormat, ToolCall, ToolSpec, ToolUse};
use serde_json::{json, Map, Value};

use crate::{FormatCheck, FormatError, Verdict};

/// Opens a call.
pub const OPEN_TAG: &str = "<tool_call>";
/// Closes a call.
pub const CLOSE_TAG: &str = "</tool_call>";

/// A call the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    /// The function's name.
    pub name: String,
    /// Its arguments as compact JSON text (an object).
    pub arguments: String,
}

/// A piece of the answer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text for the message's `content`.
    Text(String),
    /// A complete function call.
    Call(ParsedCall),
}

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace so far: the answer may still be a bare JSON call.
    Start,
    /// The answer began with `{` or a code fence: held whole until the end, then tried as a bare call.
    BareJson,
    /// Between calls, or in text.
    Text,
    /// After an opening tag, collecting the call's JSON.
    InCall,
}

/// Splits generated text into text and function calls (see the module docs).
#[derive(Debug, Clone)]
pub struct ToolCallParser {
    state: State,
    /// Text not yet released: a possible tag prefix, pending whitespace, or a call's body.
    held: String,
    /// Calls found so far.
    calls: usize,
    /// Functions the request offers; a bare JSON object only counts as a call of one of them.
    names: Vec<String>,
}

impl ToolCallParser {
    /// A parser for an answer that may call the functions named `names`.
    pub fn new(names: Vec<String>) -> Self {
        Self { state: State::Start, held: String::new(), calls: 0, names }
    }

    /// How many calls were found so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// The call being written, once its JSON is whole but before its closing tag has come
    /// (so a caller can notice a repeated call a few tokens early).
    pub fn pending_call(&self) -> Option<ParsedCall> {
        if self.state != State::InCall {
            return None;
        }
        let body = &self.held[..self.held.len() - partial_suffix(&self.held, CLOSE_TAG)];
        parse_call(body)
    }

    /// Adds generated text; returns what became final.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.held.trim_start();
                    if trimmed.is_empty() {
                        return out;
                    }
                    // A fence could still become one; wait for its first three characters.
                    if trimmed.len() < 3 && "```".starts_with(trimmed) {
                        return out;
                    }
                    let bare = trimmed.starts_with('{') || trimmed.starts_with("```");
                    self.state = if bare { State::BareJson } else { State::Text };
                }
                State::BareJson => return out,
                State::Text => {
                    if let Some(at) = self.held.find(OPEN_TAG) {
                        let before: String = self.held.drain(..at + OPEN_TAG.len()).collect();
                        self.emit_text(before[..at].trim_end(), true, &mut out);
                        self.state = State::InCall;
                        continue;
                    }
                    // Release all but what could still become an opening tag and
                    // trailing whitespace (dropped if a call follows).
                    let keep = partial_suffix(&self.held, OPEN_TAG);
                    let end = self.held.len() - keep;
                    let release = self.held[..end].trim_end().len();
                    if release > 0 {
                        let text: String = self.held.drain(..release).collect();
                        self.emit_text(&text, false, &mut out);
                    }
                    return out;
                }
                State::InCall => {
                    let Some(at) = self.held.find(CLOSE_TAG) else { return out };
                    let body: String = self.held.drain(..at + CLOSE_TAG.len()).collect();
                    let body = &body[..at];
                    match parse_call(body) {
                        Some(call) => {
                            self.calls += 1;
                            out.push(Piece::Call(call));
                        }
                        None => out.push(Piece::Text(format!("{OPEN_TAG}{body}{CLOSE_TAG}"))),
                    }
                    self.state = State::Text;
                }
            }
        }
    }

    /// Releases what is still held when the answer ends.
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.state {
            State::Start => {}
            State::BareJson => match parse_bare(&held, &self.names) {
                Some(calls) => {
                    self.calls += calls.len();
                    out.extend(calls.into_iter().map(Piece::Call));
                }
                None => out.push(Piece::Text(held)),
            },
            State::Text => self.emit_text(&held, self.calls > 0, &mut out),
            // An unclosed call (the model ended without the tag, or was cut): a call if its JSON is whole.
            State::InCall => match parse_call(&held) {
                Some(call) => {
                    self.calls += 1;
                    out.push(Piece::Call(call));
                }
                None => out.push(Piece::Text(format!("{OPEN_TAG}{held}"))),
            },
        }
        out
    }

    /// Emits `text` unless it is only whitespace beside a call (`drop_blank`).
    fn emit_text(&self, text: &str, drop_blank: bool, out: &mut Vec<Piece>) {
        if text.is_empty() || (drop_blank && text.trim().is_empty()) {
            return;
        }
        // Whitespace right after a call separates calls; it is not content.
        let text =
            if self.calls > 0 && matches!(out.last(), None | Some(Piece::Call(_))) { text.trim_start() } else { text };
        if !text.is_empty() {
            out.push(Piece::Text(text.to_owned()));
        }
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

/// A call object's JSON: `{"name": …, "arguments": {…}}` (`parameters` accepted
/// for `arguments`, and arguments given as a JSON string are unwrapped).
fn parse_call(body: &str) -> Option<ParsedCall> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    call_from_value(&value)
}

fn call_from_value(value: &Value) -> Option<ParsedCall> {
    let object = value.as_object()?;
    let name = object.get("name")?.as_str()?.to_owned();
    let arguments = match object.get("arguments").or_else(|| object.get("parameters")) {
        None => Value::Object(Map::new()),
        Some(Value::String(text)) => serde_json::from_str(text).ok()?,
        Some(value) => value.clone(),
    };
    if !arguments.is_object() {
        return None;
    }
    Some(ParsedCall { name, arguments: arguments.to_string() })
}

/// A whole answer that is a call object (or an array of them) of an offered function,
/// bare or in a Markdown code fence (as Qwen2.5-Coder writes its calls).
fn parse_bare(text: &str, names: &[String]) -> Option<Vec<ParsedCall>> {
    let text = text.trim();
    let text = match text.strip_prefix("```") {
        Some(fenced) => fenced.split_once('\n')?.1.trim_end().strip_suffix("```")?,
        None => text,
    };
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    let calls = match &value {
        Value::Array(items) => items.iter().map(call_from_value).collect::<Option<Vec<_>>>()?,
        // `{"tool_calls": [...]}` and `{"tool_call": {...}}`, as some generic prompts ask.
        Value::Object(object) if object.contains_key("tool_calls") => {
            object.get("tool_calls")?.as_array()?.iter().map(call_from_value).collect::<Option<Vec<_>>>()?
        }
        Value::Object(object) if object.contains_key("tool_call") => vec![call_from_value(object.get("tool_call")?)?],
        value => vec![call_from_value(value)?],
    };
    let known = !calls.is_empty() && calls.iter().all(|call| names.iter().any(|name| name == &call.name));
    known.then_some(calls)
}

/// A tool as OpenAI's chat API writes it, `{"type": "function", "function": {"name",
/// "description", "parameters"}}`: what templates render and upstreams are sent.
pub fn tool_json(tool: &ToolSpec) -> Value {
    let parameters: Value = serde_json::from_str(&tool.parameters).unwrap_or_else(|_| json!({"type": "object"}));
    let function = match &tool.description {
        Some(description) => json!({ "name": tool.name, "description": description, "parameters": parameters }),
        None => json!({ "name": tool.name, "parameters": parameters }),
    };
    json!({ "type": "function", "function": function })
}

/// The JSON Schema of one call of any of `tools`: `{"name": <one of them>,
/// "arguments": <its parameters>}`, for constraining what follows an opening tag.
pub fn call_schema<'a>(tools: impl IntoIterator<Item = &'a ToolSpec>) -> Value {
    let variants: Vec<Value> = tools
        .into_iter()
        .map(|tool| {
            let parameters: Value =
                serde_json::from_str(&tool.parameters).unwrap_or_else(|_| json!({"type": "object"}));
            json!({
                "type": "object",
                "properties": { "name": { "const": tool.name }, "arguments": parameters },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    match <[Value; 1]>::try_from(variants) {
        Ok([one]) => one,
        Err(variants) => json!({ "anyOf": variants }),
    }
}

/// Checks the calls of a finished answer against the functions' parameter schemas.
#[derive(Debug)]
pub struct ToolsCheck {
    checks: Vec<(String, FormatCheck)>,
    required: bool,
}

impl ToolsCheck {
    /// Compiles every function's parameters schema; the error names the function whose schema is not valid.
    pub fn new(tools: &ToolUse) -> Result<Self, (String, FormatError)> {
        let checks = tools
            .tools
            .iter()
            .map(|tool| {
                let format = OutputFormat::JsonSchema { name: None, schema: tool.parameters.clone(), strict: false };
                FormatCheck::new(&format)
                    .map(|check| (tool.name.clone(), check))
                    .map_err(|error| (tool.name.clone(), error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { checks, required: tools.call_required() })
    }

    /// `valid` when every call names an offered function with arguments its schema accepts
    /// (and there is a call when one was required).
    pub fn check(&self, calls: &[ToolCall], finish: FinishReason) -> Verdict {
        if calls.is_empty() {
            return match (self.required, finish) {
                (false, _) => Verdict::Valid,
                (true, FinishReason::Length) => Verdict::Truncated,
                (true, _) => Verdict::Invalid("a tool call was required but the answer made none".into()),
            };
        }
        for call in calls {
            let Some((_, check)) = self.checks.iter().find(|(name, _)| name == &call.name) else {
                return Verdict::Invalid(format!("the answer calls '{}', which the request does not offer", call.name));
            };
            match check.check(&call.arguments, FinishReason::Stop) {
                Verdict::Valid | Verdict::Unchecked => {}
                Verdict::Invalid(reason) => return Verdict::Invalid(format!("arguments of '{}': {reason}", call.name)),
                Verdict::Truncated => return Verdict::Invalid(format!("arguments of '{}' are incomplete", call.name)),
            }
        }
        Verdict::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["get_weather".to_owned(), "add".to_owned()]
    }

    /// Feeds `text` split at `at` and returns the pieces, adjacent texts joined.
    fn run(pieces: &[&str]) -> Vec<Piece> {
        let mut parser = ToolCallParser::new(names());
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(parser.push(piece));
        }
        out.extend(parser.finish());
        join_texts(out)
    }

    fn join_texts(pieces: Vec<Piece>) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for piece in pieces {
            match (out.last_mut(), piece) {
                (Some(Piece::Text(last)), Piece::Text(more)) => last.push_str(&more),
                (_, piece) => out.push(piece),
            }
        }
        out
    }

    fn call(name: &str, arguments: &str) -> Piece {
        Piece::Call(ParsedCall { name: name.into(), arguments: arguments.into() })
    }

    /// The same pieces whatever the split point (and split into single characters).
    fn check_every_split(text: &str, expected: &[Piece]) {
        assert_eq!(run(&[text]), expected, "whole");
        for at in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            assert_eq!(run(&[&text[..at], &text[at..]]), expected, "split at {at}");
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(&chars), expected, "one character at a time");
    }

    #[test]
    fn plain_text_passes_through() {
        check_every_split(
            "The weather is fine. <b>bold</b> and <tool",
            &[Piece::Text("The weather is fine. <b>bold</b> and <tool".into())],
        );
    }

    #[test]
    fn one_hermes_call() {
        check_every_split(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
            &[call("get_weather", r#"{"city":"Oslo"}"#)],
        );
    }

    #[test]
    fn parallel_calls_with_text_before() {
        check_every_split(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 1, \\\"b\\\": 2}\"}\n</tool_call>\n",
            &[
                Piece::Text("Let me check.".into()),
                call("get_weather", r#"{"city":"Oslo"}"#),
                call("add", r#"{"a":1,"b":2}"#),
            ],
        );
    }

    #[test]
    fn unclosed_call_at_the_end_is_still_a_call_when_whole() {
        check_every_split("<tool_call>{\"name\": \"add\", \"parameters\": {\"a\": 1}}", &[call("add", r#"{"a":1}"#)]);
    }

    #[test]
    fn broken_call_comes_back_as_text() {
        let text = "<tool_call>{\"name\": \"add\", \"argu</tool_call>";
        check_every_split(text, &[Piece::Text(text.into())]);
        check_every_split("<tool_call>{\"name\": \"ad", &[Piece::Text("<tool_call>{\"name\": \"ad".into())]);
    }

    #[test]
    fn bare_json_call_of_an_offered_function() {
        check_every_split(" {\"name\": \"add\", \"arguments\": {\"a\": 1}}", &[call("add", r#"{"a":1}"#)]);
        check_every_split(
            "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {}}]}",
            &[call("add", "{}"), call("get_weather", "{}")],
        );
    }

    #[test]
    fn a_call_in_a_code_fence_is_a_call() {
        let text = "```json\n{\n  \"name\": \"add\",\n  \"arguments\": {\"a\": 1}\n}\n```";
        check_every_split(text, &[call("add", r#"{"a":1}"#)]);
        let code = "```python\nprint('hi')\n```";
        check_every_split(code, &[Piece::Text(code.into())]);
        check_every_split("``not a fence", &[Piece::Text("``not a fence".into())]);
    }

    #[test]
    fn bare_json_that_is_not_a_call_stays_text() {
        let text = "{\"name\": \"Ada\", \"age\": 36}";
        check_every_split(text, &[Piece::Text(text.into())]);
        let text = "{\"name\": \"unknown\", \"arguments\": {}}";
        check_every_split(text, &[Piece::Text(text.into())]);
    }

    #[test]
    fn a_whole_call_is_pending_before_its_closing_tag() {
        let mut parser = ToolCallParser::new(names());
        parser.push("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}");
        assert_eq!(parser.pending_call(), None);
        parser.push("}\n</tool");
        assert_eq!(parser.pending_call(), Some(ParsedCall { name: "add".into(), arguments: r#"{"a":1}"#.into() }));
        parser.push("_call>");
        assert_eq!(parser.pending_call(), None);
    }

    #[test]
    fn counts_calls() {
        let mut parser = ToolCallParser::new(names());
        parser.push("<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>");
        assert_eq!(parser.calls(), 1);
    }

    #[test]
    fn tools_check_validates_arguments() {
        let tools = ToolUse {
            tools: vec![ToolSpec {
                name: "add".into(),
                description: None,
                parameters: r#"{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}"#.into(),
                strict: false,
            }],
            choice: edgeway_core::ToolChoice::Required,
            parallel: false,
        };
        let check = ToolsCheck::new(&tools).expect("valid schema");
        let call =
            |name: &str, arguments: &str| ToolCall { id: "c".into(), name: name.into(), arguments: arguments.into() };
        assert_eq!(check.check(&[call("add", r#"{"a": 1}"#)], FinishReason::ToolCalls), Verdict::Valid);
        assert!(matches!(check.check(&[call("add", r#"{"a": "x"}"#)], FinishReason::ToolCalls), Verdict::Invalid(_)));
        assert!(matches!(check.check(&[call("sub", "{}")], FinishReason::ToolCalls), Verdict::Invalid(_)));
        assert!(matches!(check.check(&[], FinishReason::Stop), Verdict::Invalid(_)));
        let bad = ToolUse {
            tools: vec![ToolSpec { parameters: r#"{"type": 5}"#.into(), ..tools.tools[0].clone() }],
            ..tools
        };
        assert_eq!(ToolsCheck::new(&bad).unwrap_err().0, "add");
    }

    #[test]
    fn call_schema_has_one_variant_per_tool() {
        let tool = |name: &str| ToolSpec {
            name: name.into(),
            description: None,
            parameters: r#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#.into(),
            strict: false,
        };
        let one = call_schema([&tool("add")]);
        assert_eq!(one["properties"]["name"]["const"], "add");
        let two = call_schema([&tool("add"), &tool("sub")]);
        assert_eq!(two["anyOf"].as_array().map(Vec::len), Some(2));
    }
}
