//! Checking a cloud answer's shape before it goes out: a structured request
//! (a JSON object or schema) whose cloud answer does not have the shape is
//! answered by the edge instead, or fails, as configured
//! ([`InvalidCloudAnswer`]). An upstream may ignore `response_format`; the
//! client asked for the shape, not for that upstream.

use edgeway_core::{BackendError, FinishReason, GenerateRequest, Generation, GenerationEvent, OutputFormat};
use edgeway_policy::InvalidCloudAnswer;
use edgeway_structured::{FormatCheck, Verdict};

/// The check a cloud answer gets before it is released.
pub(crate) struct ShapeCheck(FormatCheck);

/// The check for `request`'s cloud answer: `None` when nothing is to be checked (free text,
/// tools, a raw grammar no upstream enforces, or `pass`).
pub(crate) fn shape_check(request: &GenerateRequest, action: InvalidCloudAnswer) -> Option<ShapeCheck> {
    if action == InvalidCloudAnswer::Pass || request.tools.is_some() {
        return None;
    }
    match request.sampling.format.as_ref()? {
        OutputFormat::Grammar(_) => None,
        format => FormatCheck::new(format).ok().map(ShapeCheck),
    }
}

impl ShapeCheck {
    /// What is wrong with the held answer, or `None` when it may go out. An answer cut by
    /// `max_tokens` goes out as it is (marked truncated): the edge would be cut too.
    pub(crate) fn judge(&self, held: &[GenerationEvent]) -> Option<String> {
        let mut text = String::new();
        let mut finish = FinishReason::Stop;
        for event in held {
            match event {
                GenerationEvent::Delta { text: piece, .. } => text.push_str(piece),
                GenerationEvent::Finished(completion) => finish = completion.finish_reason,
                GenerationEvent::Routed(_) | GenerationEvent::ToolCall(_) => {}
            }
        }
        match self.0.check(&text, finish) {
            Verdict::Invalid(reason) => Some(reason),
            Verdict::Valid | Verdict::Truncated | Verdict::Unchecked => None,
        }
    }
}

/// The whole answer, `first` included, up to its `Finished` event.
pub(crate) async fn hold_answer(
    first: GenerationEvent,
    generation: &mut Generation,
) -> Result<Vec<GenerationEvent>, BackendError> {
    let mut held = vec![first];
    while !matches!(held.last(), Some(GenerationEvent::Finished(_))) {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Routed(_))) => {}
            Some(Ok(event)) => held.push(event),
            Some(Err(error)) => return Err(error),
            None => return Err(BackendError::Unavailable("the cloud ended the stream before the answer ended".into())),
        }
    }
    Ok(held)
}
