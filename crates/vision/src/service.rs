//! An inspection model behind the [`Inspector`] trait, for the server: images
//! are decoded and checked on the caller's thread, then judged by one worker
//! thread that owns the backbone and runs whatever is waiting as one batch
//! (micro-batching: under concurrent load, requests that arrive while a batch
//! runs share the next one).
//!
//! The queue is bounded: when it is full a request is refused at once
//! ([`BackendError::QueueFull`], a 503) rather than waiting without bound.

use std::io::Cursor;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use edgeway_core::inspect::{InspectOptions, Inspector, InspectorInfo, Label, Precision, Verdict};
use edgeway_core::BackendError;
use image::{ImageFormat, ImageReader, Limits, RgbImage};
use ndarray::Array2;

use crate::anomalib::AnomalibModel;
use crate::anomaly_map::overlay;
use crate::inspection::{Backbone, InspectionError};
use crate::patchcore::{PatchCoreError, PatchCoreModel, PatchGrid};
use crate::preprocess::Preprocessing;

/// Smallest side an image may have: below this there is nothing to inspect.
pub const MIN_SIDE: u32 = 16;

/// How the service batches and what it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceOptions {
    /// Most images in one backbone run.
    pub max_batch: usize,
    /// How long the worker waits for more images after the first of a batch
    /// arrives. Zero batches only what is already waiting, so a lone request
    /// never waits.
    pub max_delay: Duration,
    /// Images that may wait for the worker; more are refused with a 503.
    pub queue: usize,
    /// Largest image accepted, in pixels (width × height), checked from the
    /// header before decoding, so a decompression bomb costs nothing.
    pub max_pixels: u64,
    /// CPU threads the backbone runs on, for the energy estimate.
    pub threads: usize,
    /// Watts one busy core draws, for the energy estimate.
    pub watts_per_core: f64,
}

impl ServiceOptions {
    /// The defaults, as a constant (the CLI's flags show them).
    pub const DEFAULT: Self = Self {
        max_batch: 8,
        max_delay: Duration::ZERO,
        queue: 64,
        max_pixels: 40_000_000,
        threads: 2,
        watts_per_core: 10.0,
    };
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One image waiting for the worker.
struct Job {
    image: RgbImage,
    options: InspectOptions,
    reply: mpsc::Sender<Result<Verdict, BackendError>>,
}

/// An inspection model served by a worker thread.
pub struct InspectionService {
    info: InspectorInfo,
    preprocessing: Preprocessing,
    options: ServiceOptions,
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for InspectionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InspectionService").field("info", &self.info).field("options", &self.options).finish()
    }
}

/// What a worker runs.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per worker thread, moved once when it starts
pub enum Engine {
    /// A backbone and the PatchCore-style detector fitted on its features.
    PatchCore {
        /// The feature extractor.
        backbone: Backbone,
        /// The detector.
        model: PatchCoreModel,
    },
    /// A model anomalib exported: scores and maps come from the graph itself.
    Anomalib(AnomalibModel),
}

impl InspectionService {
    /// Starts the worker for `engine`, served as `id`. Fails when a PatchCore model was fitted
    /// on another backbone's features.
    pub fn start(id: &str, engine: Engine, options: ServiceOptions) -> Result<Self, InspectionError> {
        let (info, preprocessing) = match &engine {
            Engine::PatchCore { backbone, model } => {
                backbone.check_model(model)?;
                let info = InspectorInfo {
                    id: id.to_owned(),
                    precision: if backbone.is_quantized() { Precision::Int8 } else { Precision::Fp32 },
                    threshold: model.threshold.value,
                    input_size: model.backbone.input_size,
                    backbone: backbone.info().name.clone(),
                };
                (info, backbone.preprocessing())
            }
            Engine::Anomalib(model) => {
                let info = InspectorInfo {
                    id: id.to_owned(),
                    precision: if model.is_quantized() { Precision::Int8 } else { Precision::Fp32 },
                    threshold: crate::anomalib::THRESHOLD,
                    input_size: model.input_size(),
                    backbone: "anomalib".into(),
                };
                (info, model.preprocessing())
            }
        };
        let (jobs, queue) = mpsc::sync_channel(options.queue.max(1));
        std::thread::Builder::new()
            .name(format!("inspect-{id}"))
            .spawn(move || work(engine, queue, options))
            .map_err(|e| InspectionError::Dataset(format!("cannot start the inspection worker: {e}")))?;
        Ok(Self { info, preprocessing, options, jobs })
    }
}

impl Inspector for InspectionService {
    fn info(&self) -> &InspectorInfo {
        &self.info
    }

    fn inspect(&self, image: &[u8], options: InspectOptions) -> Result<Verdict, BackendError> {
        let image = decode_checked(image, self.options.max_pixels)?;
        let image = self.preprocessing.fit(&image);
        let (reply, answer) = mpsc::channel();
        match self.jobs.try_send(Job { image, options, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(BackendError::QueueFull { slots: 1, queued: self.options.queue as u32 });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(BackendError::Unavailable("the inspection worker has stopped".into()));
            }
        }
        answer.recv().map_err(|_| BackendError::Internal("the inspection worker stopped mid-request".into()))?
    }
}

/// Decodes PNG or JPEG bytes after checking the header: too many pixels, too
/// small, truncated or not an image are [`BackendError::InvalidRequest`] with
/// the reason.
pub fn decode_checked(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, BackendError> {
    let invalid = |message: String| BackendError::InvalidRequest(message);
    if bytes.is_empty() {
        return Err(invalid("the image is empty (0 bytes); send PNG or JPEG bytes".into()));
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| invalid(format!("cannot read the image: {e}")))
    };
    let format = reader()?.format();
    if !matches!(format, Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return Err(invalid(match format {
            Some(other) => format!("the image is {other:?}; send PNG or JPEG"),
            None => "the body is not a PNG or JPEG image".to_owned(),
        }));
    }
    let (width, height) =
        reader()?.into_dimensions().map_err(|e| invalid(format!("the image's header cannot be read: {e}")))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(invalid(format!(
            "the image is {width}×{height} ({:.1} megapixels); the most this server accepts is {:.1} megapixels",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(invalid(format!("the image is {width}×{height}; each side must be at least {MIN_SIDE} pixels")));
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(1 << 20));
    reader.limits(limits);
    let image =
        reader.decode().map_err(|e| invalid(format!("the image cannot be decoded (truncated or corrupt?): {e}")))?;
    Ok(image.to_rgb8())
}

/// The worker: waits for an image, gathers what else is waiting (up to the
/// batch size, for at most the delay), runs the batch, answers each caller.
fn work(mut engine: Engine, queue: Receiver<Job>, options: ServiceOptions) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + options.max_delay;
        while batch.len() < options.max_batch.max(1) {
            let next = match deadline.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => queue.recv_timeout(wait),
                _ => queue.try_recv().map_err(|_| RecvTimeoutError::Timeout),
            };
            match next {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A panic in the model must not take the worker with it: every caller of the batch gets a
        // 500 and the next batch runs.
        let replies: Vec<mpsc::Sender<Result<Verdict, BackendError>>> = batch.iter().map(|j| j.reply.clone()).collect();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_batch(&mut engine, batch, &options)));
        if outcome.is_err() {
            for reply in replies {
                let _ = reply.send(Err(BackendError::Internal("the inspection model failed unexpectedly".into())));
            }
        }
    }
}

/// Runs one batch through `engine` and answers each caller. The energy per image counts the
/// model run, shared by the batch.
fn run_batch(engine: &mut Engine, mut batch: Vec<Job>, options: &ServiceOptions) {
    let started = Instant::now();
    let images: Vec<RgbImage> = batch.iter_mut().map(|job| std::mem::take(&mut job.image)).collect();
    let size = batch.len();
    let joules =
        || started.elapsed().as_secs_f64() * options.threads.max(1) as f64 * options.watts_per_core / size as f64;
    let jobs = || batch.iter().zip(&images);
    let verdicts: Result<Vec<Result<Verdict, BackendError>>, String> = match engine {
        Engine::PatchCore { backbone, model } => backbone
            .patch_grids(&images, model.config.neighbourhood)
            .map_err(|error| format!("the backbone failed: {error}"))
            .map(|grids| {
                let joules = joules();
                jobs()
                    .zip(&grids)
                    .map(|((job, image), grid)| judge(model, grid, image, job.options, size, joules))
                    .collect()
            }),
        Engine::Anomalib(model) => {
            model.infer(&images).map_err(|error| format!("the model failed: {error}")).map(|scored| {
                let joules = joules();
                jobs()
                    .zip(&scored)
                    .map(|((job, image), scored)| judge_anomalib(scored, image, job.options, size, joules))
                    .collect()
            })
        }
    };
    match verdicts {
        Err(message) => {
            for job in batch {
                let _ = job.reply.send(Err(BackendError::Internal(message.clone())));
            }
        }
        Ok(verdicts) => {
            for (job, verdict) in batch.into_iter().zip(verdicts) {
                let _ = job.reply.send(verdict);
            }
        }
    }
}

/// One image's verdict from an anomalib model's score and map, with its heat-map picture when
/// asked for. anomalib normalises both so that [`crate::anomalib::THRESHOLD`] cuts them.
fn judge_anomalib(
    (score, map): &(f32, Array2<f32>),
    image: &RgbImage,
    options: InspectOptions,
    batch_size: usize,
    joules: f64,
) -> Result<Verdict, BackendError> {
    let threshold = crate::anomalib::THRESHOLD;
    let heatmap_png = options.heatmap_png.then(|| png(&overlay(image, map.view(), threshold))).transpose()?;
    Ok(Verdict {
        score: *score,
        label: if *score > threshold { Label::Defective } else { Label::Good },
        map: options.map.then(|| map.iter().copied().collect()),
        heatmap_png,
        batch_size,
        energy_j: Some(joules),
    })
}

/// One image's verdict, with its map and heat-map picture when asked for; the score alone skips
/// upsampling and smoothing the map. `image` is the fitted input the grid came from.
fn judge(
    model: &PatchCoreModel,
    grid: &PatchGrid,
    image: &RgbImage,
    options: InspectOptions,
    batch_size: usize,
    joules: f64,
) -> Result<Verdict, BackendError> {
    let failed = |e: PatchCoreError| BackendError::Internal(format!("the detector failed: {e}"));
    let (score, map, heatmap_png) = if !options.map && !options.heatmap_png {
        (model.image_score(grid).map_err(failed)?, None, None)
    } else {
        let inspection = model.inspect(grid).map_err(failed)?;
        let heatmap_png = options
            .heatmap_png
            .then(|| png(&overlay(image, inspection.map.view(), model.threshold.value)))
            .transpose()?;
        (inspection.score, options.map.then(|| inspection.map.iter().copied().collect()), heatmap_png)
    };
    Ok(Verdict {
        score,
        label: if model.is_anomalous(score) { Label::Defective } else { Label::Good },
        map,
        heatmap_png,
        batch_size,
        energy_j: Some(joules),
    })
}

/// A picture as PNG bytes.
fn png(image: &RgbImage) -> Result<Vec<u8>, BackendError> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .map_err(|e| BackendError::Internal(format!("cannot encode the heat map: {e}")))?;
    Ok(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn message(result: Result<RgbImage, BackendError>) -> String {
        match result {
            Err(BackendError::InvalidRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn png_and_jpeg_decode() {
        assert_eq!(decode_checked(&encoded(40, 30, ImageFormat::Png), 1 << 20).unwrap().dimensions(), (40, 30));
        assert_eq!(decode_checked(&encoded(40, 30, ImageFormat::Jpeg), 1 << 20).unwrap().dimensions(), (40, 30));
    }

    #[test]
    fn bad_images_are_clear_400s() {
        assert!(message(decode_checked(b"", 1000)).contains("empty"));
        assert!(message(decode_checked(b"{\"not\": \"an image\"}", 1000)).contains("not a PNG or JPEG"));
        let gif = b"GIF89a\x14\x00\x14\x00\x00\x00\x00;";
        assert!(message(decode_checked(gif, 1 << 20)).contains("send PNG or JPEG"));
        assert!(message(decode_checked(&encoded(8, 40, ImageFormat::Png), 1 << 20)).contains("at least 16"));
        let jpeg = encoded(64, 64, ImageFormat::Jpeg);
        for cut in [jpeg.len() / 2, 200, 30, 4] {
            let result = decode_checked(&jpeg[..cut], 1 << 20);
            assert!(matches!(result, Err(BackendError::InvalidRequest(_))), "cut at {cut}: {result:?}");
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A PNG whose header says 10000×10000: 300 MB once decoded.
        let bomb = png_header(10_000, 10_000);
        let started = Instant::now();
        let text = message(decode_checked(&bomb, 40_000_000));
        assert!(text.contains("10000×10000") && text.contains("100.0 megapixels"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5), "refused before decoding");
    }

    /// A PNG signature, an IHDR chunk for an 8-bit RGB image of this size, and an empty IDAT.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend(width.to_be_bytes());
        chunk.extend(height.to_be_bytes());
        chunk.extend([8, 2, 0, 0, 0]);
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend(13u32.to_be_bytes());
        bytes.extend(&chunk);
        bytes.extend(crc32(&chunk).to_be_bytes());
        // An empty IDAT: decoders read up to the first one before they report the size.
        bytes.extend(0u32.to_be_bytes());
        bytes.extend(b"IDAT");
        bytes.extend(crc32(b"IDAT").to_be_bytes());
        bytes
    }

    /// PNG's CRC-32 (the IEEE polynomial), bit by bit: the test needs it for one chunk.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
