//! The authentication layer: every request but `/health` passes through the
//! guard, which says who the caller is (or answers 401) and hands the
//! handlers a [`Caller`] as a request extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use edgeway_guard::{Caller, Denied, Guard};

use crate::error::ApiError;
use crate::state::AppState;

/// Paths anyone may call: liveness probes must not need a key (llama-server does the same;
/// `/` is the probe of Ollama's clients, `/v2/health/*` KServe's), and the dashboard's login
/// form and style sheet.
const PUBLIC_PATHS: &[&str] =
    &["/health", "/v1/health", "/", "/v2/health/live", "/v2/health/ready", "/dashboard/login", "/dashboard/style.css"];

/// The cookie the dashboard's login sets (HttpOnly, SameSite=Strict, path `/dashboard`).
pub const DASHBOARD_COOKIE: &str = "edgeway_key";

/// The key in the dashboard's cookie, read only for the dashboard's own paths: the API never
/// takes a cookie, so another site cannot make a browser spend a key.
fn cookie_key<'h>(headers: &'h HeaderMap, path: &str) -> Option<&'h str> {
    if !path.starts_with("/dashboard") {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(DASHBOARD_COOKIE)?.strip_prefix('='))
        .map(str::trim)
}

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
            let path = request.uri().path();
            let presented =
                presented_key(request.headers()).or_else(|| cookie_key(request.headers(), path)).map(str::to_owned);
            check_key(guard, presented).await
        }
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert::<Caller>(caller);
            next.run(request).await
        }
        Err(denied) => {
            tracing::info!(path = %request.uri().path(), reason = %denied, "request refused by the guard");
            if request.uri().path() == "/dashboard" && accepts_html(request.headers()) {
                // A person at the dashboard without a (valid) key: the login form, not JSON.
                return axum::response::Redirect::to("/dashboard/login").into_response();
            }
            ApiError::Guard(denied).into_response()
        }
    }
}

/// Looks `key` up in the guard's key table (an SQLite read) on a blocking thread.
pub async fn check_key(guard: Arc<Guard>, key: Option<String>) -> Result<Caller, Denied> {
    tokio::task::spawn_blocking(move || guard.authenticate(key.as_deref()))
        .await
        .unwrap_or_else(|_| Err(Denied::Store("the key check failed".into())))
}

/// Whether the client is a browser asking for a page.
pub fn accepts_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
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

    #[test]
    fn the_dashboard_cookie_counts_on_the_dashboard_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; edgeway_key=ew-3; x=1"));
        assert_eq!(cookie_key(&headers, "/dashboard"), Some("ew-3"));
        assert_eq!(cookie_key(&headers, "/dashboard/api/overview"), Some("ew-3"));
        assert_eq!(cookie_key(&headers, "/v1/chat/completions"), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("edgeway_keyx=ew-4"));
        assert_eq!(cookie_key(&headers, "/dashboard"), None);
    }
}
