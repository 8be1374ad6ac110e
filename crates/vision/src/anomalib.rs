//! Models exported by anomalib (`anomalib export --export_type onnx`), served as they are: one
//! image input `[N, 3, H, W]` normalised with ImageNet's mean and standard deviation, and the
//! outputs anomalib names `pred_score` (`[N]`, normalised so that 0.5 is the threshold) and
//! `anomaly_map` (`[N, 1, H, W]` or `[N, H, W]`, on the same scale). Outputs that are not float
//! (`pred_label`, `pred_mask`) are derived here from those two instead of read.
//!
//! The image is resized (shorter side) and centre-cropped to the model's input size; anomalib
//! resizes without cropping, which is the same for the square images a line camera takes.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array2, Axis, Ix3, Ix4};

use crate::inspection::InspectionError;
use crate::preprocess::{Preprocessing, LITE0};
use crate::runtime::{Runtime, RuntimeError, VisionSession};

/// The score output's name.
pub const PRED_SCORE: &str = "pred_score";
/// The anomaly map output's name.
pub const ANOMALY_MAP: &str = "anomaly_map";
/// anomalib's normalised threshold.
pub const THRESHOLD: f32 = 0.5;
/// The input size when the model leaves it open (anomalib's default image size).
const DEFAULT_SIZE: u32 = 256;

/// An anomalib model on ONNX Runtime.
#[derive(Debug)]
pub struct AnomalibModel {
    // Declared before the runtime, so the session is dropped first.
    session: VisionSession,
    path: PathBuf,
    input_size: u32,
    quantized: bool,
    _runtime: Runtime,
}

impl AnomalibModel {
    /// Opens the model at `path`; fails unless it has anomalib's `pred_score` and `anomaly_map`.
    pub fn open(runtime: Runtime, path: &Path) -> Result<Self, InspectionError> {
        let bytes = std::fs::read(path).map_err(|error| RuntimeError::ReadModel { path: path.to_owned(), error })?;
        let session = runtime.session_from_bytes(&bytes)?;
        let outputs = session.output_names();
        for name in [PRED_SCORE, ANOMALY_MAP] {
            if !outputs.iter().any(|output| output == name) {
                return Err(InspectionError::Dataset(format!(
                    "{} has no `{name}` output (its outputs: {}); an anomalib export has pred_score and anomaly_map",
                    path.display(),
                    outputs.join(", ")
                )));
            }
        }
        let input_size = session.input_side().unwrap_or(DEFAULT_SIZE);
        let quantized = crate::onnx::is_quantized(&bytes);
        Ok(Self { session, path: path.to_owned(), input_size, quantized, _runtime: runtime })
    }

    /// Whether the file is an anomalib export rather than a model `edgeway vision fit` wrote: an
    /// ONNX graph with anomalib's score output (read from the file, no session built).
    pub fn is_anomalib(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|bytes| crate::onnx::has_output(&bytes, PRED_SCORE))
    }

    /// The side images are fitted to; anomaly maps have this size.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// Whether the graph runs quantized.
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// ImageNet's normalisation at the model's input size.
    pub fn preprocessing(&self) -> Preprocessing {
        Preprocessing { resize_shorter_to: self.input_size, crop: self.input_size, ..LITE0 }
    }

    /// Each image's score and anomaly map (`input_size²`).
    pub fn infer(&mut self, images: &[RgbImage]) -> Result<Vec<(f32, Array2<f32>)>, InspectionError> {
        let outputs = self.session.run(&self.preprocessing().batch(images))?;
        let missing = |name: &'static str| InspectionError::MissingOutput(self.path.display().to_string(), name);
        let scores = outputs.get(PRED_SCORE).ok_or_else(|| missing(PRED_SCORE))?;
        let maps = outputs.get(ANOMALY_MAP).ok_or_else(|| missing(ANOMALY_MAP))?;
        let maps = match maps.ndim() {
            4 => {
                maps.clone().into_dimensionality::<Ix4>().map_err(|_| missing(ANOMALY_MAP))?.index_axis_move(Axis(1), 0)
            }
            _ => maps.clone().into_dimensionality::<Ix3>().map_err(|_| missing(ANOMALY_MAP))?,
        };
        let scores: Vec<f32> = scores.iter().copied().collect();
        if scores.len() != images.len() || maps.len_of(Axis(0)) != images.len() {
            return Err(InspectionError::Dataset(format!(
                "{} answered {} scores and {} maps for {} images",
                self.path.display(),
                scores.len(),
                maps.len_of(Axis(0)),
                images.len()
            )));
        }
        Ok(scores.into_iter().zip(maps.outer_iter()).map(|(score, map)| (score, map.to_owned())).collect())
    }
}
