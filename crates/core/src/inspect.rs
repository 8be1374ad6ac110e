//! The [`Inspector`] trait: anything that judges an image of a part good or
//! defective, with the score it gave and, when asked, where it looked wrong.
//!
//! The HTTP layer (`/v1/inspect`, the KServe v2 `/v2/models/{name}/infer`)
//! sends encoded image bytes and gets a [`Verdict`]; decoding, batching and the
//! model live behind the trait (`crates/vision`).

use crate::backend::BackendError;

/// The number format a model's weights and activations run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floating point: the reference.
    Fp32,
    /// 8-bit integers (static, per-channel QDQ).
    Int8,
}

impl Precision {
    /// The name used on the wire and in the query log: `fp32` or `int8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

/// Static facts about an inspection model.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectorInfo {
    /// The name clients use (`/v2/models/{id}`, `?model=`).
    pub id: String,
    /// The backbone's precision.
    pub precision: Precision,
    /// An image scoring above this is defective.
    pub threshold: f32,
    /// Images are resized and cropped to `input_size × input_size`; anomaly maps have this size.
    pub input_size: u32,
    /// The backbone's name (its file or catalogue name).
    pub backbone: String,
}

/// The verdict on one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    /// At or below the threshold.
    Good,
    /// Above the threshold.
    Defective,
}

impl Label {
    /// `good` or `defective`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Label::Good => "good",
            Label::Defective => "defective",
        }
    }
}

/// What a caller wants besides the score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// The per-pixel anomaly scores ([`Verdict::map`]).
    pub map: bool,
    /// The image with its heat map drawn over it, as PNG ([`Verdict::heatmap_png`]).
    pub heatmap_png: bool,
}

/// One image's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The image's anomaly score (the highest patch score).
    pub score: f32,
    /// The score against the threshold.
    pub label: Label,
    /// Per-pixel scores, row-major, `input_size × input_size`, when asked for.
    pub map: Option<Vec<f32>>,
    /// The heat-map picture, when asked for.
    pub heatmap_png: Option<Vec<u8>>,
    /// Images that shared this one's backbone run (micro-batching), this one included.
    pub batch_size: usize,
    /// Energy this image's share of the work used, in joules, and how it was measured.
    pub energy_j: Option<f64>,
}

/// A source of inspection verdicts.
///
/// `inspect` blocks until the image is judged: call it from a blocking thread.
/// A bad image is [`BackendError::InvalidRequest`] (400), a full queue
/// [`BackendError::QueueFull`] (503).
pub trait Inspector: Send + Sync + 'static {
    /// What this model is.
    fn info(&self) -> &InspectorInfo;

    /// Decodes `image` (PNG or JPEG bytes) and judges it.
    fn inspect(&self, image: &[u8], options: InspectOptions) -> Result<Verdict, BackendError>;

    /// How the energy figures are measured (`cpu-time-model`), for the query log.
    fn energy_source(&self) -> &'static str {
        "cpu-time-model"
    }
}
