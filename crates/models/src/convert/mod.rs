//! Converting full-precision checkpoints that ship in Hugging Face formats
//! into GGUF, so llama.cpp can run them (and the quantization workbench can
//! quantize them).
//!
//! - [`gguf`]: the file writer.
//! - [`bert`]: BERT sentence encoders (all-MiniLM-L6-v2).

pub mod bert;
pub mod gguf;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why a conversion failed. Nothing is left at the destination when it does.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The checkpoint is not what the converter handles.
    #[error("cannot convert {model}: {reason}")]
    Invalid {
        /// The model.
        model: String,
        /// What is wrong.
        reason: String,
    },
}

pub use gguf::Storage;

/// Converts the BERT checkpoint in `dir` into the GGUF file `out` at `precision` (matrices; norms
/// and biases stay F32), written whole, then renamed into place.
pub fn bert_to_gguf(dir: &Path, name: &str, out: &Path, precision: Storage) -> Result<(), ConvertError> {
    let (metadata, tensors) = bert::convert(dir, name, precision)?;
    let partial = out.with_extension("gguf.partial");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConvertError::Io { path, source }
    };
    let result = (|| {
        let file = std::fs::File::create(&partial).map_err(io(&partial))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        gguf::write(&mut writer, &metadata, &tensors).map_err(io(&partial))?;
        writer.flush().map_err(io(&partial))?;
        writer.get_ref().sync_all().map_err(io(&partial))?;
        std::fs::rename(&partial, out).map_err(io(out))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
