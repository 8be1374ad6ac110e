//! Retrieval in the request path: a chat that names a collection (the
//! `collection` field, the `x-edgeway-collection` header, or the configured
//! default) gets the passages closest to its last user message put in front
//! of it as a system message, as many as fit the context, and the response
//! lists them as its sources.

use std::sync::Arc;

use edgeway_core::{Backend, ChatMessage, GenerateRequest, Passage, Prompt};
use edgeway_guard::injection::{Channel, InjectionAction};
use edgeway_guard::Caller;

use crate::error::{invalid, ApiError};
use crate::state::AppState;

/// Header naming the collection to retrieve from (`none` turns a configured default off).
pub const COLLECTION_HEADER: &str = "x-edgeway-collection";

/// How requests retrieve.
#[derive(Debug, Clone, PartialEq)]
pub struct RagSettings {
    /// The collection for requests that name none (`None`: no retrieval unless asked).
    pub default_collection: Option<String>,
    /// Passages to retrieve.
    pub top_k: usize,
    /// Passages less similar than this to the question are left out.
    pub min_score: f32,
    /// Tokens kept free for the answer when fitting passages into the context.
    pub answer_reserve: u32,
}

impl Default for RagSettings {
    fn default() -> Self {
        Self { default_collection: None, top_k: 4, min_score: 0.25, answer_reserve: 256 }
    }
}

/// The collection a request asks for: the body's field, then the header, then the default; `none` means none.
pub fn requested_collection(field: Option<&str>, header: Option<&str>, settings: &RagSettings) -> Option<String> {
    let chosen = field.or(header).map(str::trim).map(str::to_owned).or_else(|| settings.default_collection.clone())?;
    (!chosen.is_empty() && !chosen.eq_ignore_ascii_case("none")).then_some(chosen)
}

/// Retrieves for `request` from `collection` and adds the passages that fit; returns them.
pub async fn augment(
    state: &AppState,
    backend: &Arc<dyn Backend>,
    caller: &Caller,
    request: &mut GenerateRequest,
    collection: &str,
) -> Result<Vec<Passage>, ApiError> {
    let retriever = state.retriever().cloned().ok_or_else(|| {
        ApiError::NotSupported(
            "retrieval is not available: this server has no embedding model or knowledge base loaded".into(),
        )
    })?;
    if !matches!(request.prompt, Prompt::Chat(_)) {
        return Err(invalid("collection", "retrieval works on chat requests; use /v1/chat/completions"));
    }
    let Some(question) = request.prompt.user_text().map(str::to_owned) else {
        return Err(invalid("collection", "retrieval needs a user message to search for"));
    };
    let settings = state.rag().clone();
    let name = collection.to_owned();
    // Embedded once for the request: the router's scorer reads the same vector later.
    crate::query_embedding::ensure(state, request).await;
    let embedding = request.query_embedding.clone();
    let passages =
        tokio::task::spawn_blocking(move || retriever.retrieve(&name, &question, embedding.as_ref(), settings.top_k))
            .await
            .map_err(|_| ApiError::Backend(edgeway_core::BackendError::Internal("the retrieval task failed".into())))?
            .map_err(|error| match error {
                edgeway_core::BackendError::InvalidRequest(message) => invalid("collection", message),
                other => ApiError::Backend(other),
            })?;
    let passages: Vec<Passage> = passages.into_iter().filter(|p| p.score >= state.rag().min_score).collect();
    let passages = screen_passages(state, caller, passages).await;
    let reserve = state.rag().answer_reserve;
    let max_tokens = request.sampling.max_tokens;
    // Counting the tokens of a long prompt is work for a blocking thread.
    let heavy = request.prompt.text_len() >= edgeway_core::LARGE_PROMPT_BYTES;
    let (backend, prompt) = (Arc::clone(backend), request.prompt.clone());
    let kept =
        edgeway_core::off_runtime_if(heavy, move || fit(backend.as_ref(), &prompt, max_tokens, passages, reserve))
            .await?;
    if !kept.is_empty() {
        if let Prompt::Chat(messages) = &mut request.prompt {
            messages.insert(0, ChatMessage::new("system", context_message(&kept)));
        }
    }
    Ok(kept)
}

/// Screens retrieved passages for injected instructions (the rules and the classifier, then
/// the injection judge when one is configured): flagged ones are logged, and left out when the
/// injection action is `block`.
async fn screen_passages(state: &AppState, caller: &Caller, passages: Vec<Passage>) -> Vec<Passage> {
    let guard = state.guard();
    if guard.injection_action() == InjectionAction::Off {
        return passages;
    }
    let mut kept = Vec::with_capacity(passages.len());
    for passage in passages {
        let mut flagged =
            guard.screen(caller, &passage.text, Channel::Passage, &passage.source).is_some_and(|s| s.flagged);
        if !flagged {
            flagged =
                crate::injection_judge::flags(state, caller, &passage.text, Channel::Passage, &passage.source).await;
        }
        if !(flagged && guard.injection_action() == InjectionAction::Block) {
            kept.push(passage);
        }
    }
    kept
}

/// The passages, best first, that fit in the slot's context next to the prompt and the answer.
fn fit(
    backend: &dyn Backend,
    prompt: &Prompt,
    max_tokens: Option<u32>,
    passages: Vec<Passage>,
    reserve: u32,
) -> Vec<Passage> {
    let window = backend.model_info().n_ctx_slot;
    let answer = max_tokens.unwrap_or(reserve).min(window / 2);
    let count = |text: &str| backend.tokenize(&Prompt::Text(text.to_owned())).map_or(text.len() / 3, |t| t.len());
    let prompt_tokens = backend.tokenize(prompt).map_or(0, |t| t.len() as u32);
    let mut budget = window.saturating_sub(prompt_tokens + answer + 64) as usize;
    let mut kept = Vec::new();
    for passage in passages {
        let tokens = count(&passage.text) + 16;
        if tokens > budget {
            break;
        }
        budget -= tokens;
        kept.push(passage);
    }
    kept
}

/// The system message that carries the passages.
fn context_message(passages: &[Passage]) -> String {
    let mut text = String::from(
        "Answer using the following passages from local documents. If they do not contain the answer, say so.\n",
    );
    for (index, passage) in passages.iter().enumerate() {
        let name = passage.title.clone().unwrap_or_else(|| file_name(&passage.source));
        text.push_str(&format!("\n[{}] {}:\n{}\n", index + 1, name, passage.text.trim()));
    }
    text
}

fn file_name(source: &str) -> String {
    std::path::Path::new(source).file_name().and_then(|n| n.to_str()).unwrap_or(source).to_owned()
}

/// The sources as the response lists them.
pub fn sources_json(passages: &[Passage]) -> serde_json::Value {
    serde_json::Value::Array(
        passages
            .iter()
            .map(|p| serde_json::json!({"source": p.source, "title": p.title, "chunk": p.position, "score": p.score}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_wins_then_the_header_then_the_default() {
        let settings = RagSettings { default_collection: Some("manuals".into()), ..RagSettings::default() };
        assert_eq!(requested_collection(Some("a"), Some("b"), &settings).as_deref(), Some("a"));
        assert_eq!(requested_collection(None, Some("b"), &settings).as_deref(), Some("b"));
        assert_eq!(requested_collection(None, None, &settings).as_deref(), Some("manuals"));
        assert_eq!(requested_collection(Some("none"), None, &settings), None);
        assert_eq!(requested_collection(None, None, &RagSettings::default()), None);
    }
}
