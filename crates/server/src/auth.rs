//! The authentication layer: every request but `/health` passes through the
//! guard, which says who the caller is (or answers 401) and hands the
//! handlers a [`Caller`] as a request extension.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use edgeway_guard::Caller;

use crate::error::ApiError;
use crate::state::AppState;

/// Paths anyone may call: liveness probes must not need a key (llama-server does the same;
/// `/` is the probe of Ollama's clients, `/v2/health/*` KServe's).
const PUBLIC_PATHS: &[&str] = &["/health", "/v1/health", "/", "/v2/health/live", "/v2/health/ready"];

/// The key a request carries: `Authorization: Bearer KEY`, or `x-api-key: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        return scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Authenticates the request and passes it on with its [`Caller`], or answers 401.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let guard = state.guard().clone();
    // An open server (no keys) answers from memory; a key lookup is an SQLite read, off the async threads.
    let caller = match guard.required() {
        Ok(false) => Ok(Caller::anonymous()),
        Err(error) => Err(error),
        Ok(true) => {
            let presented = presented_key(request.headers()).map(str::to_owned);
            tokio::task::spawn_blocking(move || guard.authenticate(presented.as_deref()))
                .await
                .unwrap_or_else(|_| Err(edgeway_guard::Denied::Store("the key check failed".into())))
        }
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert::<Caller>(caller);
            next.run(request).await
        }
        Err(denied) => {
            tracing::info!(path = %request.uri().path(), reason = %denied, "request refused by the guard");
            ApiError::Guard(denied).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", HeaderValue::from_static(" ew-1 "));
        assert_eq!(presented_key(&headers), Some("ew-1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer ew-2"));
        assert_eq!(presented_key(&headers), Some("ew-2"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), None, "another scheme is not a key");
    }
}
