//! Vision models on the CPU: the runtime and the converted backbone.
//!
//! edgeway inspects images with small convolutional networks that ONNX
//! Runtime runs on the CPU. This crate is the only one that links ONNX Runtime
//! (through the `ort` crate, loading the library the `onnxruntime` wheel ships),
//! as `crates/engine` is the only one that links llama.cpp. The backbone,
//! EfficientNet-Lite0, ships as a legacy PyTorch checkpoint; it is converted
//! to ONNX here, in Rust, so no Python or torch is needed at run time.
//!
//! # Layout
//! - [`torch_legacy`]: reads legacy (non-zip) `.pth` state dicts, strides honoured.
//! - [`onnx`]: the subset of `onnx.proto` edgeway writes, and a small graph builder.
//! - [`lite0`]: an EfficientNet-Lite0 state dict to an ONNX graph (BN folded) with logits and feature maps.
//! - [`preprocess`]: image files to the network's input tensor.
//! - [`quantize`]: static INT8 (QDQ, per-channel) backbones by ONNX Runtime's own tool, run offline.
//! - [`runtime`]: ONNX Runtime sessions (the one module that uses `ort`).
//! - [`patchcore`]: the PatchCore-style anomaly detector (memory bank, scores, maps, model files).
//! - [`coreset`]: greedy k-center coreset selection with a random projection.
//! - [`anomaly_map`]: bilinear resizing, Gaussian smoothing, heat-map overlays.
//! - [`attack`]: black-box evasion (the L∞ Square Attack on the score alone) and input defences.
//! - [`metrics`]: AUROC and the confusion at a threshold.
//! - [`anomalib`]: models exported by anomalib (ONNX with `pred_score` and `anomaly_map`), served as they are.
//! - [`service`]: a fitted model behind `edgeway_core::inspect::Inspector`, micro-batched by one worker thread, for the server.
//! - [`inspection`]: fitting from a folder of good images and evaluating on an MVTec-AD-layout folder.
//! - [`compare`]: backbones (FP32, INT8) side by side under one fitted detector.
//!
//! Every error type is a `thiserror` enum whose message already includes its
//! cause, so a cause is a plain field, not a `source`: the binary prints an
//! error's source chain, which would repeat it.

pub mod anomalib;
pub mod anomaly_map;
pub mod attack;
pub mod compare;
pub mod coreset;
pub mod inspection;
pub mod lite0;
pub mod metrics;
pub mod onnx;
pub mod patchcore;
pub mod preprocess;
pub mod quantize;
pub mod runtime;
pub mod service;
pub mod torch_legacy;

/// An 8-bit RGB image, the type every image here is decoded to (re-exported for callers).
pub use image::{Rgb, RgbImage};
