//! `/v1/chat/completions` request and response shapes.

use edgeway_core::{ChatMessage, Completion, GenerateRequest, Prompt, RouteHints, TokenLogprob, ToolCall};
use edgeway_structured::tools::ToolsCheck;
use edgeway_structured::FormatCheck;
use serde::{Deserialize, Serialize};

use super::common::{
    keep_alive_of, validate_max_tokens, validate_top_logprobs, ChatTokenLogprob, SamplingFields, StreamOptions,
    TimingsBody, UsageBody,
};
use super::tools::{validate_tools, ChunkToolCall, ResponseToolCall, WireTool, WireToolCall};
use crate::error::{invalid, ApiError};

/// A chat completion request as sent.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Optional here: a single-model server answers with the model it has.
    pub model: Option<String>,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
    /// Functions the model may call.
    pub tools: Option<Vec<WireTool>>,
    /// `auto`, `none`, `required` or `{"type": "function", "function": {"name": ...}}`.
    pub tool_choice: Option<serde_json::Value>,
    pub parallel_tool_calls: Option<bool>,
    /// edgeway's extension: retrieve from this local collection (`none`: not even the default).
    pub collection: Option<String>,
    /// edgeway's extension, Ollama's field: how long a local model stays loaded after this
    /// request (`"5m"`, seconds, `0` unloads it after the answer, negative keeps it).
    pub keep_alive: Option<serde_json::Value>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// A message as sent.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    pub content: Option<MessageContent>,
    /// The calls an assistant message made.
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// For a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
}

/// Message content: a string, or a list of typed parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part message.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

impl WireMessage {
    fn into_core(self) -> Result<ChatMessage, ApiError> {
        if !ROLES.contains(&self.role.as_str()) {
            return Err(invalid("messages", format!("unknown role '{}'; use one of {}", self.role, ROLES.join(", "))));
        }
        // The templates of small models know `system`, not OpenAI's newer `developer`.
        let role = if self.role == "developer" { "system".to_owned() } else { self.role };
        let content = match self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text,
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(piece)) => text.push_str(&piece),
                        (kind, _) => {
                            return Err(invalid(
                                "messages",
                                format!("content parts of type '{kind}' are not supported; send text"),
                            ))
                        }
                    }
                }
                text
            }
        };
        let tool_calls = match self.tool_calls {
            Some(_) if role != "assistant" => {
                return Err(invalid(
                    "messages",
                    format!("a '{role}' message cannot carry tool_calls; only assistant messages do"),
                ))
            }
            Some(calls) => calls.into_iter().map(WireToolCall::into_core).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        if role == "tool" && self.tool_call_id.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("messages", "a 'tool' message needs the tool_call_id of the call it answers"));
        }
        Ok(ChatMessage { role, content, tool_calls, tool_call_id: self.tool_call_id })
    }
}

/// What the chat handler needs besides the core request.
#[derive(Debug)]
pub struct ChatOptions {
    pub stream: bool,
    pub include_usage: bool,
    /// The collection the body names for retrieval, if any.
    pub collection: Option<String>,
    /// The check the answer gets when a format is asked for (compiled once, at validation).
    pub format_check: Option<FormatCheck>,
    /// The check the answer's tool calls get, when tools are offered.
    pub tools_check: Option<ToolsCheck>,
}

impl ChatRequest {
    /// Validates every field and builds the core request.
    pub fn validate(self) -> Result<(GenerateRequest, ChatOptions), ApiError> {
        if self.messages.is_empty() {
            return Err(invalid("messages", "messages must hold at least one message"));
        }
        let messages = self.messages.into_iter().map(WireMessage::into_core).collect::<Result<Vec<_>, _>>()?;
        let (mut sampling, format_check) = self.sampling.validate()?;
        sampling.max_tokens = match validate_max_tokens("max_completion_tokens", self.max_completion_tokens)? {
            Some(n) => Some(n),
            None => validate_max_tokens("max_tokens", self.max_tokens)?,
        };
        sampling.logprobs = match (self.logprobs, self.top_logprobs) {
            (false, Some(_)) => return Err(invalid("top_logprobs", "top_logprobs needs logprobs: true")),
            (false, None) => None,
            (true, n) => Some(validate_top_logprobs("top_logprobs", n.unwrap_or(0))?),
        };
        let (tools, tools_check) = validate_tools(self.tools, self.tool_choice, self.parallel_tool_calls)?.unzip();
        let options = ChatOptions {
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
            collection: self.collection,
            format_check,
            tools_check,
        };
        let keep_alive = keep_alive_of(self.keep_alive.as_ref())?;
        let route = RouteHints { model: self.model, stream: self.stream, keep_alive, ..RouteHints::default() };
        Ok((GenerateRequest { prompt: Prompt::Chat(messages), sampling, route, tools, query_embedding: None }, options))
    }
}

/// A non-streamed chat completion.
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageBody,
    pub timings: TimingsBody,
    /// edgeway's extension: the sources retrieval added, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_edgeway: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    /// `null` when the answer is only tool calls, as OpenAI sends it.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ResponseToolCall>,
}

/// `logprobs` of a chat choice.
#[derive(Debug, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<ChatTokenLogprob>,
}

impl ChatLogprobs {
    /// `None` when no logprobs were asked for, so the field is `null` as OpenAI sends it.
    pub fn from_entries(requested: bool, entries: &[TokenLogprob]) -> Option<Self> {
        requested.then(|| Self { content: entries.iter().map(ChatTokenLogprob::from).collect() })
    }
}

impl ChatCompletion {
    /// The response for a finished generation.
    pub fn new(
        id: String,
        created: u64,
        model: String,
        text: String,
        tool_calls: Vec<ToolCall>,
        logprobs: Option<ChatLogprobs>,
        completion: &Completion,
    ) -> Self {
        let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
        let tool_calls = tool_calls.into_iter().map(ResponseToolCall::from).collect();
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage { role: "assistant", content, tool_calls },
                logprobs,
                finish_reason: completion.finish_reason.as_str(),
            }],
            usage: UsageBody::from(completion),
            timings: TimingsBody::from(completion),
            x_edgeway: None,
        }
    }
}

/// One streamed chunk.
#[derive(Debug, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<TimingsBody>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds to the message.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChunkToolCall>>,
}
