//! The request's user text embedded once, for every part of the request path that reads it.
//!
//! The router's embedding scorer and retrieval both want the vector of the same text (the
//! last user message). Embedding costs milliseconds and blocks, so the server, which holds
//! the embedding model, computes it at most once per request on a blocking thread and keeps
//! it on the request ([`GenerateRequest::query_embedding`]); whoever comes later reads it.
//! The injection screen reads text only (rules and a linear model over words), so it needs none.

use edgeway_core::{GenerateRequest, QueryEmbedding};

use crate::state::AppState;

/// Makes sure `request` carries its user text's embedding, computing it now if it has none.
/// Returns whether it has one afterwards. A server without an embedding model, a request
/// without user text or a failing model leave it without (the failure is logged): routing
/// then falls back to the transparent score, and retrieval embeds (and reports) on its own.
pub async fn ensure(state: &AppState, request: &mut GenerateRequest) -> bool {
    if request.query_embedding.is_some() {
        return true;
    }
    let Some(embedder) = state.embedder().cloned() else {
        return false;
    };
    let Some(text) = request.prompt.user_text().filter(|text| !text.trim().is_empty()).map(str::to_owned) else {
        return false;
    };
    let model = embedder.embedding_info().id.clone();
    let embedded = tokio::task::spawn_blocking(move || embedder.embed(&[text])).await;
    match embedded {
        Ok(Ok(output)) => match output.vectors.into_iter().next() {
            Some(vector) => {
                request.query_embedding = Some(QueryEmbedding::new(model, vector));
                true
            }
            None => false,
        },
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot embed the query; routing falls back to the transparent score");
            false
        }
        Err(_) => {
            tracing::warn!("the query-embedding task failed; routing falls back to the transparent score");
            false
        }
    }
}
