//! EfficientNet-Lite0's state dict to an ONNX graph, batch norms folded into the convolutions.
//!
//! The network is read off the state dict's keys and shapes (`_conv_stem`,
//! `_blocks.N._expand_conv` / `_depthwise_conv` / `_project_conv` with their
//! `_bn0`/`_bn1`/`_bn2`, `_conv_head`, `_bn1`, `_fc`): channel counts, kernel
//! sizes and which blocks expand. Strides are not in a state dict, so the
//! blocks are grouped into stages (a stage starts where the channel count
//! changes) and checked against EfficientNet-Lite0's published stage table
//! ([`STAGES`]), which gives each stage's stride; a checkpoint of another shape
//! is refused rather than converted wrongly.
//!
//! Lite is EfficientNet without squeeze-and-excitation and with ReLU6 in place
//! of swish. Every convolution pads like TensorFlow's `SAME` (the weights come
//! from TensorFlow's checkpoints), which ONNX calls `SAME_UPPER`, so the graph
//! takes any input size.
//!
//! Outputs: `logits` `[N, 1000]` (ImageNet classes) and two feature maps for
//! patch-level anomaly detection: `features_stride8` `[N, 40, H/8, W/8]` (the
//! end of the stride-8 stage) and `features_stride16` `[N, 112, H/16, W/16]`
//! (the end of the last stride-16 stage).

use crate::onnx::{float_value, Dim, GraphBuilder, Padding};
use crate::torch_legacy::StateDict;

/// The input's name: `[N, 3, H, W]` float, normalised as [`crate::preprocess::LITE0`] does.
pub const INPUT: &str = "image";
/// The classifier's output: `[N, 1000]` ImageNet logits.
pub const LOGITS: &str = "logits";
/// The stride-8 feature map: `[N, 40, H/8, W/8]`.
pub const FEATURES_STRIDE8: &str = "features_stride8";
/// The stride-16 feature map: `[N, 112, H/16, W/16]`.
pub const FEATURES_STRIDE16: &str = "features_stride16";

/// Batch norm's epsilon in EfficientNet (TensorFlow's 1e-3, not PyTorch's 1e-5).
pub const BN_EPSILON: f32 = 1e-3;

/// One stage of EfficientNet-Lite0 as published: (output channels, kernel, stride, expansion, blocks).
pub const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (16, 3, 1, 1, 1),
    (24, 3, 2, 6, 2),
    (40, 5, 2, 6, 2),
    (80, 3, 2, 6, 3),
    (112, 5, 1, 6, 3),
    (192, 5, 2, 6, 4),
    (320, 3, 1, 6, 1),
];

/// Why a state dict could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum Lite0Error {
    /// A tensor the network needs is absent.
    #[error("the state dict has no {0}; is this an EfficientNet-Lite0 checkpoint?")]
    Missing(String),
    /// A tensor has a shape the network cannot use.
    #[error("{name} has shape {shape:?}, expected {expected}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What was expected.
        expected: String,
    },
    /// The blocks do not form EfficientNet-Lite0's stages.
    #[error("not EfficientNet-Lite0: {0}")]
    Architecture(String),
    /// The checkpoint could not be read.
    #[error("cannot read the checkpoint {path}: {error}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// Why.
        error: crate::torch_legacy::TorchError,
    },
    /// The ONNX file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
}

/// A convolution with its batch norm folded in: `weight` `[out, in/group, k, k]`, `bias` `[out]`.
struct FoldedConv {
    shape: Vec<usize>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One MBConv block as read from the state dict.
struct Block {
    index: usize,
    input_channels: usize,
    output_channels: usize,
    expand: Option<FoldedConv>,
    depthwise: FoldedConv,
    project: FoldedConv,
}

impl Block {
    fn kernel(&self) -> usize {
        self.depthwise.shape[2]
    }
}

fn tensor<'a>(dict: &'a StateDict, name: &str, rank: usize) -> Result<&'a crate::torch_legacy::Tensor, Lite0Error> {
    let tensor = dict.get(name).ok_or_else(|| Lite0Error::Missing(name.into()))?;
    if tensor.shape.len() != rank {
        return Err(Lite0Error::Shape {
            name: name.into(),
            shape: tensor.shape.clone(),
            expected: format!("{rank} dimensions"),
        });
    }
    Ok(tensor)
}

/// Reads `conv.weight` and the batch norm `bn`, and folds the norm into the weights:
/// `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`.
fn folded(dict: &StateDict, conv: &str, bn: &str) -> Result<FoldedConv, Lite0Error> {
    let weight_name = format!("{conv}.weight");
    let weight = tensor(dict, &weight_name, 4)?;
    let out = weight.shape[0];
    let per_channel = |field: &str| -> Result<&[f32], Lite0Error> {
        let name = format!("{bn}.{field}");
        let t = tensor(dict, &name, 1)?;
        if t.shape[0] != out {
            return Err(Lite0Error::Shape {
                name,
                shape: t.shape.clone(),
                expected: format!("[{out}] to match {weight_name}"),
            });
        }
        Ok(&t.values)
    };
    let (gamma, beta, mean, var) =
        (per_channel("weight")?, per_channel("bias")?, per_channel("running_mean")?, per_channel("running_var")?);
    let per_filter = weight.values.len() / out.max(1);
    let mut folded_weight = weight.values.clone();
    let mut bias = Vec::with_capacity(out);
    for o in 0..out {
        let scale = gamma[o] / (var[o] + BN_EPSILON).sqrt();
        for w in &mut folded_weight[o * per_filter..(o + 1) * per_filter] {
            *w *= scale;
        }
        bias.push(beta[o] - mean[o] * scale);
    }
    Ok(FoldedConv { shape: weight.shape.clone(), weight: folded_weight, bias })
}

fn blocks(dict: &StateDict, stem_channels: usize) -> Result<Vec<Block>, Lite0Error> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut channels = stem_channels;
    for index in 0.. {
        let prefix = format!("_blocks.{index}");
        if dict.get(&format!("{prefix}._depthwise_conv.weight")).is_none() {
            break;
        }
        let expand = match dict.get(&format!("{prefix}._expand_conv.weight")) {
            Some(_) => Some(folded(dict, &format!("{prefix}._expand_conv"), &format!("{prefix}._bn0"))?),
            None => None,
        };
        let depthwise = folded(dict, &format!("{prefix}._depthwise_conv"), &format!("{prefix}._bn1"))?;
        let project = folded(dict, &format!("{prefix}._project_conv"), &format!("{prefix}._bn2"))?;
        let hidden = expand.as_ref().map_or(channels, |e| e.shape[0]);
        let check = |name: &str, shape: &[usize], expected: Vec<usize>, what: &str| {
            if shape.len() == 4
                && shape[0] == expected[0]
                && shape[1] == expected[1]
                && shape[2] == shape[3]
                && (expected[2] == 0 || shape[2] == expected[2])
            {
                Ok(())
            } else {
                Err(Lite0Error::Shape {
                    name: format!("{prefix}.{name}.weight"),
                    shape: shape.to_vec(),
                    expected: what.into(),
                })
            }
        };
        if let Some(e) = &expand {
            check("_expand_conv", &e.shape, vec![hidden, channels, 1], &format!("[{hidden}, {channels}, 1, 1]"))?;
        }
        check("_depthwise_conv", &depthwise.shape, vec![hidden, 1, 0], &format!("[{hidden}, 1, k, k]"))?;
        let out = project.shape[0];
        check("_project_conv", &project.shape, vec![out, hidden, 1], &format!("[{out}, {hidden}, 1, 1]"))?;
        if depthwise.shape[2] % 2 == 0 {
            return Err(Lite0Error::Architecture(format!("block {index} has an even kernel {}", depthwise.shape[2])));
        }
        blocks.push(Block { index, input_channels: channels, output_channels: out, expand, depthwise, project });
        channels = out;
    }
    Ok(blocks)
}

/// Groups blocks into stages (a new stage where the output channels change), checks them
/// against [`STAGES`] and returns each block's stride.
fn strides(blocks: &[Block]) -> Result<Vec<usize>, Lite0Error> {
    let mut stages: Vec<Vec<&Block>> = Vec::new();
    for block in blocks {
        match stages.last_mut() {
            Some(stage) if stage[0].output_channels == block.output_channels => stage.push(block),
            _ => stages.push(vec![block]),
        }
    }
    if stages.len() != STAGES.len() {
        return Err(Lite0Error::Architecture(format!("{} stages of blocks, Lite0 has {}", stages.len(), STAGES.len())));
    }
    let mut strides = Vec::with_capacity(blocks.len());
    for (number, (stage, &(channels, kernel, stride, expansion, count))) in stages.iter().zip(&STAGES).enumerate() {
        let first = stage[0];
        let expands = first.expand.as_ref().map_or(1, |e| e.shape[0] / first.input_channels.max(1));
        if first.output_channels != channels || first.kernel() != kernel || stage.len() != count || expands != expansion
        {
            return Err(Lite0Error::Architecture(format!(
                "stage {} has {} blocks of {}×{} kernels to {} channels (expansion {}); Lite0's has {count} of {kernel}×{kernel} to {channels} (expansion {expansion})",
                number + 1,
                stage.len(),
                first.kernel(),
                first.kernel(),
                first.output_channels,
                expands
            )));
        }
        strides.push(stride);
        strides.extend(std::iter::repeat_n(1, stage.len() - 1));
    }
    Ok(strides)
}

/// A summary of a converted network, for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The serialized ONNX model.
    pub onnx: Vec<u8>,
    /// MBConv blocks.
    pub blocks: usize,
    /// Parameters in the checkpoint (including batch-norm statistics).
    pub parameters: usize,
    /// ImageNet classes of the classifier.
    pub classes: usize,
}

/// Converts an EfficientNet-Lite0 state dict to an ONNX model with [`LOGITS`],
/// [`FEATURES_STRIDE8`] and [`FEATURES_STRIDE16`] outputs.
pub fn convert(dict: &StateDict) -> Result<Converted, Lite0Error> {
    let mut graph = GraphBuilder::new();
    let stem = folded(dict, "_conv_stem", "_bn0")?;
    if stem.shape[1] != 3 {
        return Err(Lite0Error::Shape {
            name: "_conv_stem.weight".into(),
            shape: stem.shape,
            expected: "3 input channels (RGB)".into(),
        });
    }
    let stem_channels = stem.shape[0];
    let x = graph.conv("stem.conv", INPUT, (&stem.shape, &stem.weight), &stem.bias, 2, 1, Padding::SameUpper);
    let mut x = graph.relu6("stem.relu6", &x);

    let blocks = blocks(dict, stem_channels)?;
    let strides = strides(&blocks)?;
    let mut stride_so_far = 2;
    // The last block at each output stride: the feature maps are taken there.
    let last_at = |target: usize| -> Option<usize> {
        let mut total = 2;
        let mut last = None;
        for (i, s) in strides.iter().enumerate() {
            total *= s;
            if total == target {
                last = Some(i);
            }
        }
        last
    };
    let (tap8, tap16) = (last_at(8), last_at(16));
    let mut features = Vec::new();
    for (block, &stride) in blocks.iter().zip(&strides) {
        let name = format!("blocks.{}", block.index);
        let input = x.clone();
        if let Some(e) = &block.expand {
            let h = graph.conv(&format!("{name}.expand"), &x, (&e.shape, &e.weight), &e.bias, 1, 1, Padding::SameUpper);
            x = graph.relu6(&format!("{name}.expand.relu6"), &h);
        }
        let d = &block.depthwise;
        let h = graph.conv(
            &format!("{name}.depthwise"),
            &x,
            (&d.shape, &d.weight),
            &d.bias,
            stride,
            d.shape[0],
            Padding::SameUpper,
        );
        x = graph.relu6(&format!("{name}.depthwise.relu6"), &h);
        let p = &block.project;
        x = graph.conv(&format!("{name}.project"), &x, (&p.shape, &p.weight), &p.bias, 1, 1, Padding::SameUpper);
        if stride == 1 && block.input_channels == block.output_channels {
            x = graph.add(&format!("{name}.residual"), &input, &x);
        }
        stride_so_far *= stride;
        for (tap, output, channels) in [(tap8, FEATURES_STRIDE8, 8), (tap16, FEATURES_STRIDE16, 16)] {
            if tap == Some(block.index) {
                // An Identity gives the feature map its public name without renaming the block.
                x = graph.node("Identity", output, &[&x], output, Vec::new());
                features.push((output, block.output_channels, channels));
            }
        }
    }
    debug_assert_eq!(stride_so_far, 32);

    let head = folded(dict, "_conv_head", "_bn1")?;
    let x = graph.conv("head.conv", &x, (&head.shape, &head.weight), &head.bias, 1, 1, Padding::SameUpper);
    let x = graph.relu6("head.relu6", &x);
    let pooled = graph.global_average_pool("head.pool", &x);
    let fc_weight = tensor(dict, "_fc.weight", 2)?;
    let fc_bias = tensor(dict, "_fc.bias", 1)?;
    let classes = fc_weight.shape[0];
    if fc_weight.shape[1] != head.shape[0] || fc_bias.shape[0] != classes {
        return Err(Lite0Error::Shape {
            name: "_fc.weight".into(),
            shape: fc_weight.shape.clone(),
            expected: format!("[classes, {}] with a bias of [classes]", head.shape[0]),
        });
    }
    graph.linear("head.fc", &pooled, (&fc_weight.shape, &fc_weight.values), &fc_bias.values, LOGITS);

    let (batch, height, width) = (Dim::Named("batch"), Dim::Named("height"), Dim::Named("width"));
    let inputs = vec![float_value(
        INPUT,
        &[batch.clone(), Dim::Fixed(3), height, width],
        "RGB, normalised (see edgeway-vision's preprocess)",
    )];
    let mut outputs = vec![float_value(LOGITS, &[batch.clone(), Dim::Fixed(classes)], "ImageNet-1k logits")];
    for (name, channels, stride) in &features {
        outputs.push(float_value(
            name,
            &[batch.clone(), Dim::Fixed(*channels), Dim::Unknown, Dim::Unknown],
            &format!("the feature map at output stride {stride}"),
        ));
    }
    if features.len() != 2 {
        return Err(Lite0Error::Architecture("no stage ends at output stride 8 and 16".into()));
    }
    let onnx = graph.finish(
        "efficientnet_lite0",
        "EfficientNet-Lite0 converted by edgeway (batch norms folded)",
        inputs,
        outputs,
    );
    Ok(Converted { onnx, blocks: blocks.len(), parameters: dict.parameter_count(), classes })
}

/// Reads a legacy checkpoint, converts it and writes the ONNX model to `out`
/// (through a `.partial` file renamed into place, so `out` is whole or absent).
pub fn convert_checkpoint(checkpoint: &std::path::Path, out: &std::path::Path) -> Result<Converted, Lite0Error> {
    let dict = crate::torch_legacy::load(checkpoint)
        .map_err(|error| Lite0Error::Checkpoint { path: checkpoint.to_owned(), error })?;
    let converted = convert(&dict)?;
    let write_error = |error| Lite0Error::Write { path: out.to_owned(), error };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, &converted.onnx)
        .and_then(|()| std::fs::rename(&partial, out))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
        .map_err(write_error)?;
    Ok(converted)
}

/// The `k` most likely classes of one image's logits, as `(class index, softmax probability)`,
/// most likely first.
pub fn top_classes(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut ranked: Vec<(usize, f32)> = logits.iter().map(|&l| (l - max).exp() / total).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_are_ranked_probabilities() {
        let top = top_classes(&[0.0, 2.0, 1.0], 2);
        assert_eq!(top.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2]);
        assert!((top[0].1 - 0.665).abs() < 1e-3);
    }

    #[test]
    fn a_state_dict_of_something_else_is_refused() {
        let error = convert(&StateDict::default()).unwrap_err();
        assert!(error.to_string().contains("_conv_stem.weight"), "{error}");
    }
}
