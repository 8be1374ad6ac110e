//! Quantizing a GGUF with llama.cpp's own quantizer (`llama_model_quantize`).
//!
//! The output is written to `OUT.partial` and renamed into place only when
//! llama.cpp reports success, so a failure or a kill never leaves a
//! half-written model where a model is expected.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::gguf_check::{check_gguf_header, GgufCheckError};

/// A quantization type: its name (llama.cpp's), llama.cpp's file-type id, and bits per weight (roughly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantType {
    /// The name on the command line, e.g. `q4_k_m`.
    pub name: &'static str,
    /// llama.cpp's `llama_ftype`.
    ftype: u32,
    /// Approximate bits per weight, for size estimates and progress.
    pub bits_per_weight: f32,
    /// One line for `--help` and errors.
    pub description: &'static str,
}

/// The types `edgeway quantize` offers, highest precision first.
pub const QUANT_TYPES: &[QuantType] = &[
    QuantType { name: "f16", ftype: 1, bits_per_weight: 16.0, description: "16-bit floats" },
    QuantType { name: "q8_0", ftype: 7, bits_per_weight: 8.5, description: "8-bit, near lossless" },
    QuantType { name: "q6_k", ftype: 18, bits_per_weight: 6.56, description: "6-bit k-quant" },
    QuantType { name: "q5_k_m", ftype: 17, bits_per_weight: 5.67, description: "5-bit k-quant, medium" },
    QuantType { name: "q5_0", ftype: 8, bits_per_weight: 5.5, description: "5-bit, legacy" },
    QuantType {
        name: "q4_k_m",
        ftype: 15,
        bits_per_weight: 4.89,
        description: "4-bit k-quant, medium (a common default)",
    },
    QuantType { name: "q4_0", ftype: 2, bits_per_weight: 4.5, description: "4-bit, legacy" },
    QuantType { name: "q4_1", ftype: 3, bits_per_weight: 5.0, description: "4-bit with offsets, legacy" },
    QuantType { name: "q3_k_m", ftype: 12, bits_per_weight: 3.91, description: "3-bit k-quant, medium" },
    QuantType { name: "q2_k", ftype: 10, bits_per_weight: 3.35, description: "2-bit k-quant (large quality loss)" },
];

/// The type called `name` (any case).
pub fn quant_type(name: &str) -> Option<&'static QuantType> {
    QUANT_TYPES.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Why quantizing failed. The output path is untouched when it does.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// Not a type edgeway knows.
    #[error("unknown quantization type '{0}'; choose one of {types}", types = QUANT_TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "))]
    UnknownType(String),
    /// The input is not a GGUF model.
    #[error(transparent)]
    BadInput(#[from] GgufCheckError),
    /// Input and output are the same file.
    #[error("the output {0} is the input; write the quantized model to another file")]
    SameFile(PathBuf),
    /// The output exists and overwriting was not asked for.
    #[error("{0} already exists; remove it or pass --force")]
    Exists(PathBuf),
    /// llama.cpp refused (an unsupported architecture or tensor layout; its log says which).
    #[error(
        "llama.cpp could not quantize {input} to {kind} (see the log above for the tensor or architecture it refused)"
    )]
    Failed {
        /// The input.
        input: PathBuf,
        /// The type asked for.
        kind: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What a quantization produced.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeReport {
    /// Input size in bytes.
    pub input_bytes: u64,
    /// Output size in bytes.
    pub output_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Quantizes `input` to `output` as `kind`, calling `progress(bytes written so far)` while it runs.
pub fn quantize(
    input: &Path,
    output: &Path,
    kind: &str,
    threads: u32,
    overwrite: bool,
    progress: &dyn Fn(u64),
) -> Result<QuantizeReport, QuantizeError> {
    let kind_info = quant_type(kind).ok_or_else(|| QuantizeError::UnknownType(kind.to_owned()))?;
    check_gguf_header(input)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QuantizeError::Io { path, source }
    };
    let input_bytes = std::fs::metadata(input).map_err(io(input))?.len();
    if std::fs::canonicalize(output).ok() == std::fs::canonicalize(input).ok() && output.exists() {
        return Err(QuantizeError::SameFile(output.to_path_buf()));
    }
    if output.exists() && !overwrite {
        return Err(QuantizeError::Exists(output.to_path_buf()));
    }
    crate::llama_backend().map_err(|_| QuantizeError::Failed { input: input.into(), kind: kind.into() })?;
    let partial = output.with_extension("gguf.partial");
    let c = |path: &Path| {
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| QuantizeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })
    };
    let (input_c, partial_c) = (c(input)?, c(&partial)?);
    let ftype = kind_info.ftype;
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        // SAFETY: both paths are valid NUL-terminated strings that outlive the call; the
        // params struct is llama.cpp's own default with two plain fields changed.
        unsafe {
            let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
            params.nthread = threads as i32;
            params.ftype = ftype as llama_cpp_sys_2::llama_ftype;
            params.allow_requantize = true;
            llama_cpp_sys_2::llama_model_quantize(input_c.as_ptr(), partial_c.as_ptr(), &params)
        }
    });
    while !worker.is_finished() {
        progress(std::fs::metadata(&partial).map_or(0, |m| m.len()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = worker.join().unwrap_or(1);
    if status != 0 || !partial.is_file() {
        let _ = std::fs::remove_file(&partial);
        return Err(QuantizeError::Failed { input: input.to_path_buf(), kind: kind_info.name.into() });
    }
    std::fs::rename(&partial, output).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        QuantizeError::Io { path: output.to_path_buf(), source }
    })?;
    let output_bytes = std::fs::metadata(output).map_err(io(output))?.len();
    Ok(QuantizeReport { input_bytes, output_bytes, seconds: started.elapsed().as_secs_f64() })
}

/// A rough size for `input` quantized as `kind`, for a progress bar.
pub fn estimated_size(input_bytes: u64, input_bits_per_weight: f32, kind: &QuantType) -> u64 {
    (input_bytes as f64 * f64::from(kind.bits_per_weight) / f64::from(input_bits_per_weight.max(1.0))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_found_by_name_and_unknown_ones_listed() {
        assert_eq!(quant_type("Q8_0").unwrap().name, "q8_0");
        let error = quantize(Path::new("/nonexistent.gguf"), Path::new("/tmp/x.gguf"), "q9_9", 1, false, &|_| {});
        let message = error.unwrap_err().to_string();
        assert!(message.contains("q9_9") && message.contains("q4_k_m"), "{message}");
    }

    #[test]
    fn a_corrupt_input_is_refused_and_leaves_no_output() {
        let dir = std::env::temp_dir().join(format!("edgeway-quantize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("broken.gguf");
        std::fs::write(&input, b"GGUF\x03\x00\x00\x00garbage").unwrap();
        let output = dir.join("out.gguf");
        let error = quantize(&input, &output, "q8_0", 1, false, &|_| {}).unwrap_err();
        assert!(matches!(error, QuantizeError::BadInput(_) | QuantizeError::Failed { .. }), "{error}");
        assert!(!output.exists() && !dir.join("out.gguf.partial").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
