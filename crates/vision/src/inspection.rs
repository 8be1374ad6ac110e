//! Inspection end to end: images through the backbone into patch features,
//! fitting a [`PatchCoreModel`] from a folder of good images, and evaluating
//! one on an MVTec-AD-layout folder.
//!
//! An MVTec-AD category holds `test/good/*.png`, `test/<defect>/*.png` and,
//! for each defective image, `ground_truth/<defect>/<name>_mask.png` (white
//! where the defect is). Masks go through the same resize and crop as their
//! images, so pixel scores and labels line up.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array4, Ix4};

use crate::anomaly_map::overlay;
use crate::lite0::{FEATURES_STRIDE16, FEATURES_STRIDE8};
use crate::metrics::{auroc, Confusion};
use crate::patchcore::{
    patch_features, BackboneInfo, MemoryBank, PatchCoreConfig, PatchCoreError, PatchCoreModel, PatchGrid, Threshold,
};
use crate::preprocess::{self, ImageError, Preprocessing, LITE0};
use crate::runtime::{Runtime, RuntimeError, VisionSession};

/// Images per backbone run: enough to amortise a run's overhead, small enough to keep memory low.
const BATCH: usize = 8;

/// Why fitting or evaluating failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectionError {
    /// ONNX Runtime could not load or run the backbone.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An image could not be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The model could not be fitted, read or used.
    #[error(transparent)]
    PatchCore(#[from] PatchCoreError),
    /// A folder could not be listed or a picture written.
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The backbone lacks an output the detector needs.
    #[error("the backbone {0} has no `{1}` output; convert it with `edgeway vision convert`")]
    MissingOutput(String, &'static str),
    /// The folders do not hold what is needed.
    #[error("{0}")]
    Dataset(String),
    /// The model was fitted on another backbone's features.
    #[error("the model was fitted with backbone {expected} (sha256 {expected_sha}), not {given} (sha256 {given_sha}); refit it or pass that backbone")]
    BackboneMismatch {
        /// The model's backbone.
        expected: String,
        /// Its hash.
        expected_sha: String,
        /// The backbone given.
        given: String,
        /// Its hash.
        given_sha: String,
    },
}

/// The backbone as a feature extractor.
#[derive(Debug)]
pub struct Backbone {
    // Declared before the runtime, so the session is dropped first.
    session: VisionSession,
    info: BackboneInfo,
    path: PathBuf,
    quantized: bool,
    /// The FP32 model this one was quantized from (its own hash when it was not).
    source_sha256: String,
    _runtime: Runtime,
}

impl Backbone {
    /// Opens the ONNX backbone at `path` (named `name`) for `input_size`² images; it keeps the runtime.
    pub fn open(runtime: Runtime, path: &Path, name: &str, input_size: u32) -> Result<Self, InspectionError> {
        let bytes = std::fs::read(path).map_err(|error| RuntimeError::ReadModel { path: path.to_owned(), error })?;
        let sha256 = crate::quantize::hex_sha256(&bytes);
        let session = runtime.session_from_bytes(&bytes)?;
        let source_sha256 = crate::quantize::source_sha256(&bytes).unwrap_or_else(|| sha256.clone());
        let info = BackboneInfo { name: name.to_owned(), sha256, input_size };
        let quantized = crate::onnx::is_quantized(&bytes);
        Ok(Self { session, info, path: path.to_owned(), quantized, source_sha256, _runtime: runtime })
    }

    /// Whether the backbone runs quantized (INT8 QDQ or integer operators).
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// What the model file will record about this backbone.
    pub fn info(&self) -> &BackboneInfo {
        &self.info
    }

    /// Fails unless `model` was fitted on this backbone's features, or on those of the FP32
    /// model this one was quantized from.
    pub fn check_model(&self, model: &PatchCoreModel) -> Result<(), InspectionError> {
        if self.info.sha256 == model.backbone.sha256 || self.source_sha256 == model.backbone.sha256 {
            return Ok(());
        }
        Err(InspectionError::BackboneMismatch {
            expected: model.backbone.name.clone(),
            expected_sha: model.backbone.sha256.clone(),
            given: self.path.display().to_string(),
            given_sha: self.info.sha256.clone(),
        })
    }

    /// The preprocessing for this input size (EfficientNet-Lite0's normalisation).
    pub fn preprocessing(&self) -> Preprocessing {
        Preprocessing { resize_shorter_to: self.info.input_size, crop: self.info.input_size, ..LITE0 }
    }

    /// The patch features of each image.
    pub fn patch_grids(
        &mut self,
        images: &[RgbImage],
        neighbourhood: usize,
    ) -> Result<Vec<PatchGrid>, InspectionError> {
        let preprocessing = self.preprocessing();
        let mut grids = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let outputs = self.session.run(&preprocessing.batch(chunk))?;
            let level = |name: &'static str| -> Result<Array4<f32>, InspectionError> {
                let missing = || InspectionError::MissingOutput(self.path.display().to_string(), name);
                outputs.get(name).ok_or_else(missing)?.clone().into_dimensionality::<Ix4>().map_err(|_| missing())
            };
            let (fine, coarse) = (level(FEATURES_STRIDE8)?, level(FEATURES_STRIDE16)?);
            for n in 0..chunk.len() {
                grids.push(patch_features(
                    fine.index_axis(ndarray::Axis(0), n),
                    coarse.index_axis(ndarray::Axis(0), n),
                    neighbourhood,
                )?);
            }
        }
        Ok(grids)
    }
}

/// A fitted model on its backbone as a score-only oracle, for the attacks ([`crate::attack`]).
pub struct ModelOracle<'a> {
    /// The backbone (already checked against the model).
    pub backbone: &'a mut Backbone,
    /// The detector.
    pub model: &'a PatchCoreModel,
    /// Images scored so far.
    pub queries: usize,
}

impl crate::attack::ScoreOracle for ModelOracle<'_> {
    fn scores(&mut self, images: &[RgbImage]) -> Result<Vec<f32>, String> {
        self.queries += images.len();
        let grids = self.backbone.patch_grids(images, self.model.config.neighbourhood).map_err(|e| e.to_string())?;
        grids.iter().map(|g| self.model.image_score(g).map_err(|e| e.to_string())).collect()
    }
}

/// The PNG and JPEG files in `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, InspectionError> {
    let io =
        |error: std::io::Error| InspectionError::Io { action: "list", path: dir.to_owned(), error: error.to_string() };
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    images.sort();
    Ok(images)
}

/// How a model is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Patch and bank settings.
    pub config: PatchCoreConfig,
    /// Every `n`-th good image (by name) is held out to choose the threshold, not fitted.
    pub hold_out_every: usize,
    /// The threshold is the highest held-out score times `1 + margin`.
    pub margin: f32,
    /// The false-reject rate on good parts the threshold is set for (0: none of the held-out ones).
    pub false_reject_rate: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { config: PatchCoreConfig::default(), hold_out_every: 5, margin: 0.1, false_reject_rate: 0.0 }
    }
}

/// Fits a model from good images: every `hold_out_every`-th one is held out,
/// the others make the bank, and the held-out ones' scores set the threshold
/// ([`Threshold::from_held_out`]).
pub fn fit(backbone: &mut Backbone, good: &[PathBuf], options: &FitOptions) -> Result<PatchCoreModel, InspectionError> {
    let every = options.hold_out_every.max(2);
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (i, path) in good.iter().enumerate() {
        if i % every == every - 1 {
            held_out.push(path)
        } else {
            train.push(path)
        }
    }
    if train.is_empty() || held_out.is_empty() {
        return Err(InspectionError::Dataset(format!(
            "{} good images: at least {every} are needed (every {every}th is held out to choose the threshold)",
            good.len()
        )));
    }
    let load = |set: &[&PathBuf]| set.iter().map(|p| preprocess::load(p)).collect::<Result<Vec<_>, _>>();
    let (train_images, held_out_images) = (load(&train)?, load(&held_out)?);
    let neighbourhood = options.config.neighbourhood;
    let grids = backbone.patch_grids(&train_images, neighbourhood)?;
    let grid = (grids[0].height, grids[0].width);
    let patches_seen = grids.iter().map(|g| g.features.nrows()).sum();
    let bank = MemoryBank::fit(&grids, &options.config)?;
    drop(grids);
    let mut model = PatchCoreModel {
        backbone: backbone.info().clone(),
        config: options.config,
        grid,
        patches_seen,
        images_fitted: train.len(),
        bank,
        threshold: Threshold { value: f32::INFINITY, rule: String::new(), held_out_scores: Vec::new() },
    };
    let held_out_grids = backbone.patch_grids(&held_out_images, neighbourhood)?;
    let scores = held_out_grids
        .iter()
        .map(|g| model.inspect(g).map(|inspection| inspection.score))
        .collect::<Result<Vec<_>, _>>()?;
    model.threshold = Threshold::for_false_reject_rate(&scores, options.false_reject_rate, options.margin)
        .ok_or_else(|| InspectionError::Dataset("the held-out images gave no finite score".into()))?;
    Ok(model)
}

/// One test image's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    /// The file.
    pub path: PathBuf,
    /// `good` or the defect's folder name.
    pub category: String,
    /// The image score.
    pub score: f32,
    /// Flagged at the threshold.
    pub anomalous: bool,
    /// Whether a ground-truth mask was found (defective images).
    pub has_mask: bool,
}

/// An evaluation's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Every test image, good ones first, then each defect folder by name.
    pub images: Vec<ImageResult>,
    /// Image-level AUROC (defective = positive); `None` without both kinds.
    pub image_auroc: Option<f64>,
    /// Pixel-level AUROC over good images and the defective ones with masks; `None` without masks.
    pub pixel_auroc: Option<f64>,
    /// The image verdicts at the model's threshold.
    pub confusion: Confusion,
    /// The threshold used.
    pub threshold: f32,
}

/// The test images of an MVTec-AD-layout folder as `(category, path)`: `test/good/` first, then
/// each `test/<defect>/` by name, images by name. Fails unless there are good and defective ones.
pub fn test_images(dataset: &Path) -> Result<Vec<(String, PathBuf)>, InspectionError> {
    let test = dataset.join("test");
    let mut categories: Vec<String> = std::fs::read_dir(&test)
        .map_err(|error| InspectionError::Io { action: "list", path: test.clone(), error: error.to_string() })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    categories.sort_by_key(|c| (c != "good", c.clone()));
    let mut images = Vec::new();
    for category in &categories {
        images.extend(list_images(&test.join(category))?.into_iter().map(|p| (category.clone(), p)));
    }
    if !images.iter().any(|(c, _)| c == "good") || !images.iter().any(|(c, _)| c != "good") {
        return Err(InspectionError::Dataset(format!(
            "{} needs test/good/ and at least one test/<defect>/ folder of images",
            dataset.display()
        )));
    }
    Ok(images)
}

/// Scores every image of an MVTec-AD-layout folder (`test/good`,
/// `test/<defect>`, `ground_truth/<defect>/<name>_mask.png`) and, when
/// `pictures` is given, writes `pictures/<category>/<name>.png`: the image and
/// its heat map side by side.
pub fn evaluate(
    backbone: &mut Backbone,
    model: &PatchCoreModel,
    dataset: &Path,
    pictures: Option<&Path>,
) -> Result<Evaluation, InspectionError> {
    backbone.check_model(model)?;
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |error: std::io::Error| InspectionError::Io { action, path, error: error.to_string() }
    };
    let images = test_images(dataset)?;
    let preprocessing = backbone.preprocessing();
    let size = model.backbone.input_size as usize;
    let (mut results, mut pixel_scores, mut pixel_labels) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in images.chunks(BATCH) {
        let decoded = chunk.iter().map(|(_, p)| preprocess::load(p)).collect::<Result<Vec<_>, _>>()?;
        let grids = backbone.patch_grids(&decoded, model.config.neighbourhood)?;
        for (((category, path), image), grid) in chunk.iter().zip(&decoded).zip(&grids) {
            let inspection = model.inspect(grid)?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let mask = if category == "good" {
                Some(vec![false; size * size])
            } else {
                let mask_path = dataset.join("ground_truth").join(category).join(format!("{stem}_mask.png"));
                match mask_path.is_file() {
                    true => Some(
                        preprocessing
                            .fit(&preprocess::load(&mask_path)?)
                            .pixels()
                            .map(|p| p[0] >= 128)
                            .collect::<Vec<bool>>(),
                    ),
                    false => None,
                }
            };
            if let Some(mask) = &mask {
                pixel_scores.extend(inspection.map.iter().copied());
                pixel_labels.extend_from_slice(mask);
            }
            if let Some(pictures) = pictures {
                let dir = pictures.join(category);
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                let out = dir.join(format!("{stem}.png"));
                overlay(&preprocessing.fit(image), inspection.map.view(), model.threshold.value)
                    .save(&out)
                    .map_err(|e| InspectionError::Io { action: "write", path: out.clone(), error: e.to_string() })?;
            }
            results.push(ImageResult {
                path: path.clone(),
                category: category.clone(),
                score: inspection.score,
                anomalous: inspection.anomalous,
                has_mask: category != "good" && mask.is_some(),
            });
        }
    }
    let scores: Vec<f32> = results.iter().map(|r| r.score).collect();
    let defective: Vec<bool> = results.iter().map(|r| r.category != "good").collect();
    let any_mask = results.iter().any(|r| r.has_mask);
    Ok(Evaluation {
        image_auroc: auroc(&scores, &defective),
        pixel_auroc: if any_mask { auroc(&pixel_scores, &pixel_labels) } else { None },
        confusion: Confusion::at_threshold(&scores, &defective, model.threshold.value),
        threshold: model.threshold.value,
        images: results,
    })
}
