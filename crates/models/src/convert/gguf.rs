//! A minimal GGUF (version 3) writer: metadata and F32 tensors, which is all
//! a converted model needs; quantization happens later, in llama.cpp.
//!
//! Layout: magic, version, tensor count, metadata count, the metadata, the
//! tensor descriptions (name, dimensions fastest-first, type, offset), then
//! the tensor data, each tensor aligned to [`ALIGNMENT`] bytes.

use std::io::{self, Write};

/// Alignment of the data section and of each tensor in it (GGUF's default).
pub const ALIGNMENT: u64 = 32;
const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
/// How a tensor's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit floats (ggml type 0).
    F32,
    /// 16-bit floats (ggml type 1).
    F16,
}

impl Storage {
    fn ggml_type(self) -> u32 {
        match self {
            Storage::F32 => 0,
            Storage::F16 => 1,
        }
    }

    fn bytes_per_value(self) -> u64 {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// A boolean.
    Bool(bool),
    /// UTF-8 text.
    Str(String),
    /// An array of strings.
    StrArray(Vec<String>),
    /// An array of `i32`.
    I32Array(Vec<i32>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::StrArray(_) | Value::I32Array(_) => 9,
        }
    }
}

/// Metadata entries in file order: key and value.
pub type Metadata = Vec<(String, Value)>;

/// A tensor to write: its GGUF name, its dimensions fastest-first (ggml's
/// `ne`, the reverse of PyTorch's shape), and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, fastest-varying first.
    pub dims: Vec<u64>,
    /// Row-major values (`product(dims)` of them).
    pub data: Vec<f32>,
    /// How they are written.
    pub storage: Storage,
}

/// Writes a whole GGUF file.
pub fn write(out: &mut impl Write, metadata: &[(String, Value)], tensors: &[Tensor]) -> io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&(tensors.len() as u64).to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;
    let mut written = 4 + 4 + 8 + 8;
    for (key, value) in metadata {
        written += write_string(out, key)?;
        out.write_all(&value.type_id().to_le_bytes())?;
        written += 4 + write_value(out, value)?;
    }
    let mut offset = 0u64;
    for tensor in tensors {
        let expected: u64 = tensor.dims.iter().product();
        if expected != tensor.data.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {} has {} values for dimensions {:?}", tensor.name, tensor.data.len(), tensor.dims),
            ));
        }
        written += write_string(out, &tensor.name)?;
        out.write_all(&(tensor.dims.len() as u32).to_le_bytes())?;
        for dim in &tensor.dims {
            out.write_all(&dim.to_le_bytes())?;
        }
        out.write_all(&tensor.storage.ggml_type().to_le_bytes())?;
        out.write_all(&offset.to_le_bytes())?;
        written += 4 + 8 * tensor.dims.len() as u64 + 4 + 8;
        offset = align(offset + tensor.storage.bytes_per_value() * tensor.data.len() as u64);
    }
    pad(out, align(written) - written)?;
    for tensor in tensors {
        let bytes: Vec<u8> = match tensor.storage {
            Storage::F32 => tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Storage::F16 => tensor.data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        };
        out.write_all(&bytes)?;
        let size = bytes.len() as u64;
        pad(out, align(size) - size)?;
    }
    Ok(())
}

fn align(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn pad(out: &mut impl Write, n: u64) -> io::Result<()> {
    out.write_all(&vec![0u8; n as usize])
}

fn write_string(out: &mut impl Write, text: &str) -> io::Result<u64> {
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    Ok(8 + text.len() as u64)
}

fn write_value(out: &mut impl Write, value: &Value) -> io::Result<u64> {
    Ok(match value {
        Value::U32(v) => {
            out.write_all(&v.to_le_bytes())?;
            4
        }
        Value::I32(v) => {
            out.write_all(&v.to_le_bytes())?;
            4
        }
        Value::F32(v) => {
            out.write_all(&v.to_le_bytes())?;
            4
        }
        Value::Bool(v) => {
            out.write_all(&[u8::from(*v)])?;
            1
        }
        Value::Str(text) => write_string(out, text)?,
        Value::StrArray(items) => {
            out.write_all(&8u32.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            let mut n = 12;
            for item in items {
                n += write_string(out, item)?;
            }
            n
        }
        Value::I32Array(items) => {
            out.write_all(&5u32.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            for item in items {
                out.write_all(&item.to_le_bytes())?;
            }
            12 + 4 * items.len() as u64
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_metadata_and_aligned_data() {
        let mut bytes = Vec::new();
        let metadata = vec![("general.architecture".to_owned(), Value::Str("bert".into()))];
        let tensors =
            vec![Tensor { name: "t".into(), dims: vec![3, 1], data: vec![1.0, 2.0, 3.0], storage: Storage::F32 }];
        write(&mut bytes, &metadata, &tensors).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 1);
        // The data section starts aligned and holds the values, then padding.
        assert_eq!(bytes.len() % 32, 0);
        let data_start = bytes.len() - 32;
        assert_eq!(f32::from_le_bytes(bytes[data_start + 4..data_start + 8].try_into().unwrap()), 2.0);
        let wrong = vec![Tensor { name: "t".into(), dims: vec![2], data: vec![1.0], storage: Storage::F32 }];
        let mut half = Vec::new();
        let f16 =
            vec![Tensor { name: "h".into(), dims: vec![4], data: vec![1.0, -2.0, 0.5, 0.0], storage: Storage::F16 }];
        write(&mut half, &metadata, &f16).unwrap();
        let start = half.len() - 32;
        assert_eq!(half::f16::from_le_bytes([half[start + 2], half[start + 3]]).to_f32(), -2.0);
        assert!(write(&mut Vec::new(), &metadata, &wrong).is_err());
    }
}
