//! The Open Inference Protocol (KServe v2), as Triton and OpenVINO Model
//! Server speak it, for the inspection models: health, server and model
//! metadata, readiness, and `infer`.
//!
//! An inspection model takes one input, encoded images (PNG or JPEG) as a
//! `BYTES` tensor of shape `[N]`, and answers with anomalib's output names:
//! `pred_score` (FP32 `[N]`), `pred_label` (BOOL `[N]`, true = defective) and
//! `anomaly_map` (FP32 `[N, S, S]`). Tensors travel as JSON or with the binary
//! tensor data extension (the JSON header's length in
//! `Inference-Header-Content-Length`, then the raw tensors), which is how
//! `tritonclient` sends images; a `BYTES` element in binary is a 4-byte
//! little-endian length and the bytes, in JSON a base64 string.
//! Errors have the protocol's shape, `{"error": "message"}`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use edgeway_core::inspect::{InspectOptions, Inspector, Label, Verdict};
use edgeway_guard::Caller;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{invalid, ApiError};
use crate::state::AppState;

/// The header that carries the JSON header's length when binary tensors follow it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// The one version each model has.
pub const MODEL_VERSION: &str = "1";
/// Most images in one `infer` request.
pub const MAX_IMAGES: usize = 64;
/// The output names, anomalib's.
pub const OUTPUTS: [&str; 3] = ["pred_score", "pred_label", "anomaly_map"];

/// Whether `path` is one of this protocol's (its errors get the protocol's body).
pub fn is_kserve_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// The protocol's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_version))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_version))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "edgeway", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }))
}

async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// Ready once the models this server was started with have loaded.
async fn ready(State(state): State<AppState>) -> Response {
    let ready = state.backend().is_some() || !state.inspectors().is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready }))).into_response()
}

/// The inspector `name` at `version` (only [`MODEL_VERSION`] exists).
fn find(state: &AppState, name: &str, version: Option<&str>) -> Result<std::sync::Arc<dyn Inspector>, ApiError> {
    let inspector = state.inspector(Some(name))?;
    match version {
        Some(v) if v != MODEL_VERSION => Err(ApiError::NotFound(format!(
            "/v2/models/{name}/versions/{v} (the model has one version, {MODEL_VERSION})"
        ))),
        _ => Ok(inspector),
    }
}

fn metadata(inspector: &dyn Inspector) -> Value {
    let info = inspector.info();
    let size = i64::from(info.input_size);
    json!({
        "name": info.id,
        "versions": [MODEL_VERSION],
        "platform": "edgeway_patchcore",
        "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [-1] }],
        "outputs": [
            { "name": "pred_score", "datatype": "FP32", "shape": [-1] },
            { "name": "pred_label", "datatype": "BOOL", "shape": [-1] },
            { "name": "anomaly_map", "datatype": "FP32", "shape": [-1, size, size] },
        ],
        "parameters": {
            "precision": info.precision.as_str(),
            "threshold": info.threshold,
            "backbone": info.backbone,
        },
    })
}

async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(metadata(find(&state, &name, None)?.as_ref())))
}

async fn model_metadata_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(metadata(find(&state, &name, Some(&version))?.as_ref())))
}

async fn model_ready(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    find(&state, &name, None)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

async fn model_ready_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &name, Some(&version))?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

/// An inference request's JSON header.
#[derive(Debug, Deserialize)]
struct InferRequest {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

#[derive(Debug, Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

async fn infer(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_infer(state, caller, name, None, headers, body).await
}

async fn infer_version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_infer(state, caller, name, Some(version), headers, body).await
}

async fn run_infer(
    state: AppState,
    caller: Caller,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let inspector = find(&state, &name, version.as_deref())?;
    let (request, binary) = split_body(&headers, &body)?;
    let images = input_images(&request, &binary)?;
    let outputs = requested_outputs(&request)?;
    let options = InspectOptions { map: outputs.iter().any(|o| o.name == "anomaly_map"), heatmap_png: false };
    let verdicts = futures::future::join_all(
        images
            .into_iter()
            .map(|image| super::inspect::judge(&state, &caller, "kserve", inspector.clone(), image, options)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<Verdict>, ApiError>>()?;
    Ok(respond(inspector.as_ref(), &request, &outputs, &verdicts))
}

/// The JSON header and the binary tensors after it.
fn split_body(headers: &HeaderMap, body: &Bytes) -> Result<(InferRequest, Bytes), ApiError> {
    let json_length = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                invalid(
                    "Inference-Header-Content-Length",
                    format!("Inference-Header-Content-Length must be a byte count within the body's {}", body.len()),
                )
            })?,
    };
    let request: InferRequest = serde_json::from_slice(&body[..json_length])
        .map_err(|e| ApiError::BadJson(format!("the inference request's JSON is not valid: {e}")))?;
    Ok((request, body.slice(json_length..)))
}

/// The images of the one `BYTES` input, from the binary data or from base64 JSON strings.
fn input_images(request: &InferRequest, binary: &Bytes) -> Result<Vec<Bytes>, ApiError> {
    let input = match request.inputs.as_slice() {
        [input] => input,
        inputs => {
            return Err(invalid(
                "inputs",
                format!("this model takes one input (the images as BYTES), got {}", inputs.len()),
            ))
        }
    };
    if input.datatype != "BYTES" {
        return Err(invalid(
            "inputs",
            format!(
                "input `{}` is {}; this model takes encoded images (PNG or JPEG) as a BYTES tensor of shape [N]",
                input.name, input.datatype
            ),
        ));
    }
    if input.shape.iter().any(|&d| d < 0) {
        return Err(invalid("inputs", format!("input `{}` has a negative dimension in {:?}", input.name, input.shape)));
    }
    let declared = input.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let images = match (input.parameters.get("binary_data_size"), &input.data) {
        (Some(size), _) => {
            let size = size.as_u64().filter(|&s| s as usize <= binary.len()).ok_or_else(|| {
                invalid("inputs", format!("binary_data_size {size} is more than the {} bytes sent", binary.len()))
            })? as usize;
            split_bytes_elements(&binary[..size])?.into_iter().map(|r| binary.slice(r)).collect()
        }
        (None, Some(data)) => {
            let mut strings = Vec::new();
            flatten_strings(data, &mut strings)?;
            strings
                .into_iter()
                .map(|s| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map(Bytes::from)
                        .map_err(|e| invalid("inputs", format!("a BYTES element sent as JSON must be base64: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, None) => {
            return Err(invalid("inputs", format!("input `{}` has neither data nor binary_data_size", input.name)))
        }
    };
    if images.len() as u64 != declared {
        return Err(invalid(
            "inputs",
            format!(
                "input `{}` has shape {:?} ({declared} images) but {} were sent",
                input.name,
                input.shape,
                images.len()
            ),
        ));
    }
    if images.is_empty() || images.len() > MAX_IMAGES {
        return Err(invalid("inputs", format!("send 1 to {MAX_IMAGES} images per request, not {}", images.len())));
    }
    Ok(images)
}

/// The byte ranges of the elements of a binary `BYTES` tensor: each a 4-byte
/// little-endian length, then that many bytes.
pub fn split_bytes_elements(data: &[u8]) -> Result<Vec<std::ops::Range<usize>>, ApiError> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(length) = data.get(at..at + 4) else {
            return Err(invalid("inputs", "the BYTES tensor ends inside an element's 4-byte length"));
        };
        let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let start = at + 4;
        if length > data.len() - start {
            return Err(invalid(
                "inputs",
                format!("a BYTES element says it has {length} bytes, only {} remain", data.len() - start),
            ));
        }
        ranges.push(start..start + length);
        at = start + length;
    }
    Ok(ranges)
}

fn flatten_strings(value: &Value, out: &mut Vec<String>) -> Result<(), ApiError> {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => {
            for item in items {
                flatten_strings(item, out)?;
            }
        }
        _ => return Err(invalid("inputs", "a BYTES tensor's JSON data must be strings (base64 images)")),
    }
    Ok(())
}

/// An output to send and whether it goes as binary.
struct Output {
    name: &'static str,
    binary: bool,
}

fn requested_outputs(request: &InferRequest) -> Result<Vec<Output>, ApiError> {
    let all_binary = request.parameters.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    if request.outputs.is_empty() {
        return Ok(OUTPUTS.iter().map(|&name| Output { name, binary: all_binary }).collect());
    }
    request
        .outputs
        .iter()
        .map(|requested| {
            let name = OUTPUTS.iter().copied().find(|&n| n == requested.name).ok_or_else(|| {
                invalid("outputs", format!("no output `{}`; this model has {}", requested.name, OUTPUTS.join(", ")))
            })?;
            let binary = requested.parameters.get("binary_data").and_then(Value::as_bool).unwrap_or(all_binary);
            Ok(Output { name, binary })
        })
        .collect()
}

/// The response: the JSON header, and the binary outputs after it when any were asked for that way.
fn respond(inspector: &dyn Inspector, request: &InferRequest, outputs: &[Output], verdicts: &[Verdict]) -> Response {
    let info = inspector.info();
    let n = verdicts.len();
    let size = info.input_size as usize;
    let mut tail = Vec::new();
    let mut entries = Vec::new();
    for output in outputs {
        let (datatype, shape, values, bytes): (&str, Vec<usize>, Value, Vec<u8>) = match output.name {
            "pred_score" => {
                let scores: Vec<f32> = verdicts.iter().map(|v| v.score).collect();
                ("FP32", vec![n], json!(scores), scores.iter().flat_map(|s| s.to_le_bytes()).collect())
            }
            "pred_label" => {
                let labels: Vec<bool> = verdicts.iter().map(|v| v.label == Label::Defective).collect();
                ("BOOL", vec![n], json!(labels), labels.iter().map(|&l| u8::from(l)).collect())
            }
            _ => {
                let maps: Vec<f32> = verdicts.iter().flat_map(|v| v.map.clone().unwrap_or_default()).collect();
                let bytes =
                    if output.binary { maps.iter().flat_map(|s| s.to_le_bytes()).collect() } else { Vec::new() };
                ("FP32", vec![n, size, size], json!(maps), bytes)
            }
        };
        let mut entry = json!({ "name": output.name, "datatype": datatype, "shape": shape });
        if output.binary {
            entry["parameters"] = json!({ "binary_data_size": bytes.len() });
            tail.extend(bytes);
        } else {
            entry["data"] = values;
        }
        entries.push(entry);
    }
    let mut header = json!({ "model_name": info.id, "model_version": MODEL_VERSION, "outputs": entries });
    if let Some(id) = &request.id {
        header["id"] = json!(id);
    }
    let header = header.to_string();
    if tail.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], header).into_response();
    }
    let length = header.len();
    let mut body = header.into_bytes();
    body.extend(tail);
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn bytes_elements_split_at_every_length_prefix() {
        let mut data = element(b"first image");
        data.extend(element(b""));
        data.extend(element(b"third"));
        let ranges = split_bytes_elements(&data).unwrap();
        let parts: Vec<&[u8]> = ranges.into_iter().map(|r| &data[r]).collect();
        assert_eq!(parts, [&b"first image"[..], b"", b"third"]);
        // Cut anywhere inside: a clear error, never a panic or a short image.
        for cut in 1..data.len() {
            let boundaries = [4 + 11, 4 + 11 + 4, data.len()];
            match split_bytes_elements(&data[..cut]) {
                Ok(ranges) => assert!(boundaries.contains(&cut), "cut {cut} gave {ranges:?}"),
                Err(error) => assert!(error.to_string().contains("BYTES"), "{error}"),
            }
        }
    }

    #[test]
    fn the_body_splits_at_the_header_length() {
        let header =
            br#"{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}"#;
        let mut body = header.to_vec();
        body.extend(element(b"abcde"));
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(header.len()));
        let (request, binary) = split_body(&headers, &Bytes::from(body)).unwrap();
        let images = input_images(&request, &binary).unwrap();
        assert_eq!(images, vec![Bytes::from_static(b"abcde")]);
        headers.insert(HEADER_LENGTH, HeaderValue::from(100_000));
        assert!(split_body(&headers, &Bytes::from_static(b"{}")).is_err());
    }

    #[test]
    fn a_shape_that_disagrees_with_the_data_is_a_400() {
        let request: InferRequest = serde_json::from_value(json!({
            "inputs": [{ "name": "image", "shape": [2], "datatype": "BYTES", "data": ["aGVsbG8="] }]
        }))
        .unwrap();
        let error = input_images(&request, &Bytes::new()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("shape [2] (2 images) but 1 were sent"), "{error}");
        let request: InferRequest = serde_json::from_value(json!({
            "inputs": [{ "name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": [0.0] }]
        }))
        .unwrap();
        assert!(input_images(&request, &Bytes::new()).unwrap_err().to_string().contains("BYTES tensor"));
    }

    #[test]
    fn outputs_default_to_all_and_unknown_names_are_refused() {
        let request: InferRequest = serde_json::from_value(json!({ "inputs": [] })).unwrap();
        let names: Vec<&str> = requested_outputs(&request).unwrap().iter().map(|o| o.name).collect();
        assert_eq!(names, OUTPUTS);
        let request: InferRequest =
            serde_json::from_value(json!({ "inputs": [], "outputs": [{ "name": "logits" }] })).unwrap();
        assert!(requested_outputs(&request).is_err());
    }
}
