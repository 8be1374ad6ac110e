//! `POST /v1/responses` request: its fields, checked into the core's request.

use edgeway_core::{GenerateRequest, Prompt, RouteHints, ToolChoice, ToolUse};
use edgeway_structured::tools::ToolsCheck;
use edgeway_structured::FormatCheck;
use serde::Deserialize;
use serde_json::{json, Value};

use super::input::{conversation, InputField};
use super::object::Settings;
use crate::error::{invalid, ApiError};
use crate::wire::common::{keep_alive_of, validate_max_tokens, SamplingFields};
use crate::wire::format::text_format;
use crate::wire::tools::{unsupported_tool, validate_functions, ToolDialect, WireFunction};

/// Most `metadata` pairs (OpenAI's limit).
const MAX_METADATA: usize = 16;

/// A Responses API request as sent. Fields this server does not know are ignored, as
/// they are on the other endpoints.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    /// Optional here: a single-model server answers with the model it has.
    pub model: Option<String>,
    pub input: Option<InputField>,
    /// A system message put before the input.
    pub instructions: Option<String>,
    /// Function tools, flat: `{"type": "function", "name", "description", "parameters", "strict"}`.
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required` or `{"type": "function", "name": ...}`.
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", ...}}`.
    pub text: Option<TextField>,
    #[serde(default)]
    pub stream: bool,
    /// Accepted; nothing is stored.
    pub store: Option<bool>,
    pub metadata: Option<Value>,
    pub user: Option<String>,
    /// Accepted and ignored: the models here do not reason apart from their answer.
    pub reasoning: Option<Value>,
    /// `auto` or `disabled`: accepted (the context is never truncated here).
    pub truncation: Option<String>,
    /// Extra output to include: accepted and ignored (none of it exists here).
    pub include: Option<Vec<String>>,
    /// Refused: this server keeps no responses.
    pub previous_response_id: Option<String>,
    /// Refused: this server keeps no conversations.
    pub conversation: Option<Value>,
    /// Refused when true: a background response has to be stored.
    pub background: Option<bool>,
    /// Refused: prompt templates are stored by OpenAI.
    pub prompt: Option<Value>,
    /// edgeway's extension: retrieve from this local collection (`none`: not even the default).
    pub collection: Option<String>,
    /// edgeway's extension, Ollama's field: how long a local model stays loaded after this
    /// request (`"5m"`, seconds, `0` unloads it after the answer, negative keeps it).
    pub keep_alive: Option<Value>,
}

/// `text` of a request.
#[derive(Debug, Deserialize)]
pub struct TextField {
    /// The answer's format; absent means text.
    pub format: Option<Value>,
}

/// What the responses handler needs besides the core request.
#[derive(Debug)]
pub struct ResponsesOptions {
    pub stream: bool,
    /// The collection the body names for retrieval, if any.
    pub collection: Option<String>,
    /// The check the answer gets when a format is asked for (compiled once, at validation).
    pub format_check: Option<FormatCheck>,
    /// The check the answer's calls get, when tools are offered.
    pub tools_check: Option<ToolsCheck>,
    /// What the response object repeats of the request.
    pub settings: Settings,
}

/// The 400 for a field that needs state this server does not keep.
fn stateless(param: &'static str, what: &str) -> ApiError {
    invalid(
        param,
        format!(
            "{what}: this server is stateless and stores no responses or conversations; send the whole conversation \
             in input (the Agents SDK does by default)"
        ),
    )
}

impl ResponsesRequest {
    /// Validates every field and builds the core request.
    pub fn validate(self) -> Result<(GenerateRequest, ResponsesOptions), ApiError> {
        if self.previous_response_id.is_some() {
            return Err(stateless("previous_response_id", "previous_response_id cannot be followed"));
        }
        if self.conversation.as_ref().is_some_and(|c| !c.is_null()) {
            return Err(stateless("conversation", "conversation cannot be continued"));
        }
        if self.background == Some(true) {
            return Err(stateless("background", "background responses cannot be run"));
        }
        if self.prompt.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(invalid(
                "prompt",
                "prompt templates are stored by OpenAI, not here; send instructions and input instead",
            ));
        }
        let truncation = self.truncation.unwrap_or_else(|| "disabled".to_owned());
        if !matches!(truncation.as_str(), "auto" | "disabled") {
            return Err(invalid("truncation", format!("truncation must be 'auto' or 'disabled', got '{truncation}'")));
        }
        let metadata = match self.metadata {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(map)) if map.len() <= MAX_METADATA && map.values().all(Value::is_string) => {
                Value::Object(map)
            }
            Some(_) => {
                return Err(invalid(
                    "metadata",
                    format!("metadata must be an object of at most {MAX_METADATA} strings"),
                ))
            }
        };
        let input = self.input.ok_or_else(|| invalid("input", "input is required: a string or a list of items"))?;
        let messages = conversation(self.instructions.clone(), input)?;
        let sampling = SamplingFields { temperature: self.temperature, top_p: self.top_p, ..SamplingFields::default() };
        let (mut sampling, _) = sampling.validate()?;
        sampling.max_tokens = validate_max_tokens("max_output_tokens", self.max_output_tokens)?;
        let format = self.text.and_then(|text| text.format).filter(|format| !format.is_null());
        let format_check = match format.clone().map(text_format).transpose()?.flatten() {
            Some((format, check)) => {
                sampling.format = Some(format);
                Some(check)
            }
            None => None,
        };
        let echoed_tools = self.tools.clone().unwrap_or_default();
        // OpenAI takes an empty list as no tools, and `auto` or `none` with it as no choice
        // (the Agents SDK sends both for an agent without tools).
        let offered = self.tools.filter(|tools| !tools.is_empty());
        let choice = match self.tool_choice {
            Some(Value::String(choice)) if offered.is_none() && matches!(choice.as_str(), "auto" | "none") => None,
            choice => choice,
        };
        let functions = offered.map(|tools| tools.into_iter().map(function_of).collect()).transpose()?;
        let (tools, tools_check) =
            validate_functions(functions, choice, self.parallel_tool_calls, ToolDialect::Responses)?.unzip();
        let settings = Settings {
            instructions: self.instructions,
            max_output_tokens: sampling.max_tokens,
            metadata,
            parallel_tool_calls: tools.as_ref().is_none_or(|tools| tools.parallel),
            previous_response_id: None,
            reasoning: json!({"effort": null, "summary": null}),
            store: false,
            temperature: sampling.temperature,
            text: json!({"format": format.unwrap_or_else(|| json!({"type": "text"}))}),
            tool_choice: choice_json(tools.as_ref()),
            tools: echoed_tools,
            top_p: sampling.top_p,
            truncation,
            user: self.user,
        };
        let options =
            ResponsesOptions { stream: self.stream, collection: self.collection, format_check, tools_check, settings };
        let keep_alive = keep_alive_of(self.keep_alive.as_ref())?;
        let route = RouteHints { model: self.model, stream: self.stream, keep_alive, ..RouteHints::default() };
        Ok((GenerateRequest { prompt: Prompt::Chat(messages), sampling, route, tools, query_embedding: None }, options))
    }
}

/// A flat function tool as the shared tool validation takes it; other tool types are refused.
fn function_of(tool: Value) -> Result<WireFunction, ApiError> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => serde_json::from_value(tool).map_err(|error| {
            invalid(
                "tools",
                format!("a function tool needs a name and may have a description, parameters and strict: {error}"),
            )
        }),
        Some(kind) => Err(unsupported_tool(kind)),
        None => Err(invalid("tools", "each tool needs a type; use {\"type\": \"function\", \"name\": ...}")),
    }
}

/// `tool_choice` as the response object repeats it.
fn choice_json(tools: Option<&ToolUse>) -> Value {
    match tools.map(|tools| &tools.choice) {
        None | Some(ToolChoice::Auto) => json!("auto"),
        Some(ToolChoice::None) => json!("none"),
        Some(ToolChoice::Required) => json!("required"),
        Some(ToolChoice::Function(name)) => json!({"type": "function", "name": name}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> Result<(GenerateRequest, ResponsesOptions), ApiError> {
        serde_json::from_value::<ResponsesRequest>(body).expect("request").validate()
    }

    #[test]
    fn sampling_tools_and_format_reach_the_core_request() {
        let (request, options) = request(json!({
            "input": "Weather in Paris?", "max_output_tokens": 20, "temperature": 0.5,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": false,
            "text": {"format": {"type": "json_object"}}, "store": true, "include": ["reasoning.encrypted_content"]
        }))
        .unwrap();
        assert_eq!(request.sampling.max_tokens, Some(20));
        assert_eq!(request.sampling.temperature, 0.5);
        assert_eq!(request.sampling.format, Some(edgeway_core::OutputFormat::JsonObject));
        let tools = request.tools.unwrap();
        assert_eq!(tools.choice, ToolChoice::Function("get_weather".into()));
        assert!(!tools.parallel && tools.tools[0].strict);
        assert_eq!(options.settings.tool_choice, json!({"type": "function", "name": "get_weather"}));
        assert!(!options.settings.store);
    }

    #[test]
    fn an_empty_tool_list_is_no_tools() {
        let (request, options) = request(json!({"input": "x", "tools": [], "tool_choice": "auto"})).unwrap();
        assert_eq!(request.tools, None);
        assert_eq!(options.settings.tools, Vec::<Value>::new());
        let refused =
            serde_json::from_value::<ResponsesRequest>(json!({"input": "x", "tools": [], "tool_choice": "required"}))
                .unwrap()
                .validate();
        assert!(matches!(refused, Err(ApiError::InvalidField { param: "tool_choice", .. })));
    }

    #[test]
    fn refusals_name_the_field() {
        let param = |body: Value| match request(body) {
            Err(ApiError::InvalidField { param, .. }) => param,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(param(json!({"input": "x", "previous_response_id": "resp_1"})), "previous_response_id");
        assert_eq!(param(json!({"input": "x", "conversation": "conv_1"})), "conversation");
        assert_eq!(param(json!({"input": "x", "tools": [{"type": "web_search"}]})), "tools");
        assert_eq!(param(json!({"input": "x", "tools": [{"type": "function"}]})), "tools");
        assert_eq!(param(json!({"input": "x", "tool_choice": "required"})), "tool_choice");
        assert_eq!(param(json!({"input": "x", "text": {"format": {"type": "yaml"}}})), "text.format");
        assert_eq!(param(json!({"input": "x", "max_output_tokens": 0})), "max_output_tokens");
        assert_eq!(param(json!({"input": "x", "truncation": "middle"})), "truncation");
        assert_eq!(param(json!({"model": "m"})), "input");
    }
}
