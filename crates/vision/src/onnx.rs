//! The part of `onnx.proto` edgeway writes, declared by hand, and a small graph builder.
//!
//! The messages carry the field numbers of ONNX's `onnx.proto` (IR version 8)
//! so `prost` encodes them exactly as ONNX's own writer would; only the fields
//! used here are declared, which protobuf allows (readers skip what is absent).
//! Declaring them by hand keeps `protoc` out of the build.

use prost::Message;

/// The IR version written: ONNX 1.10's, which every ONNX Runtime since 1.10 reads.
pub const IR_VERSION: i64 = 8;
/// The operator set written (Clip takes its bounds as inputs from 11 on).
pub const OPSET_VERSION: i64 = 13;

/// `TensorProto.DataType.FLOAT`.
pub const DATA_TYPE_FLOAT: i32 = 1;

/// `ModelProto`: a graph and the operator sets it needs.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// The IR version of this file.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Who wrote it.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// The writer's version.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Free text about the model.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Operator sets used by the graph.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Free-form key/value facts about the model.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `StringStringEntryProto`: one metadata entry.
#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Whether the ONNX model in `bytes` runs quantized: it has quantize/dequantize pairs (QDQ) or
/// integer operators. `false` for bytes that are not a model.
pub fn is_quantized(bytes: &[u8]) -> bool {
    use prost::Message as _;
    const QUANTIZED_OPS: [&str; 6] =
        ["QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"];
    ModelProto::decode(bytes)
        .ok()
        .and_then(|model| model.graph)
        .is_some_and(|graph| graph.node.iter().any(|node| QUANTIZED_OPS.contains(&node.op_type.as_str())))
}

/// Whether the ONNX model in `bytes` has a graph output called `name`. `false` for bytes that
/// are not a model.
pub fn has_output(bytes: &[u8], name: &str) -> bool {
    use prost::Message as _;
    ModelProto::decode(bytes)
        .ok()
        .and_then(|model| model.graph)
        .is_some_and(|graph| graph.output.iter().any(|output| output.name == name))
}

/// `OperatorSetIdProto`.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    /// Empty for the default ONNX domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The operator set's version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`: nodes in topological order, weights, inputs and outputs.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    /// The nodes, each after the nodes it reads from.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights), referred to by name.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Free text.
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// The graph's inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph's outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator call.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    /// Names of the input values.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the output values.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator, e.g. `Conv`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The operator's attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType`'s values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// One float (`f`).
    Float = 1,
    /// One integer (`i`).
    Int = 2,
    /// Bytes (`s`).
    String = 3,
    /// A list of integers (`ints`).
    Ints = 7,
}

/// `AttributeProto`: a named operator parameter.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    /// The attribute's name, e.g. `strides`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value when it is one float.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// The value when it is one integer.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// The value when it is a string.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// The value when it is a list of integers.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Which of the value fields holds the value.
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
}

impl AttributeProto {
    /// An integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        Self { name: name.into(), i: value, r#type: AttributeType::Int as i32, ..Self::default() }
    }

    /// A list-of-integers attribute.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        Self { name: name.into(), ints: values.to_vec(), r#type: AttributeType::Ints as i32, ..Self::default() }
    }

    /// A string attribute.
    pub fn string(name: &str, value: &str) -> Self {
        Self {
            name: name.into(),
            s: value.as_bytes().to_vec(),
            r#type: AttributeType::String as i32,
            ..Self::default()
        }
    }

    /// A float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        Self { name: name.into(), f: value, r#type: AttributeType::Float as i32, ..Self::default() }
    }
}

/// `TensorProto`: a constant, its elements as little-endian `raw_data`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// The dimensions.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// The element type (`DATA_TYPE_FLOAT`).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// The name nodes refer to it by.
    #[prost(string, tag = "8")]
    pub name: String,
    /// The elements, little-endian, row-major.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

impl TensorProto {
    /// A float tensor named `name` with `dims` and row-major `values`.
    pub fn float(name: &str, dims: &[usize], values: &[f32]) -> Self {
        Self {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DATA_TYPE_FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// `ValueInfoProto`: a graph input's or output's name and type.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    /// The value's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Free text, e.g. what a feature map is.
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// `TypeProto`, tensors only (the `tensor_type` arm of its oneof).
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// The tensor type.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`: element type and shape.
#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    /// The element type.
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    /// The dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size or a symbolic name (its oneof, as two optional fields,
/// which is the same on the wire).
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    /// A fixed size.
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// A symbolic size, e.g. `batch`.
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// A dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size chosen at run time, named.
    Named(&'static str),
    /// A size left to the runtime to work out.
    Unknown,
}

/// A float tensor's value info.
pub fn float_value(name: &str, dims: &[Dim], doc: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Dimension { dim_value: Some(*n as i64), dim_param: None },
            Dim::Named(s) => Dimension { dim_value: None, dim_param: Some((*s).into()) },
            Dim::Unknown => Dimension { dim_value: None, dim_param: None },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: doc.into(),
    }
}

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// TensorFlow's `SAME`: output size `ceil(in / stride)`, the odd pixel of padding at the end
    /// (ONNX's `auto_pad = SAME_UPPER`).
    SameUpper,
    /// The same amount on every side.
    Symmetric(usize),
}

/// Builds a graph node by node, naming values after the nodes that make them.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a constant and returns its name.
    pub fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(TensorProto::float(name, dims, values));
        name.to_owned()
    }

    /// Adds a node whose one output is called `output`.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.to_owned()],
            name: name.into(),
            op_type: op_type.into(),
            attribute: attributes,
        });
        output.to_owned()
    }

    /// A 2-D convolution with bias, `weight` shaped `[out, in / group, k, k]`; returns the output's name.
    #[allow(clippy::too_many_arguments)] // each is one of Conv's own parameters
    pub fn conv(
        &mut self,
        name: &str,
        input: &str,
        weight: (&[usize], &[f32]),
        bias: &[f32],
        stride: usize,
        group: usize,
        padding: Padding,
    ) -> String {
        let w = self.constant(&format!("{name}.weight"), weight.0, weight.1);
        let b = self.constant(&format!("{name}.bias"), &[bias.len()], bias);
        let kernel = weight.0[2] as i64;
        let mut attributes = vec![
            AttributeProto::ints("kernel_shape", &[kernel, weight.0[3] as i64]),
            AttributeProto::ints("strides", &[stride as i64, stride as i64]),
            AttributeProto::int("group", group as i64),
        ];
        attributes.push(match padding {
            Padding::SameUpper => AttributeProto::string("auto_pad", "SAME_UPPER"),
            Padding::Symmetric(p) => AttributeProto::ints("pads", &[p as i64; 4]),
        });
        self.node("Conv", name, &[input, &w, &b], name, attributes)
    }

    /// `min(max(x, 0), 6)`.
    pub fn relu6(&mut self, name: &str, input: &str) -> String {
        if !self.initializers.iter().any(|t| t.name == "zero") {
            self.constant("zero", &[], &[0.0]);
            self.constant("six", &[], &[6.0]);
        }
        self.node("Clip", name, &[input, "zero", "six"], name, Vec::new())
    }

    /// Element-wise sum.
    pub fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Add", name, &[a, b], name, Vec::new())
    }

    /// Mean over the spatial dimensions, then flattened to `[N, C]`.
    pub fn global_average_pool(&mut self, name: &str, input: &str) -> String {
        let pooled = self.node("GlobalAveragePool", name, &[input], name, Vec::new());
        let flat = format!("{name}.flat");
        self.node("Flatten", &flat, &[&pooled], &flat, vec![AttributeProto::int("axis", 1)])
    }

    /// `input · weightᵀ + bias` with `weight` shaped `[out, in]`.
    pub fn linear(
        &mut self,
        name: &str,
        input: &str,
        weight: (&[usize], &[f32]),
        bias: &[f32],
        output: &str,
    ) -> String {
        let w = self.constant(&format!("{name}.weight"), weight.0, weight.1);
        let b = self.constant(&format!("{name}.bias"), &[bias.len()], bias);
        self.node("Gemm", name, &[input, &w, &b], output, vec![AttributeProto::int("transB", 1)])
    }

    /// The finished model: the graph with these inputs and outputs, serialized.
    pub fn finish(self, name: &str, doc: &str, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> Vec<u8> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            producer_name: "edgeway".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: name.into(),
                initializer: self.initializers,
                doc_string: doc.into(),
                input: inputs,
                output: outputs,
            }),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET_VERSION }],
            metadata_props: Vec::new(),
        };
        model.encode_to_vec()
    }
}
