//! PyTorch's legacy (pre-1.6, non-zip) checkpoint format, read without torch.
//!
//! A legacy `.pth` file is five pickles and then raw bytes:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c`,
//! 2. the format's protocol version (1001),
//! 3. a system-info dict (endianness, C type sizes),
//! 4. the saved object: here a state dict whose tensors are
//!    `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` calls
//!    and whose storages are persistent ids
//!    `('storage', torch.FloatStorage, key, location, numel)`,
//! 5. the list of storage keys,
//!
//! followed, for each key in that order, by an 8-byte little-endian element
//! count and that many elements.
//!
//! Why a hand-written pickle machine rather than a crate: `serde-pickle` (the
//! well-kept Rust unpickler) refuses persistent ids (`BINPERSID`), which is how
//! every tensor refers to its storage, and it would turn the `GLOBAL`/`REDUCE`
//! calls into opaque values anyway. The machine below knows only the opcodes
//! torch's legacy writer emits (protocol 2) and calls nothing: the three
//! callables it accepts (`OrderedDict`, `_rebuild_tensor_v2`, `_rebuild_parameter`)
//! are interpreted as data, and any other global is an error.
//!
//! Tensors are materialised with their strides honoured: torch saves a
//! tensor's storage as it is in memory, so a transposed or channels-last
//! weight reads back correctly only through `offset + Σ index·stride`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The legacy format's magic number, as the little-endian bytes of pickle's `LONG1`.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only protocol version of the legacy format.
const PROTOCOL_VERSION: i64 = 1001;
/// The first bytes of a zip file: the format torch writes since 1.6.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A zip checkpoint (torch ≥ 1.6), which this reader does not handle.
    #[error("this is a zip-format PyTorch checkpoint (torch 1.6 or newer); only the legacy format is supported")]
    ZipFormat,
    /// Not a legacy checkpoint at all.
    #[error("not a legacy PyTorch checkpoint: {0}")]
    NotLegacy(String),
    /// The file ends early.
    #[error("the checkpoint is truncated: {what} needs bytes past the end of the file (offset {offset})")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it started.
        offset: usize,
    },
    /// A pickle this reader does not understand or that is malformed.
    #[error("bad pickle at byte {offset}: {reason}")]
    Pickle {
        /// Offset of the opcode in the file.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tensor that does not fit its storage, or an unknown storage.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// The state-dict key.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `torch.FloatStorage`.
    F32,
    /// `torch.DoubleStorage`.
    F64,
    /// `torch.HalfStorage`.
    F16,
    /// `torch.LongStorage`.
    I64,
    /// `torch.IntStorage`.
    I32,
    /// `torch.ByteStorage`.
    U8,
}

impl DType {
    fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ByteStorage" => Self::U8,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
        }
    }

    /// Element `index` of little-endian `bytes`, as f64 (exact for every type but huge i64s).
    fn read(self, bytes: &[u8], index: usize) -> f64 {
        let at = index * self.size();
        let b = &bytes[at..at + self.size()];
        match self {
            Self::U8 => f64::from(b[0]),
            Self::F16 => f64::from(f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Self::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::F64 => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            Self::I64 => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64,
        }
    }
}

/// IEEE half to single precision.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// One tensor of a state dict, laid out contiguously (row-major) whatever its saved strides.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// The element type it was saved with.
    pub dtype: DType,
    /// The elements in row-major order, converted to f32.
    pub values: Vec<f32>,
}

/// A state dict: parameter names to tensors, in the file's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// The entries in the order the file lists them.
    pub tensors: Vec<(String, Tensor)>,
}

impl StateDict {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(key, _)| key == name).map(|(_, tensor)| tensor)
    }

    /// The number of elements over all tensors.
    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|(_, tensor)| tensor.values.len()).sum()
    }
}

/// Reads a legacy checkpoint file.
pub fn load(path: &Path) -> Result<StateDict, TorchError> {
    let bytes = std::fs::read(path).map_err(|error| TorchError::Io { path: path.to_owned(), error })?;
    read(&bytes)
}

/// Reads a legacy checkpoint from its bytes.
pub fn read(bytes: &[u8]) -> Result<StateDict, TorchError> {
    if bytes.starts_with(ZIP_MAGIC) {
        return Err(TorchError::ZipFormat);
    }
    let mut cursor = Cursor { bytes, at: 0 };
    match unpickle(&mut cursor)? {
        Value::Long(magic) if magic == MAGIC => {}
        _ => return Err(TorchError::NotLegacy("the first pickle is not torch's magic number".into())),
    }
    match unpickle(&mut cursor)? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => return Err(TorchError::NotLegacy(format!("protocol version {other:?}, expected {PROTOCOL_VERSION}"))),
    }
    let sys_info = unpickle(&mut cursor)?;
    if let Value::Dict(entries) = &sys_info {
        let little = entries.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == "little_endian"));
        if let Some((_, Value::Bool(false))) = little {
            return Err(TorchError::NotLegacy("saved on a big-endian machine, which is not supported".into()));
        }
    }
    let object_offset = cursor.at;
    let object = unpickle(&mut cursor)?;
    let keys_offset = cursor.at;
    let keys = match unpickle(&mut cursor)? {
        Value::List(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Str(key) => Ok(key),
                other => Err(pickle_error(keys_offset, format!("a storage key is {other:?}, not a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(pickle_error(keys_offset, format!("the storage keys are {other:?}, not a list"))),
    };
    let entries = match object {
        Value::Dict(entries) => entries,
        _ => return Err(pickle_error(object_offset, "the saved object is not a dict (a state dict was expected)")),
    };
    // The storages' dtypes come from the tensors that use them.
    let mut dtypes: HashMap<&str, DType> = HashMap::new();
    for (_, value) in &entries {
        if let Value::Tensor(tensor) = value {
            dtypes.insert(&tensor.storage.key, tensor.storage.dtype);
        }
    }
    let mut storages: HashMap<&str, (DType, usize, &[u8])> = HashMap::new();
    for key in &keys {
        let count_at = cursor.at;
        let count =
            u64::from_le_bytes(cursor.take(8, &format!("storage {key}'s size"))?.try_into().expect("took 8 bytes"));
        // A storage no tensor uses has no known element size, so nothing after it could be found.
        let dtype = *dtypes
            .get(key.as_str())
            .ok_or_else(|| pickle_error(keys_offset, format!("storage {key} is used by no tensor")))?;
        let length = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(dtype.size()))
            .ok_or_else(|| pickle_error(count_at, format!("storage {key} claims {count} elements")))?;
        let data = cursor.take(length, &format!("storage {key} ({count} elements)"))?;
        storages.insert(key, (dtype, count as usize, data));
    }
    let mut tensors = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let name = match key {
            Value::Str(name) => name,
            other => return Err(pickle_error(object_offset, format!("a state-dict key is {other:?}, not a string"))),
        };
        let tensor = match value {
            Value::Tensor(tensor) => tensor,
            other => return Err(TorchError::Tensor { name, reason: format!("the value is {other:?}, not a tensor") }),
        };
        let Some(&(dtype, count, data)) = storages.get(tensor.storage.key.as_str()) else {
            return Err(TorchError::Tensor {
                name,
                reason: format!("its storage {} is not in the file", tensor.storage.key),
            });
        };
        let values =
            gather(&tensor, dtype, count, data).map_err(|reason| TorchError::Tensor { name: name.clone(), reason })?;
        tensors.push((name, Tensor { shape: tensor.shape, dtype, values }));
    }
    Ok(StateDict { tensors })
}

/// Copies a (possibly strided) view out of its storage into row-major order.
fn gather(tensor: &TensorRef, dtype: DType, count: usize, data: &[u8]) -> Result<Vec<f32>, String> {
    if tensor.shape.len() != tensor.strides.len() {
        return Err(format!("{} dimensions but {} strides", tensor.shape.len(), tensor.strides.len()));
    }
    let numel = tensor.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or("too many elements")?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    // The furthest element the view touches must lie inside the storage.
    let last = tensor
        .shape
        .iter()
        .zip(&tensor.strides)
        .try_fold(tensor.offset, |acc, (&d, &s)| (d - 1).checked_mul(s).and_then(|step| acc.checked_add(step)))
        .ok_or("its strides overflow")?;
    if last >= count {
        return Err(format!(
            "shape {:?} with strides {:?} at offset {} reaches element {last} of a storage of {count}",
            tensor.shape, tensor.strides, tensor.offset
        ));
    }
    let mut values = Vec::with_capacity(numel);
    let mut index = vec![0usize; tensor.shape.len()];
    for _ in 0..numel {
        let at = tensor.offset + index.iter().zip(&tensor.strides).map(|(i, s)| i * s).sum::<usize>();
        values.push(dtype.read(data, at) as f32);
        // Advance the multi-index, last dimension fastest.
        for dim in (0..index.len()).rev() {
            index[dim] += 1;
            if index[dim] < tensor.shape[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
    Ok(values)
}

fn pickle_error(offset: usize, reason: impl Into<String>) -> TorchError {
    TorchError::Pickle { offset, reason: reason.into() }
}

/// A storage a tensor points at (a persistent id).
#[derive(Debug, Clone, PartialEq)]
struct StorageRef {
    key: String,
    dtype: DType,
}

/// A `_rebuild_tensor_v2` call, not yet read out of its storage.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

/// The values the pickles in a checkpoint build.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A `LONG1` too long for an i64: its little-endian two's-complement bytes.
    Long(Vec<u8>),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage(StorageRef),
    Tensor(TensorRef),
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(TorchError::Truncated { what: what.into(), offset: self.at });
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, TorchError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, TorchError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("took 4 bytes")))
    }

    fn line(&mut self, what: &str) -> Result<&'a str, TorchError> {
        let start = self.at;
        let rest = &self.bytes[start..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| TorchError::Truncated { what: what.into(), offset: start })?;
        self.at = start + end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| pickle_error(start, format!("{what} is not UTF-8")))
    }
}

/// Runs one pickle from the cursor to its `STOP` and returns the object it built.
fn unpickle(cursor: &mut Cursor<'_>) -> Result<Value, TorchError> {
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    loop {
        let offset = cursor.at;
        let err = |reason: &str| pickle_error(offset, reason.to_owned());
        let opcode = cursor.u8("an opcode")?;
        macro_rules! pop {
            () => {
                stack.pop().ok_or_else(|| err("stack underflow"))?
            };
        }
        macro_rules! pop_mark {
            () => {{
                let mark = marks.pop().ok_or_else(|| err("no MARK to pop to"))?;
                if mark > stack.len() {
                    return Err(err("MARK above the stack"));
                }
                stack.split_off(mark)
            }};
        }
        match opcode {
            0x80 => {
                // PROTO: the legacy writer uses protocol 2.
                let protocol = cursor.u8("PROTO's argument")?;
                if protocol > 5 {
                    return Err(err(&format!("pickle protocol {protocol}")));
                }
            }
            0x95 => {
                cursor.take(8, "FRAME's length")?; // FRAME: only a read-ahead hint.
            }
            b'.' => return stack.pop().ok_or_else(|| err("STOP with an empty stack")),
            b'(' => marks.push(stack.len()),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark!();
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(opcode - 0x84);
                if stack.len() < n {
                    return Err(err("stack underflow"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b'a' => {
                let item = pop!();
                match stack.last_mut() {
                    Some(Value::List(items)) => items.push(item),
                    _ => return Err(err("APPEND to a non-list")),
                }
            }
            b'e' => {
                let new = pop_mark!();
                match stack.last_mut() {
                    Some(Value::List(items)) => items.extend(new),
                    _ => return Err(err("APPENDS to a non-list")),
                }
            }
            b's' => {
                let value = pop!();
                let key = pop!();
                match stack.last_mut() {
                    Some(Value::Dict(entries)) => entries.push((key, value)),
                    _ => return Err(err("SETITEM on a non-dict")),
                }
            }
            b'u' => {
                let items = pop_mark!();
                if items.len() % 2 != 0 {
                    return Err(err("SETITEMS with an odd number of items"));
                }
                let Some(Value::Dict(entries)) = stack.last_mut() else {
                    return Err(err("SETITEMS on a non-dict"));
                };
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    entries.push((key, value));
                }
            }
            b'q' | b'r' | 0x94 => {
                let index = match opcode {
                    b'q' => u32::from(cursor.u8("BINPUT's index")?),
                    b'r' => cursor.u32("LONG_BINPUT's index")?,
                    _ => memo.len() as u32, // MEMOIZE
                };
                let top = stack.last().ok_or_else(|| err("PUT with an empty stack"))?;
                memo.insert(index, top.clone());
            }
            b'h' | b'j' => {
                let index = if opcode == b'h' {
                    u32::from(cursor.u8("BINGET's index")?)
                } else {
                    cursor.u32("LONG_BINGET's index")?
                };
                let value = memo.get(&index).ok_or_else(|| err(&format!("GET of memo {index}, never PUT")))?;
                stack.push(value.clone());
            }
            b'J' => {
                let v = i32::from_le_bytes(cursor.take(4, "BININT")?.try_into().expect("took 4 bytes"));
                stack.push(Value::Int(i64::from(v)));
            }
            b'K' => stack.push(Value::Int(i64::from(cursor.u8("BININT1")?))),
            b'M' => {
                let b = cursor.take(2, "BININT2")?;
                stack.push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
            }
            0x8a => {
                let n = usize::from(cursor.u8("LONG1's length")?);
                let bytes = cursor.take(n, "LONG1")?;
                stack.push(if n <= 8 {
                    // Sign-extend the little-endian two's complement.
                    let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
                    let mut full = [fill; 8];
                    full[..n].copy_from_slice(bytes);
                    Value::Int(i64::from_le_bytes(full))
                } else {
                    Value::Long(bytes.to_vec())
                });
            }
            b'G' => {
                let v = f64::from_be_bytes(cursor.take(8, "BINFLOAT")?.try_into().expect("took 8 bytes"));
                stack.push(Value::Float(v));
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'X' | 0x8c => {
                let n = if opcode == b'X' {
                    cursor.u32("BINUNICODE's length")? as usize
                } else {
                    usize::from(cursor.u8("SHORT_BINUNICODE's length")?)
                };
                let bytes = cursor.take(n, "a string")?;
                let s = std::str::from_utf8(bytes).map_err(|_| err("a string is not UTF-8"))?;
                stack.push(Value::Str(s.to_owned()));
            }
            b'c' => {
                let module = cursor.line("GLOBAL's module")?.to_owned();
                let name = cursor.line("GLOBAL's name")?.to_owned();
                stack.push(Value::Global(module, name));
            }
            b'Q' => {
                let pid = pop!();
                stack.push(persistent_storage(pid).map_err(|reason| err(&reason))?);
            }
            b'R' => {
                let args = pop!();
                let callable = pop!();
                stack.push(reduce(callable, args).map_err(|reason| err(&reason))?);
            }
            b'b' => {
                // BUILD sets an object's state; a state dict carries `_metadata`
                // (per-module versions) this way, which nothing here needs.
                let _state = pop!();
                if !matches!(stack.last(), Some(Value::Dict(_))) {
                    return Err(err("BUILD on something other than a dict"));
                }
            }
            other => return Err(err(&format!("unsupported opcode 0x{other:02x}"))),
        }
    }
}

/// `('storage', torch.XStorage, key, location, numel[, view])` into a storage reference.
fn persistent_storage(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err(format!("persistent id {pid:?} is not a tuple"));
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(module, name), Value::Str(key), _location, Value::Int(_), ..]
            if kind == "storage" && module == "torch" =>
        {
            let dtype =
                DType::from_storage_name(name).ok_or_else(|| format!("unsupported storage type torch.{name}"))?;
            Ok(Value::Storage(StorageRef { key: key.clone(), dtype }))
        }
        _ => Err(format!("persistent id {items:?} is not a storage")),
    }
}

/// The calls a state dict contains, interpreted as data.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = callable else {
        return Err(format!("REDUCE on {callable:?}, not a global"));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("REDUCE of {module}.{name} with {args:?}, not a tuple"));
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") if args.is_empty() => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let [Value::Storage(storage), Value::Int(offset), Value::Tuple(shape), Value::Tuple(strides), ..] =
                args.as_slice()
            else {
                return Err(format!("{name} with unexpected arguments {args:?}"));
            };
            let dims = |values: &[Value]| -> Result<Vec<usize>, String> {
                values
                    .iter()
                    .map(|v| match v {
                        Value::Int(n) => usize::try_from(*n).map_err(|_| format!("negative size or stride {n}")),
                        other => Err(format!("size or stride {other:?} is not an integer")),
                    })
                    .collect()
            };
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset: usize::try_from(*offset).map_err(|_| format!("negative storage offset {offset}"))?,
                shape: dims(shape)?,
                strides: dims(strides)?,
            }))
        }
        ("torch._utils", "_rebuild_parameter") => match args.into_iter().next() {
            Some(tensor @ Value::Tensor(_)) => Ok(tensor),
            _ => Err("_rebuild_parameter without a tensor".into()),
        },
        _ => Err(format!("unsupported global {module}.{name} (only tensors and dicts are read)")),
    }
}

#[cfg(test)]
mod tests {
    //! A tiny legacy checkpoint built byte by byte, as torch's legacy writer lays it out.

    use super::*;

    /// Pickle opcodes for the test writer.
    struct Pickle(Vec<u8>);

    impl Pickle {
        fn new() -> Self {
            Self(vec![0x80, 2])
        }
        fn op(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
        fn int(self, n: u8) -> Self {
            self.op(&[b'K', n])
        }
        fn str(mut self, s: &str) -> Self {
            self.0.push(b'X');
            self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn global(mut self, module: &str, name: &str) -> Self {
            self.0.push(b'c');
            self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
            self
        }
        /// `_rebuild_tensor_v2(('storage', torch.<kind>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())`.
        fn tensor(self, kind: &str, key: &str, numel: u8, offset: u8, shape: &[u8], stride: &[u8]) -> Self {
            let mut p = self.global("torch._utils", "_rebuild_tensor_v2").op(b"(").op(b"(").str("storage");
            p = p.global("torch", kind).str(key).str("cpu").int(numel).op(b"t").op(b"Q").int(offset).op(b"(");
            for &d in shape {
                p = p.int(d);
            }
            p = p.op(b"t(");
            for &s in stride {
                p = p.int(s);
            }
            p.op(b"t").op(&[0x89]).global("collections", "OrderedDict").op(b")R").op(b"tR")
        }
        fn stop(self) -> Vec<u8> {
            self.op(b".").0
        }
    }

    fn checkpoint() -> Vec<u8> {
        let mut file = Vec::new();
        file.extend(Pickle::new().op(&[0x8a, 10]).op(&MAGIC).stop());
        file.extend(Pickle::new().op(b"M").op(&1001u16.to_le_bytes()).stop());
        file.extend(Pickle::new().op(b"}(").str("little_endian").op(&[0x88]).op(b"u").stop());
        // "a": the 2×3 storage "0" read contiguously; "b": the same storage
        // transposed (3×2, strides (1, 3)); "c": a scalar count.
        let state = Pickle::new()
            .global("collections", "OrderedDict")
            .op(b")Rq\x00(")
            .str("a")
            .tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1])
            .str("b")
            .tensor("FloatStorage", "0", 6, 0, &[3, 2], &[1, 3])
            .str("c")
            .tensor("LongStorage", "1", 1, 0, &[], &[])
            .op(b"u}b") // SETITEMS, then BUILD with an empty `_metadata` state
            .stop();
        file.extend(state);
        file.extend(Pickle::new().op(b"](").str("0").str("1").op(b"e").stop());
        file.extend(6u64.to_le_bytes());
        for v in [1f32, 2., 3., 4., 5., 6.] {
            file.extend(v.to_le_bytes());
        }
        file.extend(1u64.to_le_bytes());
        file.extend(42i64.to_le_bytes());
        file
    }

    #[test]
    fn reads_contiguous_strided_and_integer_tensors() {
        let dict = read(&checkpoint()).unwrap();
        let names: Vec<&str> = dict.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = dict.get("a").unwrap();
        assert_eq!((a.shape.as_slice(), a.values.as_slice()), (&[2, 3][..], &[1., 2., 3., 4., 5., 6.][..]));
        // The transpose: b[i][j] = a[j][i].
        let b = dict.get("b").unwrap();
        assert_eq!((b.shape.as_slice(), b.values.as_slice()), (&[3, 2][..], &[1., 4., 2., 5., 3., 6.][..]));
        let c = dict.get("c").unwrap();
        assert_eq!((c.dtype, c.shape.is_empty(), c.values.as_slice()), (DType::I64, true, &[42.][..]));
        assert_eq!(dict.parameter_count(), 13);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let file = checkpoint();
        for cut in 0..file.len() {
            assert!(read(&file[..cut]).is_err(), "cut at {cut} was accepted");
        }
        let error = read(&file[..file.len() - 3]).unwrap_err();
        assert!(matches!(error, TorchError::Truncated { .. }), "{error}");
        assert!(error.to_string().contains("storage 1"), "{error}");
    }

    #[test]
    fn refuses_other_files_clearly() {
        assert!(matches!(read(b"PK\x03\x04rest"), Err(TorchError::ZipFormat)));
        let error = read(&Pickle::new().int(7).stop()).unwrap_err();
        assert!(error.to_string().contains("magic"), "{error}");
        let error = read(b"\x80\x02\xff").unwrap_err();
        assert!(error.to_string().contains("unsupported opcode 0xff"), "{error}");
    }

    #[test]
    fn a_view_past_its_storage_is_refused() {
        let mut file = checkpoint();
        // Shrink storage "0" to 5 elements: "a" (which needs 6) no longer fits.
        let at = file.len() - 8 - 8 - 6 * 4 - 8;
        file[at..at + 8].copy_from_slice(&5u64.to_le_bytes());
        file.drain(at + 8 + 20..at + 8 + 24);
        let error = read(&file).unwrap_err();
        assert!(matches!(&error, TorchError::Tensor { name, .. } if name == "a"), "{error}");
    }

    #[test]
    fn unknown_globals_are_not_called() {
        let file = [
            Pickle::new().op(&[0x8a, 10]).op(&MAGIC).stop(),
            Pickle::new().op(b"M").op(&1001u16.to_le_bytes()).stop(),
            Pickle::new().op(b"}").stop(),
            Pickle::new().global("os", "system").str("true").op(&[0x85]).op(b"R").stop(),
        ]
        .concat();
        let error = read(&file).unwrap_err();
        assert!(error.to_string().contains("unsupported global os.system"), "{error}");
    }

    #[test]
    fn half_precision_converts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
