//! A JSON extractor whose rejections use the API's error shape.
//!
//! axum's own `Json` answers bad input with plain text and insists on a
//! `Content-Type: application/json` header. OpenAI clients expect a JSON
//! error object they can show, and `curl -d` sends a form content type, so
//! this extractor parses any body as JSON (as llama-server does) and turns
//! every failure into an [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Whether reading the body failed because it paused past the body timeout.
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Like `axum::Json`, but lenient about the content type and strict about the error shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if timed_out(&rejection) {
                return ApiError::BodyTimeout;
            }
            let response = rejection.into_response();
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!(
                    "the request body is larger than the {} MiB limit",
                    crate::MAX_BODY_BYTES >> 20
                ))
            } else {
                ApiError::BadJson("the request body could not be read".into())
            }
        })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|error| {
            use serde_json::error::Category;
            let message = match error.classify() {
                Category::Data => format!("the JSON does not match this endpoint: {error}"),
                Category::Eof if bytes.is_empty() => "the request body is empty; send a JSON object".to_owned(),
                Category::Syntax | Category::Eof | Category::Io => {
                    format!("the body is not valid JSON: {error}")
                }
            };
            ApiError::BadJson(message)
        })
    }
}
