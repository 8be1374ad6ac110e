//! The streamed Responses API: named server-sent events, each with its `type` and a
//! `sequence_number` (0, 1, 2…), and no `[DONE]`.
//!
//! `response.created` and `response.in_progress` open the stream. Text is a message
//! item (`response.output_item.added`, `response.content_part.added`, then
//! `response.output_text.delta`s, closed by `response.output_text.done`,
//! `response.content_part.done` and `response.output_item.done`); each call is a
//! function-call item (`response.output_item.added`,
//! `response.function_call_arguments.delta`s, then `.done` and
//! `response.output_item.done`). `response.completed` or `response.incomplete`
//! carries the whole response; an error after the start is an `error` event and
//! `response.failed`.

use std::collections::HashMap;

use edgeway_core::{Completion, FinishReason, TokenLogprob, ToolCall, ToolCallDelta};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::stream::ChunkShape;
use crate::wire::responses::object::{ItemStatus, OutputItem, OutputText, ResponseObject};

/// The events of one streamed response, numbered as they are made.
pub struct ResponseEvents {
    /// The response as begun: its id, model and settings.
    response: ResponseObject,
    /// The next event's `sequence_number`.
    sequence: u64,
    /// The output so far, in `output_index` order.
    items: Vec<OutputItem>,
    /// The index of the item still streaming, if one is.
    open: Option<usize>,
    /// Which output item each call of the answer (by its index) is.
    calls: HashMap<u32, usize>,
}

impl ResponseEvents {
    /// The events of `response`, which has begun and has no output yet.
    pub fn new(response: ResponseObject) -> Self {
        Self { response, sequence: 0, items: Vec::new(), open: None, calls: HashMap::new() }
    }

    /// An event of `kind` with `fields`, numbered.
    fn event(&mut self, kind: &str, fields: Value) -> Value {
        let mut event = json!({"type": kind, "sequence_number": self.sequence});
        self.sequence += 1;
        if let (Value::Object(event), Value::Object(fields)) = (&mut event, fields) {
            event.extend(fields);
        }
        event
    }

    /// A lifecycle event carrying the whole response.
    fn lifecycle(&mut self, kind: &str, response: &ResponseObject) -> Value {
        self.event(kind, json!({ "response": response }))
    }

    /// Adds an item, announcing it (a message also gets its empty text part); returns its index.
    fn open_item(&mut self, item: OutputItem, events: &mut Vec<Value>) -> usize {
        let index = self.items.len();
        let id = item.id().to_owned();
        let is_message = matches!(item, OutputItem::Message { .. });
        events.push(self.event("response.output_item.added", json!({"output_index": index, "item": item})));
        self.items.push(item);
        if is_message {
            let part = OutputText::new("");
            events.push(self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            ));
            if let OutputItem::Message { content, .. } = &mut self.items[index] {
                content.push(part);
            }
        }
        self.open = Some(index);
        index
    }

    /// Closes the item still streaming, if any, with `status`.
    fn close_open(&mut self, status: ItemStatus, events: &mut Vec<Value>) {
        let Some(index) = self.open.take() else { return };
        self.items[index].set_status(status);
        let item = self.items[index].clone();
        let id = item.id().to_owned();
        match &item {
            OutputItem::Message { content, .. } => {
                let part = content.first().cloned().unwrap_or_else(|| OutputText::new(""));
                events.push(self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": part.text, "logprobs": []}),
                ));
                events.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                ));
            }
            OutputItem::FunctionCall { arguments, .. } => {
                events.push(self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                ));
            }
        }
        events.push(self.event("response.output_item.done", json!({"output_index": index, "item": item})));
    }

    /// The message item text goes into: the open one, else a new one.
    fn message_index(&mut self, events: &mut Vec<Value>) -> usize {
        match self.open {
            Some(index) if matches!(self.items[index], OutputItem::Message { .. }) => index,
            _ => {
                self.close_open(ItemStatus::Completed, events);
                self.open_item(OutputItem::message(None, ItemStatus::InProgress), events)
            }
        }
    }
}

impl ChunkShape for ResponseEvents {
    fn opening(&mut self) -> Vec<Value> {
        let response = self.response.clone();
        vec![self.lifecycle("response.created", &response), self.lifecycle("response.in_progress", &response)]
    }

    /// The `response.output_text.delta` for text of the open message.
    fn delta(&mut self, text: String, _logprobs: &[TokenLogprob]) -> Value {
        let index = self.open.unwrap_or_default();
        let id = self.items.get(index).map(|item| item.id().to_owned()).unwrap_or_default();
        if let Some(OutputItem::Message { content, .. }) = self.items.get_mut(index) {
            if let Some(part) = content.first_mut() {
                part.text.push_str(&text);
            }
        }
        self.event(
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
        )
    }

    fn delta_chunks(&mut self, text: String, logprobs: &[TokenLogprob]) -> Vec<Value> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut events = Vec::new();
        self.message_index(&mut events);
        events.push(self.delta(text, logprobs));
        events
    }

    /// The `response.function_call_arguments.delta` for a piece of the call's arguments, if it has any.
    fn tool_call(&mut self, call: ToolCallDelta) -> Option<Value> {
        let index = *self.calls.get(&call.index)?;
        if let Some(OutputItem::FunctionCall { name, arguments, .. }) = self.items.get_mut(index) {
            if let Some(more) = call.name {
                name.push_str(&more);
            }
            arguments.push_str(&call.arguments);
        }
        // A piece of a call already closed (calls streamed out of order) only adds to the final response.
        if call.arguments.is_empty() || self.open != Some(index) {
            return None;
        }
        let id = self.items[index].id().to_owned();
        Some(self.event(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": call.arguments}),
        ))
    }

    fn tool_call_chunks(&mut self, mut call: ToolCallDelta) -> Vec<Value> {
        let mut events = Vec::new();
        if !self.calls.contains_key(&call.index) {
            self.close_open(ItemStatus::Completed, &mut events);
            let first = ToolCall {
                id: call.id.take().unwrap_or_else(|| crate::wire::responses::object::item_id("call")),
                name: call.name.take().unwrap_or_default(),
                arguments: String::new(),
            };
            let index = self.open_item(OutputItem::function_call(first, ItemStatus::InProgress), &mut events);
            self.calls.insert(call.index, index);
        }
        events.extend(self.tool_call(call));
        events
    }

    fn closing(&mut self, completion: &Completion) -> Vec<Value> {
        let mut events = Vec::new();
        if self.items.is_empty() {
            // An empty answer is still one (empty) message, as the whole response has it.
            self.message_index(&mut events);
        }
        let cut = completion.finish_reason == FinishReason::Length;
        self.close_open(if cut { ItemStatus::Incomplete } else { ItemStatus::Completed }, &mut events);
        let response = self.response.clone().finished(self.items.clone(), completion);
        let kind = if cut { "response.incomplete" } else { "response.completed" };
        events.push(self.lifecycle(kind, &response));
        events
    }

    fn failure(&mut self, error: &ApiError) -> Vec<Value> {
        let body = error.body();
        let param = body["error"]["param"].clone();
        let message = error.to_string();
        let error_event = self.event("error", json!({"code": error.code(), "message": message, "param": param}));
        let response = self.response.clone().failed(self.items.clone(), message);
        vec![error_event, self.lifecycle("response.failed", &response)]
    }

    fn event_name<'a>(&self, chunk: &'a Value) -> Option<&'a str> {
        chunk.get("type").and_then(Value::as_str)
    }

    fn sends_done(&self) -> bool {
        false
    }
}
