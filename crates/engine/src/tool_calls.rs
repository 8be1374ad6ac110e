//! From the model's text to the events of an answer that may call tools:
//! plain text goes out as deltas, each complete call as one tool-call event
//! with a fresh id and the next index.

use std::hash::BuildHasher;

use edgeway_core::{GenerationEvent, ToolCallDelta, ToolUse};
use edgeway_structured::tools::{Piece, ToolCallParser};

/// Splits one answer's text into text deltas and tool calls.
#[derive(Debug)]
pub struct ToolCallSplitter {
    parser: ToolCallParser,
    /// Calls sent so far; the next call's index.
    sent: u32,
    /// The calls so far, to notice a repeat.
    seen: Vec<(String, String)>,
    /// The model wrote a call it had already made.
    repeated: bool,
    /// Makes call ids unique across requests and restarts.
    ids: std::collections::hash_map::RandomState,
}

impl ToolCallSplitter {
    /// A splitter for an answer that may call the tools `tools` lets it call; `None`
    /// when it may call none (then the text is passed through untouched).
    pub fn new(tools: &ToolUse) -> Option<Self> {
        let names: Vec<String> = tools.callable().map(|tool| tool.name.clone()).collect();
        (!names.is_empty()).then(|| Self {
            parser: ToolCallParser::new(names),
            sent: 0,
            seen: Vec::new(),
            repeated: false,
            ids: std::collections::hash_map::RandomState::new(),
        })
    }

    /// Whether the answer called a tool.
    pub fn called(&self) -> bool {
        self.sent > 0
    }

    /// Whether the model repeated a call word for word (small models loop so); the
    /// repeat is dropped and the answer should end.
    pub fn repeated(&self) -> bool {
        self.repeated
    }

    /// The events for more generated text (deltas without logprobs, and calls).
    pub fn push(&mut self, text: &str) -> Vec<GenerationEvent> {
        let pieces = self.parser.push(text);
        let events = self.events(pieces);
        // A repeat is known once its JSON is whole, before the closing tag.
        if let Some(call) = self.parser.pending_call() {
            self.repeated |= self.seen.contains(&(call.name, call.arguments));
        }
        events
    }

    /// The events for what the parser still held when the answer ended.
    pub fn finish(&mut self) -> Vec<GenerationEvent> {
        let pieces = self.parser.finish();
        self.events(pieces)
    }

    fn events(&mut self, pieces: Vec<Piece>) -> Vec<GenerationEvent> {
        let mut events = Vec::with_capacity(pieces.len());
        for piece in pieces {
            if self.repeated {
                break;
            }
            match piece {
                Piece::Text(text) => events.push(GenerationEvent::Delta { text, logprobs: Vec::new() }),
                Piece::Call(call) => {
                    let key = (call.name.clone(), call.arguments.clone());
                    if self.seen.contains(&key) {
                        self.repeated = true;
                        break;
                    }
                    self.seen.push(key);
                    let id = format!("call_{:016x}", self.ids.hash_one(self.sent));
                    events.push(GenerationEvent::ToolCall(ToolCallDelta {
                        index: self.sent,
                        id: Some(id),
                        name: Some(call.name),
                        arguments: call.arguments,
                    }));
                    self.sent += 1;
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use edgeway_core::{ToolChoice, ToolSpec};

    use super::*;

    fn tools(choice: ToolChoice) -> ToolUse {
        let tool = |name: &str| ToolSpec {
            name: name.into(),
            description: None,
            parameters: r#"{"type": "object"}"#.into(),
            strict: false,
        };
        ToolUse { tools: vec![tool("a"), tool("b")], choice, parallel: true }
    }

    #[test]
    fn calls_get_distinct_indices_and_ids() {
        let mut splitter = ToolCallSplitter::new(&tools(ToolChoice::Auto)).expect("callable");
        let mut events = splitter.push(
            "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": 1}}</tool_call>",
        );
        events.extend(splitter.finish());
        let calls: Vec<&ToolCallDelta> = events
            .iter()
            .filter_map(|event| match event {
                GenerationEvent::ToolCall(call) => Some(call),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 2, "{events:?}");
        assert_eq!((calls[0].index, calls[1].index), (0, 1));
        assert_ne!(calls[0].id, calls[1].id);
        assert_eq!(calls[1].name.as_deref(), Some("b"));
        assert_eq!(calls[1].arguments, r#"{"x":1}"#);
        assert!(splitter.called());
    }

    #[test]
    fn a_repeated_call_is_dropped_and_ends_the_answer() {
        let mut splitter = ToolCallSplitter::new(&tools(ToolChoice::Auto)).expect("callable");
        let call = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n";
        assert_eq!(splitter.push(call).len(), 1);
        assert!(!splitter.repeated());
        assert!(splitter.push(call).is_empty());
        assert!(splitter.repeated());
        // Noticed before the repeat's closing tag.
        let mut splitter = ToolCallSplitter::new(&tools(ToolChoice::Auto)).expect("callable");
        splitter.push(call);
        splitter.push("<tool_call>{\"name\": \"a\", \"arguments\": {}}\n</tool");
        assert!(splitter.repeated());
        assert!(splitter.finish().is_empty());
    }

    #[test]
    fn no_callable_tool_means_no_splitting() {
        assert!(ToolCallSplitter::new(&tools(ToolChoice::None)).is_none());
        assert!(ToolCallSplitter::new(&tools(ToolChoice::Function("b".into()))).is_some());
    }
}
