//! The response object of the Responses API and its output items, as
//! `POST /v1/responses` returns them and its stream's lifecycle events carry them.

use edgeway_core::{Completion, FinishReason, ToolCall};
use serde::Serialize;
use serde_json::Value;

use crate::wire::common::response_id;

/// A new id in OpenAI's style for this prefix: `resp_…`, `msg_…`, `fc_…`.
pub fn item_id(prefix: &str) -> String {
    // response_id spells `prefix-…`, as chat ids are; the Responses API's ids use `_`.
    response_id(prefix).replacen('-', "_", 1)
}

/// Where a response is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Generating (the stream's first events).
    InProgress,
    /// Finished normally.
    Completed,
    /// Cut short, by `max_output_tokens` or the context.
    Incomplete,
    /// Ended by an error after it began.
    Failed,
}

/// Where an output item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Still streaming.
    InProgress,
    /// Whole.
    Completed,
    /// Cut short with the response.
    Incomplete,
}

/// One item of `output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The assistant's text.
    Message {
        /// `msg_…`.
        id: String,
        /// Whether it is whole.
        status: ItemStatus,
        /// Always `assistant`.
        role: &'static str,
        /// Its one text part (none while the stream has only announced the message).
        content: Vec<OutputText>,
    },
    /// A call of one of the request's functions, for the client to run.
    FunctionCall {
        /// `fc_…`, the item's id.
        id: String,
        /// The call's id, which the client's `function_call_output` repeats.
        call_id: String,
        /// The function.
        name: String,
        /// Its arguments, as JSON text.
        arguments: String,
        /// Whether it is whole.
        status: ItemStatus,
    },
}

/// A text part of a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// Always empty: no citations here.
    pub annotations: Vec<Value>,
    /// Always empty: log-probabilities are not offered on this endpoint.
    pub logprobs: Vec<Value>,
}

impl OutputText {
    /// A text part holding `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self { kind: "output_text", text: text.into(), annotations: Vec::new(), logprobs: Vec::new() }
    }
}

impl OutputItem {
    /// A new message item with `text` (no content part when `None`).
    pub fn message(text: Option<String>, status: ItemStatus) -> Self {
        OutputItem::Message {
            id: item_id("msg"),
            status,
            role: "assistant",
            content: text.map(OutputText::new).into_iter().collect(),
        }
    }

    /// A new function-call item for `call`.
    pub fn function_call(call: ToolCall, status: ItemStatus) -> Self {
        OutputItem::FunctionCall {
            id: item_id("fc"),
            call_id: call.id,
            name: call.name,
            arguments: call.arguments,
            status,
        }
    }

    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Message { id, .. } | OutputItem::FunctionCall { id, .. } => id,
        }
    }

    /// Sets the item's status.
    pub fn set_status(&mut self, new: ItemStatus) {
        match self {
            OutputItem::Message { status, .. } | OutputItem::FunctionCall { status, .. } => *status = new,
        }
    }
}

/// The output of a finished answer: its text as a message (left out when the answer is only
/// calls), then one item per call; the last item is incomplete when the answer is.
pub fn output_items(text: String, calls: Vec<ToolCall>, finish: FinishReason) -> Vec<OutputItem> {
    let mut items = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() || calls.is_empty() {
        items.push(OutputItem::message(Some(text), ItemStatus::Completed));
    }
    items.extend(calls.into_iter().map(|call| OutputItem::function_call(call, ItemStatus::Completed)));
    if finish == FinishReason::Length {
        if let Some(last) = items.last_mut() {
            last.set_status(ItemStatus::Incomplete);
        }
    }
    items
}

/// `usage` of a response.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseUsage {
    /// Prompt tokens after templating.
    pub input_tokens: u32,
    /// How many of them came from the cache.
    pub input_tokens_details: InputTokensDetails,
    /// Tokens generated.
    pub output_tokens: u32,
    /// Always no reasoning tokens.
    pub output_tokens_details: OutputTokensDetails,
    /// Both.
    pub total_tokens: u32,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Serialize)]
pub struct InputTokensDetails {
    /// Prompt tokens whose KV cache was reused.
    pub cached_tokens: u32,
    /// Always 0: there is no explicit prompt cache to write.
    pub cache_write_tokens: u32,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputTokensDetails {
    /// Always 0: the models here do not reason apart from their answer.
    pub reasoning_tokens: u32,
}

impl From<&Completion> for ResponseUsage {
    fn from(completion: &Completion) -> Self {
        let usage = completion.usage;
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputTokensDetails { cached_tokens: usage.cached_tokens, cache_write_tokens: 0 },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: 0 },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        }
    }
}

/// `incomplete_details`.
#[derive(Debug, Clone, Serialize)]
pub struct IncompleteDetails {
    /// Always `max_output_tokens` (the context filling up ends an answer the same way).
    pub reason: &'static str,
}

/// `error` of a failed response.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseError {
    /// Always `server_error`: the request itself was accepted.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What the request asked for, repeated in every response object as OpenAI does.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The request's `instructions`.
    pub instructions: Option<String>,
    /// The request's `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// The request's `metadata` (`{}` when none).
    pub metadata: Value,
    /// Whether several calls in one answer were allowed.
    pub parallel_tool_calls: bool,
    /// Always null: this server is stateless.
    pub previous_response_id: Option<String>,
    /// Always `{"effort": null, "summary": null}`: the request's `reasoning` is accepted and ignored.
    pub reasoning: Value,
    /// Always false: nothing is stored.
    pub store: bool,
    /// The temperature used.
    pub temperature: f32,
    /// `{"format": ...}`, as the request gave it (`{"type": "text"}` by default).
    pub text: Value,
    /// `auto`, `none`, `required` or `{"type": "function", "name"}`.
    pub tool_choice: Value,
    /// The request's tools.
    pub tools: Vec<Value>,
    /// The nucleus mass used.
    pub top_p: f32,
    /// `disabled` or `auto`, as the request said (the context is never truncated here).
    pub truncation: String,
    /// The request's `user`.
    pub user: Option<String>,
}

/// A response object: `{"id": "resp_…", "object": "response", "status", "output", "usage", …}`.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: &'static str,
    /// Unix seconds when the request arrived.
    pub created_at: u64,
    /// Where it is in its life.
    pub status: ResponseStatus,
    /// Always false: background responses need stored state.
    pub background: bool,
    /// Unix seconds when it finished.
    pub completed_at: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<ResponseError>,
    /// Why it is incomplete, when it is.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The model that answered.
    pub model: String,
    /// The answer's items.
    pub output: Vec<OutputItem>,
    /// Token counts, once finished.
    pub usage: Option<ResponseUsage>,
    /// What the request asked for.
    #[serde(flatten)]
    pub settings: Settings,
    /// edgeway's extension: the format check's verdict and the sources retrieval added, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_edgeway: Option<Value>,
}

impl ResponseObject {
    /// A response that has just begun: in progress, no output yet.
    pub fn begun(id: String, created_at: u64, model: String, settings: Settings) -> Self {
        Self {
            id,
            object: "response",
            created_at,
            status: ResponseStatus::InProgress,
            background: false,
            completed_at: None,
            error: None,
            incomplete_details: None,
            model,
            output: Vec::new(),
            usage: None,
            settings,
            x_edgeway: None,
        }
    }

    /// The response once the answer has ended with `output`: completed, or incomplete when cut short.
    pub fn finished(mut self, output: Vec<OutputItem>, completion: &Completion) -> Self {
        let cut = completion.finish_reason == FinishReason::Length;
        self.status = if cut { ResponseStatus::Incomplete } else { ResponseStatus::Completed };
        self.incomplete_details = cut.then_some(IncompleteDetails { reason: "max_output_tokens" });
        self.completed_at = Some(crate::wire::common::unix_seconds());
        self.output = output;
        self.usage = Some(ResponseUsage::from(completion));
        self
    }

    /// The response after an error ended it, with the output it had.
    pub fn failed(mut self, output: Vec<OutputItem>, message: String) -> Self {
        self.status = ResponseStatus::Failed;
        self.error = Some(ResponseError { code: "server_error", message });
        self.output = output;
        self
    }
}

#[cfg(test)]
mod tests {
    use edgeway_core::{Timings, Usage};

    use super::*;

    fn completion(finish_reason: FinishReason) -> Completion {
        let usage = Usage { prompt_tokens: 5, completion_tokens: 3, cached_tokens: 2 };
        Completion { finish_reason, usage, timings: Timings::default(), energy: None, choices: Vec::new() }
    }

    #[test]
    fn a_text_answer_is_one_message() {
        let items = output_items("Hi".into(), Vec::new(), FinishReason::Stop);
        let json = serde_json::to_value(&items).unwrap();
        assert_eq!(json[0]["type"], "message");
        assert_eq!(
            json[0]["content"][0],
            serde_json::json!({"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []})
        );
        assert!(json[0]["id"].as_str().unwrap().starts_with("msg_"));
    }

    #[test]
    fn calls_alone_leave_the_message_out_and_a_cut_answer_is_incomplete() {
        let call = ToolCall { id: "call_1".into(), name: "f".into(), arguments: "{}".into() };
        let items = output_items(String::new(), vec![call], FinishReason::ToolCalls);
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], OutputItem::FunctionCall { call_id, status: ItemStatus::Completed, .. } if call_id == "call_1")
        );
        assert!(items[0].id().starts_with("fc_"));
        let items = output_items("Hel".into(), Vec::new(), FinishReason::Length);
        assert!(matches!(items[0], OutputItem::Message { status: ItemStatus::Incomplete, .. }));
    }

    #[test]
    fn usage_counts_cached_tokens() {
        let usage = serde_json::to_value(ResponseUsage::from(&completion(FinishReason::Stop))).unwrap();
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(usage["total_tokens"], 8);
    }
}
