//! `POST /api/chat` and `POST /api/generate` as sent, and their validation into a core request.

use edgeway_core::{ChatMessage, GenerateRequest, KeepAlive, Prompt, RouteHints};
use edgeway_structured::tools::ToolsCheck;
use edgeway_structured::FormatCheck;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::base_name;
use super::options::Options;
use crate::error::{invalid, ApiError};
use crate::wire::common::{keep_alive_of, validate_top_logprobs};
use crate::wire::format::ollama_format;
use crate::wire::tools::{validate_tools, WireTool};

/// Roles a chat message may have.
const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

/// `POST /api/chat`. Unknown fields are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatBody {
    /// The model's name, `X` or `X:latest`; required, as in Ollama.
    pub model: Option<String>,
    /// The conversation; none at all is Ollama's "load the model" call.
    pub messages: Option<Vec<Message>>,
    /// Stream NDJSON lines; Ollama's default is `true`.
    pub stream: Option<bool>,
    /// `"json"` or a JSON Schema: structured output.
    pub format: Option<Value>,
    /// Sampling settings (see [`Options`]).
    pub options: Option<Options>,
    /// Thinking: refused when asked for, since no served model thinks.
    pub think: Option<Value>,
    /// Functions the model may call, in OpenAI's shape (Ollama has no `tool_choice`: `auto`).
    pub tools: Option<Vec<WireTool>>,
    /// Return each generated token's log-probability.
    pub logprobs: Option<bool>,
    /// Alternatives per token with `logprobs` (0 to 20).
    pub top_logprobs: Option<i64>,
    /// How long the model stays loaded after this request: `"5m"`, seconds, `0` unloads it
    /// after the answer (or at once, with no messages), negative keeps it loaded.
    pub keep_alive: Option<Value>,
}

/// One message of an Ollama chat.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (absent on an assistant message that only called tools).
    pub content: Option<String>,
    /// Base64 images: refused, no vision model is served here.
    pub images: Option<Vec<Value>>,
    /// Tool calls of an earlier assistant turn.
    pub tool_calls: Option<Vec<OllamaToolCall>>,
    /// For a `tool` message: the function whose result it is (Ollama's field).
    pub tool_name: Option<String>,
    /// For a `tool` message: the call it answers, when the client kept the id.
    pub tool_call_id: Option<String>,
}

/// A call in Ollama's shape: `{"function": {"name", "arguments": {...}}}` (arguments an object).
#[derive(Debug, Deserialize, Serialize)]
pub struct OllamaToolCall {
    /// The call's id (newer Ollama versions send one; edgeway does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function called and its arguments.
    pub function: OllamaFunction,
}

/// The function part of an Ollama call.
#[derive(Debug, Deserialize, Serialize)]
pub struct OllamaFunction {
    /// The call's position in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The function's name.
    pub name: String,
    /// Its arguments, as a JSON object.
    pub arguments: Value,
}

impl From<edgeway_core::ToolCall> for OllamaToolCall {
    fn from(call: edgeway_core::ToolCall) -> Self {
        let arguments = serde_json::from_str(&call.arguments).unwrap_or(Value::String(call.arguments));
        Self { id: Some(call.id), function: OllamaFunction { index: None, name: call.name, arguments } }
    }
}

/// `POST /api/generate`. Unknown fields are accepted and ignored, as on [`ChatBody`].
#[derive(Debug, Deserialize)]
pub struct GenerateBody {
    /// The model's name, `X` or `X:latest`; required.
    pub model: Option<String>,
    /// The prompt; empty is Ollama's "load the model" call.
    pub prompt: Option<String>,
    /// Text after the answer (fill-in-the-middle): refused, no served model does it.
    pub suffix: Option<String>,
    /// A system message, before the prompt.
    pub system: Option<String>,
    /// A Go template in place of the model's: refused, the model's own chat template is used.
    pub template: Option<String>,
    /// `true`: the prompt is sent as it is, without the chat template.
    pub raw: Option<bool>,
    /// Tokens of an earlier answer (deprecated in Ollama): refused.
    pub context: Option<Vec<Value>>,
    /// Stream NDJSON lines; Ollama's default is `true`.
    pub stream: Option<bool>,
    /// `"json"` or a JSON Schema: structured output.
    pub format: Option<Value>,
    /// Sampling settings (see [`Options`]).
    pub options: Option<Options>,
    /// Base64 images: refused, no vision model is served here.
    pub images: Option<Vec<Value>>,
    /// Thinking: refused when asked for.
    pub think: Option<Value>,
    /// Return each generated token's log-probability.
    pub logprobs: Option<bool>,
    /// Alternatives per token with `logprobs` (0 to 20).
    pub top_logprobs: Option<i64>,
    /// As on [`ChatBody`]: with an empty prompt, `0` unloads the model.
    pub keep_alive: Option<Value>,
}

/// What a generating request asks for.
#[derive(Debug)]
pub enum Intent {
    /// Ollama's "load the model" call (no messages, or an empty prompt): nothing to generate.
    /// With `keep_alive` 0 it is the "unload the model" call.
    Load {
        /// How long the model stays loaded from now; `None` is its default.
        keep_alive: Option<KeepAlive>,
    },
    /// A generation.
    Generate(Box<Job>),
}

/// A validated generation.
#[derive(Debug)]
pub struct Job {
    /// The core request.
    pub request: GenerateRequest,
    /// The check of the answer when a format is asked for (compiled once, here).
    pub format_check: Option<FormatCheck>,
    /// The check of the answer's tool calls, when tools are offered.
    pub tools_check: Option<ToolsCheck>,
    /// Stream NDJSON lines, or answer with one object.
    pub stream: bool,
}

/// The `model` field, which Ollama requires.
pub fn required_model(model: Option<&str>) -> Result<&str, ApiError> {
    model.map(str::trim).filter(|m| !m.is_empty()).ok_or_else(|| invalid("model", "model is required"))
}

/// Refuses thinking: `true` or a level (`"low"`, `"high"`, ...); `false` is fine.
fn refuse_thinking(model: &str, think: Option<&Value>) -> Result<(), ApiError> {
    match think {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::String(level)) if level.is_empty() => Ok(()),
        Some(Value::Bool(true) | Value::String(_)) => {
            Err(invalid("think", format!("\"{model}\" does not support thinking")))
        }
        Some(other) => {
            Err(invalid("think", format!("think must be true, false or a level such as \"high\", got {other}")))
        }
    }
}

/// Refuses images, which would need a vision model.
fn refuse_images(param: &'static str, images: Option<&Vec<Value>>) -> Result<(), ApiError> {
    match images {
        Some(images) if !images.is_empty() => {
            Err(invalid(param, "images are not supported: this server has no vision model; send text only"))
        }
        _ => Ok(()),
    }
}

/// The sampling, format and logprobs the two endpoints share, onto `prompt`.
fn job(
    model: &str,
    prompt: Prompt,
    options: Option<Options>,
    format: Option<Value>,
    (logprobs, top_logprobs): (Option<bool>, Option<i64>),
    (stream, keep_alive): (Option<bool>, Option<KeepAlive>),
) -> Result<Job, ApiError> {
    let mut sampling = options.unwrap_or_default().validate()?;
    let (format, format_check) = format.map(ollama_format).transpose()?.flatten().unzip();
    sampling.format = format;
    sampling.logprobs = logprobs_of(logprobs, top_logprobs)?;
    let stream = stream.unwrap_or(true);
    let route = RouteHints { model: Some(base_name(model).to_owned()), stream, keep_alive, ..RouteHints::default() };
    Ok(Job {
        request: GenerateRequest { prompt, sampling, route, tools: None, query_embedding: None },
        format_check,
        tools_check: None,
        stream,
    })
}

/// `logprobs` and `top_logprobs` as the core takes them.
fn logprobs_of(logprobs: Option<bool>, top_logprobs: Option<i64>) -> Result<Option<u8>, ApiError> {
    match (logprobs.unwrap_or(false), top_logprobs) {
        (false, _) => Ok(None),
        (true, n) => Ok(Some(validate_top_logprobs("top_logprobs", n.unwrap_or(0))?)),
    }
}

impl ChatBody {
    /// Validates every field; `Load` when there is no message.
    pub fn validate(self) -> Result<Intent, ApiError> {
        let model = required_model(self.model.as_deref())?.to_owned();
        refuse_thinking(&model, self.think.as_ref())?;
        // Ollama sends `tools: []` for none.
        let tools = self.tools.filter(|tools| !tools.is_empty());
        let (tools, tools_check) = validate_tools(tools, None, None)?.unzip();
        let keep_alive = keep_alive_of(self.keep_alive.as_ref())?;
        let messages = self.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Intent::Load { keep_alive });
        }
        let messages = messages.into_iter().map(Message::into_core).collect::<Result<Vec<_>, _>>()?;
        let mut job = job(
            &model,
            Prompt::Chat(messages),
            self.options,
            self.format,
            (self.logprobs, self.top_logprobs),
            (self.stream, keep_alive),
        )?;
        job.request.tools = tools;
        job.tools_check = tools_check;
        Ok(Intent::Generate(Box::new(job)))
    }
}

impl Message {
    fn into_core(self) -> Result<ChatMessage, ApiError> {
        if !ROLES.contains(&self.role.as_str()) {
            return Err(invalid("messages", format!("unknown role '{}'; use one of {}", self.role, ROLES.join(", "))));
        }
        refuse_images("messages", self.images.as_ref())?;
        let tool_calls = self
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, call)| edgeway_core::ToolCall {
                id: call.id.unwrap_or_else(|| format!("call_{i}")),
                name: call.function.name,
                arguments: match call.function.arguments {
                    Value::String(text) => text,
                    value => value.to_string(),
                },
            })
            .collect();
        // Ollama names the function a result came from; templates want the call id, when known.
        let tool_call_id = self.tool_call_id.or(self.tool_name);
        Ok(ChatMessage { tool_calls, tool_call_id, ..ChatMessage::new(self.role, self.content.unwrap_or_default()) })
    }
}

impl GenerateBody {
    /// Validates every field; `Load` when the prompt is empty.
    pub fn validate(self) -> Result<Intent, ApiError> {
        let model = required_model(self.model.as_deref())?.to_owned();
        refuse_thinking(&model, self.think.as_ref())?;
        refuse_images("images", self.images.as_ref())?;
        let raw = self.raw.unwrap_or(false);
        let system = self.system.filter(|s| !s.is_empty());
        let template = self.template.filter(|t| !t.is_empty());
        let has_context = self.context.as_ref().is_some_and(|c| !c.is_empty());
        if raw && (system.is_some() || template.is_some() || has_context) {
            return Err(invalid("raw", "raw mode does not support template, system, or context"));
        }
        if template.is_some() {
            return Err(invalid("template", "template is not supported: the model's own chat template is used"));
        }
        if has_context {
            return Err(invalid("context", "context is not supported; send the conversation to /api/chat instead"));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(invalid("suffix", format!("\"{model}\" does not support insert")));
        }
        let keep_alive = keep_alive_of(self.keep_alive.as_ref())?;
        let prompt = match self.prompt.filter(|p| !p.is_empty()) {
            None => return Ok(Intent::Load { keep_alive }),
            Some(prompt) if raw => Prompt::Text(prompt),
            Some(prompt) => {
                let mut messages: Vec<ChatMessage> =
                    system.into_iter().map(|s| ChatMessage::new("system", s)).collect();
                messages.push(ChatMessage::new("user", prompt));
                Prompt::Chat(messages)
            }
        };
        let job = job(
            &model,
            prompt,
            self.options,
            self.format,
            (self.logprobs, self.top_logprobs),
            (self.stream, keep_alive),
        )?;
        Ok(Intent::Generate(Box::new(job)))
    }
}

/// `POST /api/show`: `model`, or `name` as older clients send it.
#[derive(Debug, Deserialize)]
pub struct ShowBody {
    /// The model's name.
    pub model: Option<String>,
    /// The same, as older clients call it.
    pub name: Option<String>,
}

impl ShowBody {
    /// The name asked about.
    pub fn model(&self) -> Result<&str, ApiError> {
        required_model(self.model.as_deref().or(self.name.as_deref()))
    }
}

/// `POST /api/embed`. `options` and `keep_alive` are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct EmbedBody {
    /// The embedding model's name; required.
    pub model: Option<String>,
    /// A string or a list of strings; empty (or absent) asks for nothing, as in Ollama.
    pub input: Option<Value>,
    /// `false`: refuse an input longer than the model reads, instead of cutting it (the default).
    pub truncate: Option<bool>,
    /// Fewer dimensions than the model's are not supported; the model's own count is accepted.
    pub dimensions: Option<usize>,
}

/// `POST /api/embeddings` (Ollama's older embedding route). `options` and `keep_alive` are ignored.
#[derive(Debug, Deserialize)]
pub struct LegacyEmbedBody {
    /// The embedding model's name; required.
    pub model: Option<String>,
    /// The text; empty is Ollama's load call, answered with an empty vector.
    pub prompt: Option<String>,
}
