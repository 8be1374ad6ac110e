//! What a GGUF file holds, read without llama.cpp: architecture, name, file
//! type, and the tensors' types and sizes (so parameter count and real bits
//! per weight).
//!
//! The reader trusts nothing in the file: every length is checked against the
//! bytes that remain before anything is allocated, so a corrupt or hostile
//! file gives an error, never a panic or a huge allocation (a fuzz target
//! holds it to that).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// Dimensions a ggml tensor may have.
const MAX_DIMS: u32 = 4;

/// Why a file's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufInfoError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The bytes are not a well-formed GGUF header.
    #[error("{path} is not a readable GGUF file: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong, and where.
        reason: String,
    },
}

/// The metadata and tensor summary of a GGUF file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufInfo {
    /// The format version (2 or 3).
    pub version: u32,
    /// `general.architecture` (`llama`, `gemma3`, `qwen2`, `bert`…).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub file_type: Option<u32>,
    /// Metadata entries.
    pub metadata_count: u64,
    /// Tensors.
    pub tensor_count: u64,
    /// Parameters (elements of every tensor).
    pub n_params: u64,
    /// Parameters per ggml tensor type.
    pub params_by_type: BTreeMap<u32, u64>,
    /// `ARCH.embedding_length`: the hidden size, which is an encoder's vector length.
    pub embedding_length: Option<u32>,
    /// `ARCH.context_length`: the longest input the model was trained on.
    pub context_length: Option<u32>,
    /// `ARCH.block_count`: transformer layers, each with its own KV cache.
    pub block_count: Option<u32>,
    /// `ARCH.attention.head_count`: query heads.
    pub head_count: Option<u32>,
    /// `ARCH.attention.head_count_kv`: key/value heads (fewer than query heads under
    /// grouped-query attention); `None` when absent or given per layer.
    pub head_count_kv: Option<u32>,
    /// `ARCH.attention.key_length`: the size of one key head, when not hidden size / heads.
    pub key_length: Option<u32>,
    /// `ARCH.attention.value_length`: the size of one value head, when not hidden size / heads.
    pub value_length: Option<u32>,
    /// Tokens in the vocabulary (`tokenizer.ggml.tokens`' length).
    pub vocab_size: Option<u64>,
}

impl GgufInfo {
    /// Reads the header, metadata and tensor descriptions of the file at `path` (not the weights).
    pub fn read(path: &Path) -> Result<Self, GgufInfoError> {
        let io_error = |source| GgufInfoError::Io { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        parse(io::BufReader::new(file), len).map_err(|error| match error {
            ParseError::Io(source) => io_error(source),
            ParseError::Malformed(reason) => GgufInfoError::Malformed { path: path.display().to_string(), reason },
        })
    }

    /// Parses a GGUF file held in memory (for tests and fuzzing).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, String> {
        parse(bytes, bytes.len() as u64).map_err(|error| match error {
            ParseError::Io(error) => error.to_string(),
            ParseError::Malformed(reason) => reason,
        })
    }

    /// Whether this is a sentence-embedding encoder rather than a text generator.
    pub fn is_encoder(&self) -> bool {
        matches!(
            self.architecture.as_deref(),
            Some(
                "bert" | "nomic-bert" | "nomic-bert-moe" | "jina-bert-v2" | "jina-bert-v3" | "modern-bert" | "neo-bert"
            )
        )
    }

    /// The file's precision as llama.cpp names it (`Q8_0`, `Q4_K_M`, `F16`), else its dominant tensor type.
    pub fn precision(&self) -> String {
        if let Some(name) = self.file_type.and_then(file_type_name) {
            return name.to_owned();
        }
        self.params_by_type
            .iter()
            .max_by_key(|(_, params)| **params)
            .map_or_else(|| "unknown".to_owned(), |(kind, _)| tensor_type_name(*kind).to_owned())
    }

    /// Bits per parameter of a file of `file_bytes` (metadata included, as on disk).
    pub fn bits_per_weight(&self, file_bytes: u64) -> f64 {
        if self.n_params == 0 {
            return 0.0;
        }
        file_bytes as f64 * 8.0 / self.n_params as f64
    }
}

/// llama.cpp's name for a `general.file_type` value.
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// ggml's name for a tensor type.
pub fn tensor_type_name(kind: u32) -> &'static str {
    match kind {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        30 => "BF16",
        _ => "other",
    }
}

enum ParseError {
    Io(io::Error),
    Malformed(String),
}

/// A reader that knows how many bytes remain, so no length in the file can ask for more.
struct Cursor<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Cursor<R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, ParseError> {
        if n > self.remaining {
            return Err(ParseError::Malformed(format!("{what} claims {n} bytes but only {} remain", self.remaining)));
        }
        let mut buffer = vec![0; n as usize];
        self.inner.read_exact(&mut buffer).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => ParseError::Malformed(format!("the file ends inside {what}")),
            _ => ParseError::Io(error),
        })?;
        self.remaining -= n;
        Ok(buffer)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ParseError> {
        let bytes = self.bytes(N as u64, what)?;
        let mut out = [0; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, ParseError> {
        let len = self.u64(what)?;
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|_| ParseError::Malformed(format!("{what} is not UTF-8")))
    }

    /// Skips `n` bytes without keeping them.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), ParseError> {
        if n > self.remaining {
            return Err(ParseError::Malformed(format!("{what} claims {n} bytes but only {} remain", self.remaining)));
        }
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(ParseError::Io)?;
        if copied < n {
            return Err(ParseError::Malformed(format!("the file ends inside {what}")));
        }
        self.remaining -= n;
        Ok(())
    }
}

/// A metadata value, as far as the reader keeps it.
enum Value {
    U32(u32),
    Str(String),
    /// An array, by its length.
    Array(u64),
    Other,
}

/// Bytes of one element of a fixed-size metadata type, `None` for strings and arrays.
fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn value<R: Read>(cursor: &mut Cursor<R>, kind: u32, key: &str, depth: u32) -> Result<Value, ParseError> {
    match kind {
        4 => Ok(Value::U32(cursor.u32(key)?)),
        8 => Ok(Value::Str(cursor.string(key)?)),
        9 => {
            if depth > 0 {
                return Err(ParseError::Malformed(format!("{key} nests arrays, which GGUF does not allow")));
            }
            let element = cursor.u32(key)?;
            let count = cursor.u64(key)?;
            match fixed_size(element) {
                Some(size) => cursor.skip(count.saturating_mul(size), key)?,
                None => {
                    // Each element takes at least 8 bytes (a string's length), so a count beyond that is a lie.
                    if count > cursor.remaining / 8 {
                        return Err(ParseError::Malformed(format!(
                            "{key} claims {count} elements, more than the file holds"
                        )));
                    }
                    for _ in 0..count {
                        value(cursor, element, key, depth + 1)?;
                    }
                }
            }
            Ok(Value::Array(count))
        }
        _ => match fixed_size(kind) {
            Some(size) => cursor.skip(size, key).map(|()| Value::Other),
            None => Err(ParseError::Malformed(format!("{key} has unknown value type {kind}"))),
        },
    }
}

fn parse<R: Read>(reader: R, len: u64) -> Result<GgufInfo, ParseError> {
    let mut cursor = Cursor { inner: reader, remaining: len };
    let magic = cursor.array::<4>("the magic")?;
    if &magic != b"GGUF" {
        return Err(ParseError::Malformed(format!("it starts with {:?}, not GGUF", String::from_utf8_lossy(&magic))));
    }
    let version = cursor.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(ParseError::Malformed(format!("version {version} (versions 2 and 3 are read)")));
    }
    let tensor_count = cursor.u64("the tensor count")?;
    let metadata_count = cursor.u64("the metadata count")?;
    // A key takes at least 12 bytes (length and type); a tensor description at least 24.
    if metadata_count > cursor.remaining / 12 || tensor_count > cursor.remaining / 24 {
        return Err(ParseError::Malformed(format!(
            "it claims {metadata_count} metadata entries and {tensor_count} tensors, more than the file holds"
        )));
    }
    let mut info = GgufInfo { version, metadata_count, tensor_count, ..GgufInfo::default() };
    for _ in 0..metadata_count {
        let key = cursor.string("a metadata key")?;
        let kind = cursor.u32(&key)?;
        match (key.as_str(), value(&mut cursor, kind, &key, 0)?) {
            ("general.architecture", Value::Str(text)) => info.architecture = Some(text),
            ("general.name", Value::Str(text)) => info.name = Some(text),
            ("general.file_type", Value::U32(number)) => info.file_type = Some(number),
            (key, Value::U32(number)) if key.ends_with(".embedding_length") => info.embedding_length = Some(number),
            (key, Value::U32(number)) if key.ends_with(".context_length") => info.context_length = Some(number),
            (key, Value::U32(number)) if key.ends_with(".block_count") => info.block_count = Some(number),
            (key, Value::U32(number)) if key.ends_with(".attention.head_count") => info.head_count = Some(number),
            (key, Value::U32(number)) if key.ends_with(".attention.head_count_kv") => info.head_count_kv = Some(number),
            (key, Value::U32(number)) if key.ends_with(".attention.key_length") => info.key_length = Some(number),
            (key, Value::U32(number)) if key.ends_with(".attention.value_length") => info.value_length = Some(number),
            ("tokenizer.ggml.tokens", Value::Array(count)) => info.vocab_size = Some(count),
            _ => {}
        }
    }
    for _ in 0..tensor_count {
        let name = cursor.string("a tensor name")?;
        let n_dims = cursor.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(ParseError::Malformed(format!("tensor {name} has {n_dims} dimensions")));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            elements = elements
                .checked_mul(cursor.u64(&name)?)
                .ok_or_else(|| ParseError::Malformed(format!("tensor {name} is impossibly large")))?;
        }
        let kind = cursor.u32(&name)?;
        let _offset = cursor.u64(&name)?;
        info.n_params = info.n_params.saturating_add(elements);
        let entry = info.params_by_type.entry(kind).or_default();
        *entry = entry.saturating_add(elements);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::gguf::{write, Storage, Tensor, Value as WriteValue};

    fn small_file() -> Vec<u8> {
        let metadata = [
            ("general.architecture", WriteValue::Str("bert".into())),
            ("general.name", WriteValue::Str("tiny".into())),
            ("general.file_type", WriteValue::U32(1)),
            ("bert.embedding_length", WriteValue::U32(384)),
            ("bert.context_length", WriteValue::U32(512)),
            ("bert.block_count", WriteValue::U32(6)),
            ("bert.attention.head_count", WriteValue::U32(12)),
            ("tokenizer.ggml.tokens", WriteValue::StrArray(vec!["[PAD]".into(), "a".into()])),
        ]
        .map(|(key, value)| (key.to_owned(), value));
        let tensors = [
            Tensor { name: "a.weight".into(), dims: vec![4, 2], data: vec![0.5; 8], storage: Storage::F16 },
            Tensor { name: "a.bias".into(), dims: vec![4], data: vec![0.0; 4], storage: Storage::F32 },
        ];
        let mut bytes = Vec::new();
        write(&mut bytes, &metadata, &tensors).unwrap();
        bytes
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let info = GgufInfo::parse_bytes(&small_file()).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("bert"));
        assert_eq!(info.name.as_deref(), Some("tiny"));
        assert_eq!((info.embedding_length, info.context_length), (Some(384), Some(512)));
        assert_eq!((info.block_count, info.head_count, info.head_count_kv), (Some(6), Some(12), None));
        assert_eq!(info.vocab_size, Some(2));
        assert_eq!(info.precision(), "F16");
        assert!(info.is_encoder());
        assert_eq!((info.tensor_count, info.n_params), (2, 12));
        assert_eq!(info.params_by_type, BTreeMap::from([(0, 4), (1, 8)]));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = small_file();
        for cut in 0..bytes.len() {
            // Truncated inside the header or metadata fails; inside the data section it may not.
            let _ = GgufInfo::parse_bytes(&bytes[..cut]);
        }
        assert!(GgufInfo::parse_bytes(&bytes[..40]).is_err());
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocating() {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend(u64::MAX.to_le_bytes()); // the key's length
        bytes.extend([0; 16]);
        let error = GgufInfo::parse_bytes(&bytes).unwrap_err();
        assert!(error.contains("claims"), "{error}");
    }

    #[test]
    fn not_gguf_says_what_it_starts_with() {
        let error = GgufInfo::parse_bytes(b"PK\x03\x04 a zip file").unwrap_err();
        assert!(error.contains("not GGUF"), "{error}");
    }
}
