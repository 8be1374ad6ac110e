//! INT8 backbones: static, per-channel QDQ quantization by ONNX Runtime's own
//! tool (`onnxruntime.quantization`, from PyPI), run once, offline.
//!
//! Calibration images are preprocessed here, in Rust, exactly as inspection
//! preprocesses them, and handed to the tool as one float32 array; the tool's
//! script ships inside the binary ([`SCRIPT`]). The INT8 model records the
//! FP32 model's SHA-256 ([`SOURCE_SHA_KEY`]), so an inspection model fitted on
//! the FP32 backbone's features runs on it unchanged. Why not quantize in Rust:
//! ONNX Runtime's tool is what the runtime's fusions (QDQ → QLinearConv) are
//! written against, and it is the reference users compare with.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array4;
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::onnx::ModelProto;

/// The quantization script, run with `python -c`.
pub const SCRIPT: &str = include_str!("../python/quantize_qdq.py");
/// The metadata key under which an INT8 model records its FP32 model's SHA-256.
pub const SOURCE_SHA_KEY: &str = "edgeway.source_sha256";
/// The Python packages the script needs, pinned with the runtime's library.
pub const PYTHON_PACKAGES: &str = "onnx==1.23.2 onnxruntime==1.31.1";

/// Why quantization failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The Python interpreter could not be started.
    #[error(
        "cannot run {python}: {error}; quantization runs ONNX Runtime's Python tool: run scripts/vision-tools.sh \
         (or pip install {PYTHON_PACKAGES}) and pass its python with --python"
    )]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The tool ran and failed.
    #[error(
        "ONNX Runtime's quantizer failed ({status}); it needs {PYTHON_PACKAGES} (scripts/vision-tools.sh installs \
         them into .venv):\n{stderr}"
    )]
    Failed {
        /// The exit status.
        status: String,
        /// The end of what it printed.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// Nothing to calibrate on.
    #[error("no calibration images: give a folder of PNG or JPEG images like the ones to inspect")]
    NoImages,
}

/// What quantization produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// The FP32 model's size in bytes.
    pub fp32_bytes: u64,
    /// The INT8 model's size in bytes.
    pub int8_bytes: u64,
}

/// The Python to run the tool with: `explicit`, else `EDGEWAY_PYTHON`, else the
/// repository's `.venv` (where scripts/vision-tools.sh installs the packages), else `python3`.
pub fn locate_python(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = std::env::var_os("EDGEWAY_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(".venv/bin/python");
    if venv.is_file() {
        return venv.to_owned();
    }
    PathBuf::from("python3")
}

/// Quantizes the FP32 model at `fp32` to `out` with `calibration` (`[N, 3, S, S]`, preprocessed).
/// `out` is written whole or not at all.
pub fn quantize_qdq(
    python: &Path,
    fp32: &Path,
    calibration: &Array4<f32>,
    out: &Path,
) -> Result<Quantized, QuantizeError> {
    let (n, _, size, _) = calibration.dim();
    if n == 0 {
        return Err(QuantizeError::NoImages);
    }
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |error: std::io::Error| QuantizeError::Io { action, path, error: error.to_string() }
    };
    let bytes = std::fs::read(fp32).map_err(io("read", fp32))?;
    let sha = hex_sha256(&bytes);
    let with_suffix = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (calibration_file, partial) = (with_suffix(".calibration.f32"), with_suffix(".partial"));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let raw: Vec<u8> = calibration.as_standard_layout().iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&calibration_file, raw).map_err(io("write", &calibration_file))?;
    let output = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(fp32)
        .arg(&calibration_file)
        .arg(n.to_string())
        .arg(size.to_string())
        .arg(&partial)
        .arg(&sha)
        .output();
    let _ = std::fs::remove_file(&calibration_file);
    let output = output.map_err(|e| QuantizeError::Spawn { python: python.to_owned(), error: e.to_string() })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        return Err(QuantizeError::Failed {
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    std::fs::rename(&partial, out).map_err(io("write", out))?;
    let int8_bytes = std::fs::metadata(out).map_err(io("read", out))?.len();
    Ok(Quantized { fp32_bytes: bytes.len() as u64, int8_bytes })
}

/// The FP32 model an INT8 model was made from (its SHA-256), if it says.
pub fn source_sha256(bytes: &[u8]) -> Option<String> {
    let model = ModelProto::decode(bytes).ok()?;
    model.metadata_props.into_iter().find(|entry| entry.key == SOURCE_SHA_KEY).map(|entry| entry.value)
}

/// How closely one output of the INT8 model follows the FP32 model's, image by image.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputAgreement {
    /// The output's name.
    pub name: String,
    /// Mean cosine similarity over the images.
    pub mean_cosine: f64,
    /// The lowest.
    pub min_cosine: f64,
}

/// Runs `batch` through both models and compares every output they share, image by image.
pub fn compare_outputs(
    fp32: &mut crate::runtime::VisionSession,
    int8: &mut crate::runtime::VisionSession,
    batch: &Array4<f32>,
) -> Result<Vec<OutputAgreement>, crate::runtime::RuntimeError> {
    let (reference, quantized) = (fp32.run(batch)?, int8.run(batch)?);
    let mut agreements = Vec::new();
    for (name, expected) in &reference.values {
        let Some(actual) = quantized.get(name).filter(|a| a.shape() == expected.shape()) else { continue };
        let cosines: Vec<f64> = expected
            .outer_iter()
            .zip(actual.outer_iter())
            .map(|(e, a)| {
                let (e, a) = (e.iter().copied().collect::<Vec<f32>>(), a.iter().copied().collect::<Vec<f32>>());
                cosine(&e, &a)
            })
            .collect();
        if cosines.is_empty() {
            continue;
        }
        agreements.push(OutputAgreement {
            name: name.clone(),
            mean_cosine: cosines.iter().sum::<f64>() / cosines.len() as f64,
            min_cosine: cosines.iter().copied().fold(f64::INFINITY, f64::min),
        });
    }
    Ok(agreements)
}

/// SHA-256 as lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Cosine similarity of two equally long vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += f64::from(x) * f64::from(y);
        na += f64::from(x) * f64::from(x);
        nb += f64::from(y) * f64::from(y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::StringStringEntryProto;

    #[test]
    fn the_source_hash_is_read_from_the_metadata() {
        let model = ModelProto {
            metadata_props: vec![StringStringEntryProto { key: SOURCE_SHA_KEY.into(), value: "abc".into() }],
            ..ModelProto::default()
        };
        assert_eq!(source_sha256(&model.encode_to_vec()).as_deref(), Some("abc"));
        assert_eq!(source_sha256(&ModelProto::default().encode_to_vec()), None);
        assert_eq!(source_sha256(b"\xff\xff not protobuf"), None);
    }

    #[test]
    fn a_missing_interpreter_is_a_clear_error_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("edgeway-quantize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fp32 = dir.join("fp32.onnx");
        std::fs::write(&fp32, b"model").unwrap();
        let out = dir.join("int8.onnx");
        let error =
            quantize_qdq(Path::new("/nonexistent/python"), &fp32, &Array4::zeros((1, 3, 4, 4)), &out).unwrap_err();
        assert!(error.to_string().contains("scripts/vision-tools.sh"), "{error}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the input is left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
