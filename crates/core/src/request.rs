//! What a client asks a backend for, after the HTTP layer has validated it.

use crate::keep_alive::KeepAlive;

/// One message of a chat conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool` or another role the model's template knows.
    pub role: String,
    /// The message text.
    pub content: String,
    /// The calls an assistant message made (the history of a tool conversation).
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), ..Self::default() }
    }
}

/// A function the model may call (OpenAI's `tools[].function`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    /// The function's name, as the model must write it.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// A JSON Schema of its arguments object, as JSON text (checked by the HTTP layer).
    pub parameters: String,
    /// OpenAI's `strict` flag, passed on to a cloud upstream.
    pub strict: bool,
}

/// Whether and which tool the model must call (OpenAI's `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides: text, or calls.
    #[default]
    Auto,
    /// No calls: the tools are not shown to the model.
    None,
    /// At least one call, of any tool.
    Required,
    /// A call of this function.
    Function(String),
}

/// The tools of a request and how they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUse {
    /// The functions on offer (at least one).
    pub tools: Vec<ToolSpec>,
    /// Whether a call is optional, forbidden or required.
    pub choice: ToolChoice,
    /// Several calls in one answer are allowed (`parallel_tool_calls`, default true).
    pub parallel: bool,
}

impl ToolUse {
    /// The tools the model may call under `choice`: all of them, none, or the named one.
    pub fn callable(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.iter().filter(move |tool| match &self.choice {
            ToolChoice::None => false,
            ToolChoice::Function(name) => &tool.name == name,
            ToolChoice::Auto | ToolChoice::Required => true,
        })
    }

    /// Whether the answer must be calls, not text.
    pub fn call_required(&self) -> bool {
        matches!(self.choice, ToolChoice::Required | ToolChoice::Function(_))
    }
}

/// One function call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id, which the `tool` message answering it repeats.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments, as JSON text.
    pub arguments: String,
}

/// The input to generate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A conversation, rendered with the model's own chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (the `/v1/completions` case).
    Text(String),
}

impl Prompt {
    /// Bytes of text in it, every message counted: what tokenizing it costs grows with this.
    pub fn text_len(&self) -> usize {
        match self {
            Prompt::Text(text) => text.len(),
            Prompt::Chat(messages) => messages.iter().map(|m| m.content.len() + m.role.len()).sum(),
        }
    }

    /// What the user wrote: the whole text, or a chat's last user message (`None` if it has none).
    pub fn user_text(&self) -> Option<&str> {
        match self {
            Prompt::Text(text) => Some(text),
            Prompt::Chat(messages) => messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.as_str()),
        }
    }
}

/// How to pick tokens and when to stop.
///
/// Ranges are checked by the HTTP layer before a value of this type exists;
/// backends may rely on them.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0.0` means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass in `(0, 1]`; `1.0` disables it.
    pub top_p: f32,
    /// Seed for the sampler's random numbers; `None` picks one per request.
    pub seed: Option<u32>,
    /// Upper bound on generated tokens; `None` generates until the context is full.
    pub max_tokens: Option<u32>,
    /// Strings that end generation; none of them appears in the output.
    pub stop: Vec<String>,
    /// `Some(n)` returns each generated token's log-probability and the `n` most likely alternatives.
    pub logprobs: Option<u8>,
    /// OpenAI's frequency penalty in `[-2, 2]`.
    pub frequency_penalty: f32,
    /// OpenAI's presence penalty in `[-2, 2]`.
    pub presence_penalty: f32,
    /// Never end at an end-of-generation token (llama-server's `ignore_eos`; for benchmarks).
    pub ignore_eos: bool,
    /// The shape the answer must have (structured output); `None` is free text.
    pub format: Option<OutputFormat>,
}

/// A shape the answer must have, enforced at the edge by grammar-constrained sampling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON that a JSON Schema accepts (`response_format: {"type": "json_schema"}` or
    /// llama-server's `json_schema` field).
    JsonSchema {
        /// The schema's name, when the client gave one (OpenAI requires it; it is only a label).
        name: Option<String>,
        /// The schema, as JSON text (checked to be a valid schema by the HTTP layer).
        schema: String,
        /// OpenAI's `strict` flag, passed on to a cloud upstream.
        strict: bool,
    },
    /// A GBNF grammar (llama-server's `grammar` field); only the local engine can enforce it.
    Grammar(String),
}

impl OutputFormat {
    /// `json_object`, `json_schema` or `grammar`, as logs and metrics spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            OutputFormat::JsonObject => "json_object",
            OutputFormat::JsonSchema { .. } => "json_schema",
            OutputFormat::Grammar(_) => "grammar",
        }
    }
}

impl Default for SamplingParams {
    /// OpenAI's defaults: temperature 1, no nucleus cut, no stop strings.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
            logprobs: None,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            ignore_eos: false,
            format: None,
        }
    }
}

/// Where a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// The local model.
    Edge,
    /// A cloud upstream.
    Cloud,
}

impl RouteTarget {
    /// `edge` or `cloud`, as headers and logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteTarget::Edge => "edge",
            RouteTarget::Cloud => "cloud",
        }
    }

    /// Parses `edge` or `cloud` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "edge" | "local" => Some(RouteTarget::Edge),
            "cloud" | "remote" => Some(RouteTarget::Cloud),
            _ => None,
        }
    }
}

/// What the client said about routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteHints {
    /// The `model` field: `None` or `auto` lets the router choose.
    pub model: Option<String>,
    /// A forced side (the `x-edgeway-route` header).
    pub target: Option<RouteTarget>,
    /// A forced tier (`edgeway eval --route tier1`): the domain's model on that tier answers.
    pub tier: Option<u32>,
    /// The domain, when the client names it (the `x-edgeway-domain` header).
    pub domain: Option<String>,
    /// The client streams: confidence escalation can only wait for the first tokens, and
    /// the local engine sends text as it comes, in paced chunks (else the answer in one piece).
    pub stream: bool,
    /// How long a local model stays loaded after this request (Ollama's `keep_alive`, or the
    /// `keep_alive` extension field of OpenAI's endpoints); `None` keeps the model's default.
    pub keep_alive: Option<KeepAlive>,
}

/// A validated generation request, the only request type a [`crate::Backend`] accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// What to continue.
    pub prompt: Prompt,
    /// How to sample.
    pub sampling: SamplingParams,
    /// Routing wishes (single backends ignore them) and whether the client streams.
    pub route: RouteHints,
    /// Functions the model may call (chat only); `None` when the request offers none.
    pub tools: Option<ToolUse>,
    /// The user text's embedding, when the server computed one for this request (for a router
    /// whose scorer reads it, or for retrieval); `None` otherwise. Computed at most once.
    pub query_embedding: Option<crate::embed::QueryEmbedding>,
}
