//! The one error type of the HTTP layer and its mapping to OpenAI's error shape.
//!
//! Every failure a client can see goes through [`ApiError`], so the status
//! codes live in one table ([`ApiError::status`]) and every body has the
//! shape OpenAI's clients parse: `{"error": {"message", "type", "param", "code"}}`.
//! On Ollama's routes the same error goes out as `{"error": "message"}` ([`ApiError::ollama_body`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use edgeway_core::BackendError;
use edgeway_guard::{retry_after_secs, Denied};
use serde::Serialize;

/// Seconds a client is told to wait when the server is saturated.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON, or not the JSON this endpoint takes.
    #[error("{0}")]
    BadJson(String),
    /// The body is larger than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The body stopped arriving for longer than the server waits.
    #[error("the request body stopped arriving for longer than the server waits ([server] body_timeout_secs)")]
    BodyTimeout,
    /// A field is out of range or unsupported.
    #[error("{message}")]
    InvalidField {
        /// The field, as OpenAI's `param`.
        param: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The `model` field names a model this server does not serve.
    #[error("the model '{requested}' does not exist here; this server serves: {available}")]
    UnknownModel {
        /// What was asked for.
        requested: String,
        /// What is served.
        available: String,
    },
    /// No route for this path.
    #[error("no endpoint {0}; see /v1/models, /v1/chat/completions, /v1/completions and /health")]
    NotFound(String),
    /// The path exists but not for this HTTP method.
    #[error("this endpoint does not accept that method (chat and completions take POST, models and health take GET)")]
    MethodNotAllowed,
    /// The model is still loading.
    #[error("the model is loading; retry shortly")]
    Loading,
    /// The server runs without the model this endpoint needs.
    #[error("{0}")]
    NotSupported(String),
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The guard refused: no key, a bad key, not allowed, or over quota.
    #[error(transparent)]
    Guard(#[from] Denied),
}

/// The body of an error response.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: String,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    /// The HTTP status, OpenAI's `type`, and its `code`, in one table.
    fn classify(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", Some("invalid_json")),
            ApiError::TooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("request_too_large"))
            }
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "invalid_request_error", Some("body_timeout")),
            ApiError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", Some("invalid_value")),
            ApiError::UnknownModel { .. } => (StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found")),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", Some("not_found")),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed"))
            }
            ApiError::Loading => (StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", Some("model_loading")),
            ApiError::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "invalid_request_error", Some("not_supported")),
            ApiError::Backend(error) => match error {
                BackendError::QueueFull { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "overloaded_error", Some("queue_full"))
                }
                BackendError::PromptTooLong { .. } => {
                    (StatusCode::BAD_REQUEST, "invalid_request_error", Some("context_length_exceeded"))
                }
                BackendError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
                BackendError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", None),
                BackendError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
                BackendError::BadUpstreamAnswer(_) => {
                    (StatusCode::BAD_GATEWAY, "upstream_error", Some("upstream_answer_invalid"))
                }
            },
            ApiError::Guard(denied) => match denied {
                Denied::MissingKey | Denied::InvalidKey { .. } | Denied::RevokedKey { .. } => {
                    (StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"))
                }
                Denied::Forbidden { code, .. } => (StatusCode::FORBIDDEN, "permission_error", Some(*code)),
                Denied::Refused { code, .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", Some(*code)),
                Denied::OverLimit { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"))
                }
                Denied::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
            },
        }
    }

    /// A short stable name for logs: OpenAI's `code`, else its `type`.
    pub fn code(&self) -> &'static str {
        let (_, kind, code) = self.classify();
        code.unwrap_or(kind)
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        self.classify().0
    }

    /// The JSON body, also used for errors that arrive mid-stream.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, code) = self.classify();
        let param = match self {
            ApiError::InvalidField { param, .. } => Some(*param),
            ApiError::UnknownModel { .. } => Some("model"),
            _ => None,
        };
        serde_json::to_value(ErrorBody { error: ErrorDetail { message: self.to_string(), kind, param, code } })
            .unwrap_or_default()
    }

    /// The same error in Ollama's shape, `{"error": "message"}`, for the `/api/*` routes and
    /// for errors that arrive mid-stream there. The status comes from the same table.
    pub fn ollama_body(&self) -> serde_json::Value {
        let message = match self {
            // Ollama's own words, which its clients show and match on.
            ApiError::UnknownModel { requested, .. } => format!("model '{requested}' not found"),
            other => other.to_string(),
        };
        serde_json::json!({ "error": message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(%status, error = %self, "request failed");
        } else if status.is_server_error() {
            tracing::info!(%status, error = %self, "request refused");
        } else {
            tracing::debug!(%status, error = %self, "request rejected");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if let ApiError::Guard(Denied::OverLimit { over, .. }) = &self {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(over)));
            let kind = if over.limit == edgeway_guard::Limit::RequestsPerMinute { "requests" } else { "tokens" };
            if let Ok(name) = header::HeaderName::try_from(format!("x-ratelimit-limit-{kind}")) {
                headers.insert(name, HeaderValue::from(over.value));
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The error rides along, so the Ollama routes' layer can give the body their shape.
        response.extensions_mut().insert(self);
        response
    }
}

/// The response for a handler that panicked: a 500 that says nothing of the internals.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Backend(BackendError::Internal("unexpected internal error".into())).into_response()
}

/// Shorthand for an invalid-field error.
pub fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField { param, message: message.into() }
}
