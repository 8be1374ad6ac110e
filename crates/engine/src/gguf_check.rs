//! A quick look at a model file before llama.cpp opens it.
//!
//! llama.cpp reports a bad file as a bare null pointer. Checking the header
//! ourselves turns the common mistakes (wrong path, a safetensors or partial
//! download, an empty file) into messages that say what is wrong.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// GGUF files start with these four bytes.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// Magic, version, tensor count and metadata count.
const HEADER_LEN: usize = 4 + 4 + 8 + 8;

/// Why a file is not a loadable GGUF model.
#[derive(Debug, thiserror::Error)]
pub enum GgufCheckError {
    /// The file could not be opened or read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is shorter than a GGUF header.
    #[error("model file {path} is truncated ({len} bytes); it may be a partial download")]
    Truncated {
        /// The file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// The file does not start with the GGUF magic.
    #[error("{path} is not a GGUF model (it starts with {found:?}); edgeway serves llama.cpp GGUF files, convert other formats first")]
    NotGguf {
        /// The file.
        path: String,
        /// The first bytes found, escaped.
        found: String,
    },
    /// The GGUF version is one llama.cpp does not read.
    #[error(
        "{path} is GGUF version {version}, which this build of llama.cpp does not read (it reads versions 2 and 3)"
    )]
    UnsupportedVersion {
        /// The file.
        path: String,
        /// The version in the header.
        version: u32,
    },
    /// The header claims no tensors.
    #[error("{path} holds no tensors; it is not a model")]
    NoTensors {
        /// The file.
        path: String,
    },
}

/// Checks that `path` looks like a GGUF model llama.cpp can read.
pub fn check_gguf_header(path: &Path) -> Result<(), GgufCheckError> {
    let shown = path.display().to_string();
    let io_error = |source| GgufCheckError::Io { path: shown.clone(), source };
    let mut file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let mut header = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Err(GgufCheckError::Truncated { path: shown, len });
    }
    file.read_exact(&mut header).map_err(io_error)?;
    if &header[..4] != GGUF_MAGIC {
        let found = header[..4].escape_ascii().to_string();
        return Err(GgufCheckError::NotGguf { path: shown, found });
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(2..=3).contains(&version) {
        return Err(GgufCheckError::UnsupportedVersion { path: shown, version });
    }
    let n_tensors = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    if n_tensors == 0 {
        return Err(GgufCheckError::NoTensors { path: shown });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("edgeway-gguf-check-{}-{name}", std::process::id()));
        File::create(&path).and_then(|mut f| f.write_all(bytes)).expect("write temp file");
        path
    }

    #[test]
    fn rejects_missing_empty_foreign_and_odd_versions() {
        let missing = Path::new("/nonexistent/model.gguf");
        assert!(matches!(check_gguf_header(missing), Err(GgufCheckError::Io { .. })));

        let empty = write_temp("empty", b"");
        assert!(matches!(check_gguf_header(&empty), Err(GgufCheckError::Truncated { len: 0, .. })));

        let json = write_temp("json", b"{\"not\": \"a model at all, just json text\"}");
        let error = check_gguf_header(&json).unwrap_err();
        assert!(error.to_string().contains("not a GGUF model"), "{error}");

        let mut v9 = b"GGUF".to_vec();
        v9.extend_from_slice(&9u32.to_le_bytes());
        v9.extend_from_slice(&[1u8; 16]);
        let v9 = write_temp("v9", &v9);
        assert!(matches!(check_gguf_header(&v9), Err(GgufCheckError::UnsupportedVersion { version: 9, .. })));

        let mut ok = b"GGUF".to_vec();
        ok.extend_from_slice(&3u32.to_le_bytes());
        ok.extend_from_slice(&1u64.to_le_bytes());
        ok.extend_from_slice(&0u64.to_le_bytes());
        let ok = write_temp("ok", &ok);
        assert!(check_gguf_header(&ok).is_ok());

        for path in [empty, json, v9, ok] {
            let _ = std::fs::remove_file(path);
        }
    }
}
