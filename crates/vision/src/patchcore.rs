//! PatchCore-style anomaly detection: a memory bank of good patch features,
//! nearest-neighbour distance as the anomaly score.
//!
//! A patch feature joins the backbone's two levels at one stride-8 position:
//! the stride-8 map's 40 channels and the stride-16 map's 112, upsampled
//! (bilinear) to stride 8; each map may first be averaged over 3×3
//! neighbourhoods, as PatchCore does, so a patch also sees its surroundings.
//! Fitting keeps a greedy k-center coreset of every good patch ([`crate::coreset`]).
//! A patch's score is its Euclidean distance to the nearest kept patch; an
//! image's score is its highest patch score, and its map is the patch scores
//! upsampled to the input size and smoothed with a Gaussian.
//!
//! The model file is a small binary: a magic line, a JSON header (the
//! backbone, the settings, the threshold and how it was chosen) and the bank
//! as little-endian `f32` rows. It is read back with every size checked, so a
//! truncated or foreign file is an error, not a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{s, Array2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use crate::anomaly_map::{gaussian_blur, resize_bilinear};
use crate::coreset::greedy_coreset;

/// The first bytes of a model file.
pub const MAGIC: &[u8; 16] = b"EDGEWAY-PATCHCO\n";
/// The file format's version.
pub const FORMAT_VERSION: u32 = 1;
/// The largest input side a model file may name.
pub const MAX_INPUT_SIZE: u32 = 4096;
/// The widest map smoothing a model file may name (pixels).
pub const MAX_SIGMA: f32 = 64.0;

/// Why a model could not be fitted, used, written or read.
#[derive(Debug, thiserror::Error)]
pub enum PatchCoreError {
    /// Feature maps or grids whose shapes do not fit together or with the model.
    #[error("feature shapes do not match: {0}")]
    Shape(String),
    /// Nothing to fit from.
    #[error("no good patches to fit a memory bank from")]
    Empty,
    /// A model file could not be read or written.
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The bytes are not a model this build can read.
    #[error("{what} is not an edgeway PatchCore model: {reason}")]
    Format {
        /// The file, or "the model" for bytes.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How patches are made and the bank is kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PatchCoreConfig {
    /// Each feature map is averaged over `n × n` neighbourhoods first (1: not at all; PatchCore uses 3).
    pub neighbourhood: usize,
    /// The fraction of good patches the coreset keeps (PatchCore uses 1–10 %)…
    pub coreset_ratio: f32,
    /// …but never fewer rows than this (or all of them), so a small set of good images still
    /// makes a bank that covers them.
    #[serde(default)]
    pub coreset_min_rows: usize,
    /// Coreset distances are measured in a random projection to this many dimensions (0: none).
    pub projection_dims: usize,
    /// Seeds the coreset's first pick and its projection.
    pub seed: u64,
    /// The anomaly map's Gaussian smoothing, in input pixels (PatchCore uses 4).
    pub sigma: f32,
}

impl Default for PatchCoreConfig {
    fn default() -> Self {
        Self { neighbourhood: 3, coreset_ratio: 0.01, coreset_min_rows: 1000, projection_dims: 64, seed: 0, sigma: 4.0 }
    }
}

/// One image's patch features: `height × width` positions, one row each (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchGrid {
    /// Positions down.
    pub height: usize,
    /// Positions across.
    pub width: usize,
    /// `[height × width, dims]`.
    pub features: Array2<f32>,
}

/// Each channel of `map` (`[C, H, W]`) averaged over `n × n` neighbourhoods,
/// counting only positions inside the map (so edges are not darkened).
fn average_pool(map: ArrayView3<f32>, n: usize) -> ndarray::Array3<f32> {
    if n <= 1 {
        return map.to_owned();
    }
    let (c, h, w) = map.dim();
    let r = (n / 2) as isize;
    let mut out = ndarray::Array3::<f32>::zeros((c, h, w));
    for y in 0..h as isize {
        let (y0, y1) = ((y - r).max(0) as usize, ((y + r) as usize).min(h - 1));
        for x in 0..w as isize {
            let (x0, x1) = ((x - r).max(0) as usize, ((x + r) as usize).min(w - 1));
            let count = ((y1 - y0 + 1) * (x1 - x0 + 1)) as f32;
            let window = map.slice(s![.., y0..=y1, x0..=x1]);
            for (ch, plane) in window.axis_iter(Axis(0)).enumerate() {
                out[[ch, y as usize, x as usize]] = plane.sum() / count;
            }
        }
    }
    out
}

/// The patch features of one image from its stride-8 (`[C8, H, W]`) and
/// stride-16 (`[C16, H', W']`) maps: both pooled over `neighbourhood`, the
/// second upsampled to `H × W`, then joined per position (`C8 + C16` dims).
pub fn patch_features(
    stride8: ArrayView3<f32>,
    stride16: ArrayView3<f32>,
    neighbourhood: usize,
) -> Result<PatchGrid, PatchCoreError> {
    let (c8, h, w) = stride8.dim();
    let (c16, h16, w16) = stride16.dim();
    if [c8, h, w, c16, h16, w16].contains(&0) {
        return Err(PatchCoreError::Shape(format!("empty feature map: [{c8}, {h}, {w}] and [{c16}, {h16}, {w16}]")));
    }
    if h16 > h || w16 > w {
        return Err(PatchCoreError::Shape(format!(
            "the coarse map ({h16}×{w16}) is larger than the fine one ({h}×{w})"
        )));
    }
    let fine = average_pool(stride8, neighbourhood);
    let coarse = average_pool(stride16, neighbourhood);
    let mut features = Array2::<f32>::zeros((h * w, c8 + c16));
    for (ch, plane) in fine.axis_iter(Axis(0)).enumerate() {
        for ((y, x), &v) in plane.indexed_iter() {
            features[[y * w + x, ch]] = v;
        }
    }
    for (ch, plane) in coarse.axis_iter(Axis(0)).enumerate() {
        let up = resize_bilinear(plane, h, w);
        for ((y, x), &v) in up.indexed_iter() {
            features[[y * w + x, c8 + ch]] = v;
        }
    }
    Ok(PatchGrid { height: h, width: w, features })
}

/// The kept good patches, with their squared norms for fast distances.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBank {
    features: Array2<f32>,
    norms: Vec<f32>,
}

impl MemoryBank {
    /// A bank holding exactly these rows.
    pub fn new(features: Array2<f32>) -> Self {
        let norms = features.axis_iter(Axis(0)).map(|row| row.dot(&row)).collect();
        Self { features, norms }
    }

    /// The coreset of every patch of `grids` (all must have the same dims).
    pub fn fit(grids: &[PatchGrid], config: &PatchCoreConfig) -> Result<Self, PatchCoreError> {
        let dims = grids.first().map(|g| g.features.ncols()).ok_or(PatchCoreError::Empty)?;
        if let Some(other) = grids.iter().find(|g| g.features.ncols() != dims) {
            return Err(PatchCoreError::Shape(format!("{} dims after {dims}", other.features.ncols())));
        }
        let views: Vec<_> = grids.iter().map(|g| g.features.view()).collect();
        let all = ndarray::concatenate(Axis(0), &views).map_err(|e| PatchCoreError::Shape(e.to_string()))?;
        if all.nrows() == 0 {
            return Err(PatchCoreError::Empty);
        }
        let ratio = if config.coreset_ratio.is_finite() { config.coreset_ratio.clamp(0.0, 1.0) } else { 1.0 };
        let k = ((all.nrows() as f64 * f64::from(ratio)).ceil() as usize)
            .max(config.coreset_min_rows)
            .clamp(1, all.nrows());
        let chosen = greedy_coreset(all.view(), k, config.projection_dims, config.seed);
        Ok(Self::new(all.select(Axis(0), &chosen)))
    }

    /// The kept patches, `[rows, dims]`.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// Each row of `queries`' Euclidean distance to its nearest kept patch.
    pub fn nearest_distances(&self, queries: &Array2<f32>) -> Result<Vec<f32>, PatchCoreError> {
        if queries.ncols() != self.features.ncols() {
            return Err(PatchCoreError::Shape(format!(
                "patches have {} dims, the bank {}",
                queries.ncols(),
                self.features.ncols()
            )));
        }
        let mut best = vec![f32::INFINITY; queries.nrows()];
        let query_norms: Vec<f32> = queries.axis_iter(Axis(0)).map(|row| row.dot(&row)).collect();
        // In chunks of the bank, so the distance matrix stays small.
        const CHUNK: usize = 4096;
        for start in (0..self.features.nrows()).step_by(CHUNK) {
            let end = (start + CHUNK).min(self.features.nrows());
            let dots = queries.dot(&self.features.slice(s![start..end, ..]).t());
            for (q, row) in dots.axis_iter(Axis(0)).enumerate() {
                for (j, &dot) in row.iter().enumerate() {
                    let d = query_norms[q] + self.norms[start + j] - 2.0 * dot;
                    if d < best[q] {
                        best[q] = d;
                    }
                }
            }
        }
        Ok(best.into_iter().map(|d| d.max(0.0).sqrt()).collect())
    }
}

/// The backbone a model's features came from: its features are only comparable with the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneInfo {
    /// Its name, e.g. `efficientnet-lite0`.
    pub name: String,
    /// SHA-256 of its ONNX file (hex).
    pub sha256: String,
    /// The square input size images are resized and cropped to.
    pub input_size: u32,
}

/// The decision threshold on image scores and how it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// An image scoring above this is flagged.
    pub value: f32,
    /// How `value` was chosen, in words.
    pub rule: String,
    /// The held-out good images' scores it was chosen on.
    pub held_out_scores: Vec<f32>,
}

impl Threshold {
    /// The threshold for a stated false-reject rate on good parts: the held-out good scores'
    /// `1 − rate` quantile (nearest rank) times `1 + margin`; a rate of 0 is
    /// [`Threshold::from_held_out`]. With `n` held-out images no rate below `1/n` can be told
    /// from 0, and the rule says so. `None` without scores or for a rate outside [0, 1).
    pub fn for_false_reject_rate(scores: &[f32], rate: f64, margin: f32) -> Option<Self> {
        if rate == 0.0 {
            return Self::from_held_out(scores, margin);
        }
        if !(0.0..1.0).contains(&rate) {
            return None;
        }
        let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        let rank = (((1.0 - rate) * n as f64).ceil() as usize).clamp(1, n);
        let quantile = sorted[rank - 1];
        let resolution = if rate < 1.0 / n as f64 {
            format!("; with {n} held-out images no rate below {:.1} % can be set, so this is the max", 100.0 / n as f64)
        } else {
            String::new()
        };
        Some(Self {
            value: quantile * (1.0 + margin),
            rule: format!(
                "the {:.1} % quantile of {n} held-out good image scores ({quantile:.4}) × (1 + {margin}): a {:.1} % \
                 false-reject rate on good parts{resolution}",
                (1.0 - rate) * 100.0,
                rate * 100.0
            ),
            held_out_scores: scores.to_vec(),
        })
    }

    /// The highest held-out good score times `1 + margin`: no held-out good
    /// image is rejected, and the margin absorbs some of the spread a small
    /// held-out set does not show. `None` without scores.
    pub fn from_held_out(scores: &[f32], margin: f32) -> Option<Self> {
        let max = scores.iter().copied().filter(|s| s.is_finite()).reduce(f32::max)?;
        Some(Self {
            value: max * (1.0 + margin),
            rule: format!(
                "max of {} held-out good image scores ({max:.4}) × (1 + {margin}): 0 % false rejects on the held-out images",
                scores.len()
            ),
            held_out_scores: scores.to_vec(),
        })
    }
}

/// One image's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The highest patch score.
    pub score: f32,
    /// Whether `score` is above the threshold.
    pub anomalous: bool,
    /// Per-pixel scores at the input size, smoothed.
    pub map: Array2<f32>,
}

/// A fitted model: the bank and everything needed to use it the same way again.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCoreModel {
    /// The backbone the bank was made with.
    pub backbone: BackboneInfo,
    /// The settings it was fitted with.
    pub config: PatchCoreConfig,
    /// The patch grid of one image (`height`, `width`).
    pub grid: (usize, usize),
    /// How many patches the coreset was chosen from.
    pub patches_seen: usize,
    /// How many good images were fitted (not counting the held-out ones).
    pub images_fitted: usize,
    /// The kept patches.
    pub bank: MemoryBank,
    /// The decision threshold.
    pub threshold: Threshold,
}

#[derive(Serialize, Deserialize)]
struct Header {
    backbone: BackboneInfo,
    config: PatchCoreConfig,
    grid: (usize, usize),
    patches_seen: usize,
    images_fitted: usize,
    threshold: Threshold,
    bank_rows: usize,
    bank_dims: usize,
}

impl PatchCoreModel {
    /// The patch scores of one image's grid, `[height, width]`.
    pub fn patch_scores(&self, grid: &PatchGrid) -> Result<Array2<f32>, PatchCoreError> {
        if (grid.height, grid.width) != self.grid || grid.features.nrows() != grid.height * grid.width {
            return Err(PatchCoreError::Shape(format!(
                "a {}×{} patch grid, the model was fitted on {}×{}",
                grid.height, grid.width, self.grid.0, self.grid.1
            )));
        }
        let distances = self.bank.nearest_distances(&grid.features)?;
        Array2::from_shape_vec((grid.height, grid.width), distances).map_err(|e| PatchCoreError::Shape(e.to_string()))
    }

    /// Whether an image with this score is flagged: above the threshold.
    pub fn is_anomalous(&self, score: f32) -> bool {
        score > self.threshold.value
    }

    /// One image's score alone (the highest patch score), without its map.
    pub fn image_score(&self, grid: &PatchGrid) -> Result<f32, PatchCoreError> {
        Ok(self.patch_scores(grid)?.iter().copied().fold(f32::NEG_INFINITY, f32::max))
    }

    /// Scores one image: its score (the highest patch score), the verdict at
    /// the threshold, and its map at the input size, smoothed.
    pub fn inspect(&self, grid: &PatchGrid) -> Result<Inspection, PatchCoreError> {
        let scores = self.patch_scores(grid)?;
        let score = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let size = self.backbone.input_size as usize;
        let map = gaussian_blur(resize_bilinear(scores.view(), size, size).view(), self.config.sigma);
        Ok(Inspection { score, anomalous: self.is_anomalous(score), map })
    }

    /// The model as bytes (see the module's documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            backbone: self.backbone.clone(),
            config: self.config,
            grid: self.grid,
            patches_seen: self.patches_seen,
            images_fitted: self.images_fitted,
            threshold: self.threshold.clone(),
            bank_rows: self.bank.features.nrows(),
            bank_dims: self.bank.features.ncols(),
        };
        let json = serde_json::to_vec_pretty(&header).unwrap_or_default();
        let mut bytes = Vec::with_capacity(MAGIC.len() + 12 + json.len() + self.bank.features.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        for v in self.bank.features.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    /// Reads a model from bytes; `what` names them in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, PatchCoreError> {
        let format = |reason: String| PatchCoreError::Format { what: what.to_owned(), reason };
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| format("it does not start with the model's magic bytes".into()))?;
        if rest.len() < 12 {
            return Err(format("it ends inside its header".into()));
        }
        let version = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default());
        if version != FORMAT_VERSION {
            return Err(format(format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        let json_len = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
        let rest = &rest[12..];
        let json_len = usize::try_from(json_len)
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| format("it ends inside its header".into()))?;
        let header: Header =
            serde_json::from_slice(&rest[..json_len]).map_err(|e| format(format!("its header is not valid: {e}")))?;
        let data = &rest[json_len..];
        let expected = header.bank_rows.checked_mul(header.bank_dims).and_then(|n| n.checked_mul(4));
        if expected != Some(data.len()) {
            return Err(format(format!(
                "the header says {} × {} floats, the file holds {} bytes of them (truncated?)",
                header.bank_rows,
                header.bank_dims,
                data.len()
            )));
        }
        if header.bank_rows == 0 || header.grid.0 == 0 || header.grid.1 == 0 || header.backbone.input_size == 0 {
            return Err(format("its bank or grid is empty".into()));
        }
        // Bounds that keep a damaged header from asking for absurd allocations.
        if header.backbone.input_size > MAX_INPUT_SIZE
            || header.grid.0.max(header.grid.1) > MAX_INPUT_SIZE as usize
            || !(0.0..=MAX_SIGMA).contains(&header.config.sigma)
        {
            return Err(format(format!(
                "input size {}, grid {}×{} or sigma {} is out of range",
                header.backbone.input_size, header.grid.0, header.grid.1, header.config.sigma
            )));
        }
        let values: Vec<f32> = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let features =
            Array2::from_shape_vec((header.bank_rows, header.bank_dims), values).map_err(|e| format(e.to_string()))?;
        Ok(Self {
            backbone: header.backbone,
            config: header.config,
            grid: header.grid,
            patches_seen: header.patches_seen,
            images_fitted: header.images_fitted,
            bank: MemoryBank::new(features),
            threshold: header.threshold,
        })
    }

    /// Writes the model to `path` (through a `.partial` file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), PatchCoreError> {
        let io = |error| PatchCoreError::Io { action: "write", path: path.to_owned(), error };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let partial = path.with_extension("partial");
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        file.write_all(&self.to_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, PatchCoreError> {
        let bytes =
            std::fs::read(path).map_err(|error| PatchCoreError::Io { action: "read", path: path.to_owned(), error })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coreset::SplitMix64;
    use ndarray::Array3;

    /// Smooth "good" feature maps: every position a small wobble around a pattern.
    fn good_maps(rng: &mut SplitMix64) -> (Array3<f32>, Array3<f32>) {
        let mut noise = || (rng.next_u64() % 1000) as f32 / 1000.0 * 0.1;
        let fine = Array3::from_shape_fn((4, 8, 8), |(c, y, x)| ((c + y + x) % 3) as f32 + noise());
        let coarse = Array3::from_shape_fn((6, 4, 4), |(c, y, x)| ((c * y + x) % 2) as f32 + noise());
        (fine, coarse)
    }

    fn model(config: PatchCoreConfig) -> PatchCoreModel {
        let mut rng = SplitMix64::new(1);
        let grids: Vec<PatchGrid> = (0..6)
            .map(|_| {
                let (fine, coarse) = good_maps(&mut rng);
                patch_features(fine.view(), coarse.view(), config.neighbourhood).unwrap()
            })
            .collect();
        let bank = MemoryBank::fit(&grids, &config).unwrap();
        PatchCoreModel {
            backbone: BackboneInfo { name: "test".into(), sha256: "00".into(), input_size: 64 },
            config,
            grid: (8, 8),
            patches_seen: 6 * 64,
            images_fitted: 6,
            bank,
            threshold: Threshold::from_held_out(&[1.0, 1.5], 0.1).unwrap(),
        }
    }

    #[test]
    fn patch_features_join_both_levels() {
        let fine = Array3::from_shape_fn((2, 4, 6), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
        let coarse = Array3::from_elem((3, 2, 3), 7.0f32);
        let grid = patch_features(fine.view(), coarse.view(), 1).unwrap();
        assert_eq!((grid.height, grid.width, grid.features.dim()), (4, 6, (24, 5)));
        assert_eq!(grid.features.row(6 + 2).to_vec(), vec![12.0, 112.0, 7.0, 7.0, 7.0]);
        let pooled = patch_features(fine.view(), coarse.view(), 3).unwrap();
        // The corner averages its 2×2 neighbourhood: (0 + 1 + 10 + 11) / 4.
        assert_eq!(pooled.features[[0, 0]], 5.5);
        assert!(patch_features(coarse.view(), fine.view(), 1).is_err(), "the coarse map must be the smaller one");
    }

    #[test]
    fn the_coreset_keeps_at_least_its_floor_and_at_most_everything() {
        let floor = |ratio, min_rows| {
            let config =
                PatchCoreConfig { coreset_ratio: ratio, coreset_min_rows: min_rows, ..PatchCoreConfig::default() };
            model(config).bank.features().nrows()
        };
        assert_eq!(floor(0.01, 0), 4, "1 % of 384 patches");
        assert_eq!(floor(0.01, 50), 50);
        assert_eq!(floor(0.01, 1000), 384, "never more than there are");
    }

    #[test]
    fn a_far_away_patch_scores_highest_and_the_map_has_the_input_size() {
        let model = model(PatchCoreConfig { coreset_ratio: 0.25, coreset_min_rows: 0, ..PatchCoreConfig::default() });
        assert_eq!(model.bank.features().nrows(), 96);
        let mut rng = SplitMix64::new(99);
        let (mut fine, coarse) = good_maps(&mut rng);
        let good = model.inspect(&patch_features(fine.view(), coarse.view(), 3).unwrap()).unwrap();
        fine[[1, 5, 2]] += 25.0;
        let grid = patch_features(fine.view(), coarse.view(), 3).unwrap();
        let scores = model.patch_scores(&grid).unwrap();
        let (argmax, _) = scores.indexed_iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, v)| (i, *v)).unwrap();
        assert_eq!(argmax, (5, 2));
        let bad = model.inspect(&grid).unwrap();
        assert!(bad.score > good.score * 3.0, "{} vs {}", bad.score, good.score);
        assert!(bad.anomalous && !good.anomalous, "{} / {} at {}", bad.score, good.score, model.threshold.value);
        assert_eq!(bad.map.dim(), (64, 64));
        // The map's peak is where the defect is: patch (5, 2) covers pixels y 40..48, x 16..24.
        let ((y, x), _) = bad.map.indexed_iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert!((36..52).contains(&y) && (12..28).contains(&x), "peak at {y}, {x}");
        let other = PatchGrid { height: 4, width: 4, features: Array2::zeros((16, 10)) };
        assert!(matches!(model.inspect(&other), Err(PatchCoreError::Shape(_))));
    }

    #[test]
    fn models_round_trip_and_bad_files_are_errors() {
        let model = model(PatchCoreConfig::default());
        let bytes = model.to_bytes();
        assert_eq!(PatchCoreModel::from_bytes(&bytes, "m").unwrap(), model);
        for cut in [0, 10, MAGIC.len() + 5, MAGIC.len() + 40, bytes.len() - 1] {
            let error = PatchCoreModel::from_bytes(&bytes[..cut], "m.bin").unwrap_err();
            assert!(error.to_string().starts_with("m.bin is not an edgeway PatchCore model"), "{error}");
        }
        let mut huge = model.clone();
        huge.backbone.input_size = 1 << 30;
        let error = PatchCoreModel::from_bytes(&huge.to_bytes(), "m").unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
        let error = PatchCoreModel::from_bytes(b"\x89PNG\r\n\x1a\n", "x.png").unwrap_err();
        assert!(error.to_string().contains("magic"), "{error}");
        let dir = std::env::temp_dir().join(format!("edgeway-patchcore-{}", std::process::id()));
        let path = dir.join("model.patchcore");
        model.save(&path).unwrap();
        assert_eq!(PatchCoreModel::load(&path).unwrap(), model);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(PatchCoreModel::load(&path), Err(PatchCoreError::Io { .. })));
    }

    #[test]
    fn threshold_from_held_out_scores() {
        let t = Threshold::from_held_out(&[0.5, 2.0, 1.0], 0.1).unwrap();
        assert!((t.value - 2.2).abs() < 1e-6 && t.rule.contains("max of 3"), "{t:?}");
        assert!(Threshold::from_held_out(&[], 0.1).is_none());
        // Ten scores 1..=10: a 20 % false-reject rate puts the threshold at the 8th.
        let scores: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let t = Threshold::for_false_reject_rate(&scores, 0.2, 0.0).unwrap();
        assert_eq!(t.value, 8.0, "{t:?}");
        assert_eq!(scores.iter().filter(|&&s| s > t.value).count(), 2, "two of ten rejected");
        let fine = Threshold::for_false_reject_rate(&scores, 0.01, 0.0).unwrap();
        assert!(fine.value == 10.0 && fine.rule.contains("no rate below 10.0 %"), "{fine:?}");
        assert_eq!(Threshold::for_false_reject_rate(&scores, 0.0, 0.1), Threshold::from_held_out(&scores, 0.1));
        assert!(Threshold::for_false_reject_rate(&scores, 1.0, 0.0).is_none());
        assert!(MemoryBank::fit(&[], &PatchCoreConfig::default()).is_err());
    }
}
