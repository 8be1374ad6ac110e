//! `POST /v1/inspect`: one image of a part in, its verdict out.
//!
//! The image comes as the raw body (`Content-Type: image/png`, `image/jpeg`
//! or `application/octet-stream`), as the `image` (or `file`) field of a
//! multipart form, or as JSON `{"image": "<base64>"}`. The query string (or
//! the JSON) may name the `model` and ask for the `heatmap` as PNG.
//!
//! [`judge`] is what this endpoint and KServe's `infer` share: the guard,
//! the model on a blocking thread, one query-log row per image.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::{Extension, Json};
use base64::Engine as _;
use edgeway_core::inspect::{InspectOptions, Inspector, Verdict};
use edgeway_core::BackendError;
use edgeway_guard::{Ask, Caller};
use edgeway_store::QueryRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{invalid, ApiError};
use crate::state::AppState;

/// The query string of `/v1/inspect`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectQuery {
    /// The inspection model; optional when the server has one.
    pub model: Option<String>,
    /// Whether to return the heat map as base64 PNG (`heatmap_png`).
    #[serde(default)]
    pub heatmap: bool,
}

/// The JSON form of the request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectJson {
    /// The image, base64 (standard alphabet; a `data:` URL prefix is allowed).
    image: String,
    model: Option<String>,
    #[serde(default)]
    heatmap: bool,
}

/// Judges one image.
pub async fn inspect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<InspectQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let Query(mut query) = query.map_err(|e| invalid("query", format!("the query string is not valid here: {e}")))?;
    let image = read_image(request, &state, &mut query).await?;
    let inspector = state.inspector(query.model.as_deref())?;
    let options = InspectOptions { map: false, heatmap_png: query.heatmap };
    let started = Instant::now();
    let verdict = judge(&state, &caller, "inspect", inspector.clone(), image, options).await?;
    let info = inspector.info();
    let mut body = json!({
        "model": info.id,
        "precision": info.precision.as_str(),
        "score": verdict.score,
        "label": verdict.label.as_str(),
        "threshold": info.threshold,
        "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
        "batch_size": verdict.batch_size,
    });
    if let Some(png) = &verdict.heatmap_png {
        body["heatmap_png"] = json!(base64::engine::general_purpose::STANDARD.encode(png));
    }
    Ok(Json(body))
}

/// The image bytes of a request in any of the accepted forms; JSON and form fields fill in `query`.
async fn read_image(request: Request, state: &AppState, query: &mut InspectQuery) -> Result<Bytes, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, state)
                .await
                .map_err(|e| ApiError::BadJson(format!("the multipart form cannot be read: {e}")))?;
            let mut image = None;
            while let Some(field) =
                form.next_field().await.map_err(|e| ApiError::BadJson(format!("the multipart form is broken: {e}")))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(|e| body_error(&e.to_string()))?;
                match name.as_str() {
                    "image" | "file" => image = Some(bytes),
                    "model" => query.model = Some(String::from_utf8_lossy(&bytes).trim().to_owned()),
                    "heatmap" => query.heatmap = matches!(&bytes[..], b"true" | b"1"),
                    _ => {}
                }
            }
            image.ok_or_else(|| invalid("image", "the form has no `image` (or `file`) field with the picture"))
        }
        "application/json" => {
            let bytes = Bytes::from_request(request, state).await.map_err(|e| body_error(&e.to_string()))?;
            let body: InspectJson = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadJson(format!("the JSON is not an inspection request: {e}")))?;
            query.model = body.model.or(query.model.take());
            query.heatmap |= body.heatmap;
            let data = body.image.split_once(";base64,").map_or(body.image.as_str(), |(_, data)| data);
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map(Bytes::from)
                .map_err(|e| invalid("image", format!("`image` is not base64: {e}")))
        }
        _ => Bytes::from_request(request, state).await.map_err(|e| body_error(&e.to_string())),
    }
}

/// A body that could not be read: too large, or cut off.
fn body_error(message: &str) -> ApiError {
    if message.contains("length limit") {
        ApiError::TooLarge(format!(
            "the image is larger than this server accepts ({} MiB)",
            crate::MAX_BODY_BYTES / (1024 * 1024)
        ))
    } else {
        ApiError::BadJson(format!("the body cannot be read: {message}"))
    }
}

/// Judges `image` with `inspector` for `caller`: the guard's checks, the model
/// on a blocking thread, and one query-log row under `endpoint`.
pub(crate) async fn judge(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    inspector: Arc<dyn Inspector>,
    image: Bytes,
    options: InspectOptions,
) -> Result<Verdict, ApiError> {
    let started = Instant::now();
    let id = inspector.info().id.clone();
    super::admit(state.guard(), caller, &Ask { model: Some(&id), ..Ask::default() })?;
    let worker = inspector.clone();
    let result = tokio::task::spawn_blocking(move || worker.inspect(&image, options))
        .await
        .unwrap_or_else(|_| Err(BackendError::Internal("the inspection task failed".into())));
    log(state, caller, endpoint, inspector.as_ref(), started, &result);
    result.map_err(ApiError::from)
}

/// One query-log row (and the metrics) per image.
fn log(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    inspector: &dyn Inspector,
    started: Instant,
    result: &Result<Verdict, BackendError>,
) {
    let info = inspector.info();
    let mut record = QueryRecord {
        ts_ms: edgeway_store::record::now_ms(),
        endpoint: endpoint.into(),
        key_id: caller.key_id.clone(),
        route: "edge".into(),
        model: Some(info.id.clone()),
        precision: Some(info.precision.as_str().into()),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        status: "ok".into(),
        ..QueryRecord::default()
    };
    match result {
        Ok(verdict) => {
            record.score = Some(verdict.score);
            record.label = Some(verdict.label.as_str().into());
            record.reason = Some(format!("batch of {}", verdict.batch_size));
            record.energy_j = verdict.energy_j;
            record.energy_source = verdict.energy_j.map(|_| inspector.energy_source().into());
        }
        Err(error) => {
            let error = ApiError::from(error.clone());
            record.status = error.code().into();
            record.error = Some(error.to_string());
        }
    }
    state.metrics().observe(&record);
    if let Some(settings) = state.log() {
        settings.log.record(record);
    }
}
