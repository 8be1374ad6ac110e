//! Backbones side by side under one fitted detector (FP32 and its INT8 copy, as `edgeway vision
//! compare` runs them): size on disk, load time, image and pixel AUROC on a data set, one
//! image's latency p50/p99 through the whole inspection (backbone and detector, an image already
//! decoded), images per second, and energy per image by the serving path's model (wall time ×
//! threads × watts per busy core). The timings are interleaved image by image, so each
//! backbone's speed-up over the first is a paired ratio ([`speedups`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::inspection::{evaluate, test_images, Backbone, InspectionError};
use crate::patchcore::PatchCoreModel;
use crate::preprocess;
use crate::runtime::{Runtime, RuntimeConfig};

/// How every backbone is measured: the same for all of them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// ONNX Runtime's library and threads.
    pub runtime: RuntimeConfig,
    /// Watts one busy core draws, for the energy estimate.
    pub watts_per_core: f64,
    /// Timed passes over the data set's test images (after one untimed warm-up image).
    pub passes: usize,
}

/// One backbone's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Its name in the report.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// `fp32` or `int8` (read from the graph).
    pub precision: &'static str,
    /// Each timed image's backbone run, in milliseconds, in the order shared by every backbone.
    pub backbone_ms: Vec<f64>,
    /// Each timed image's whole inspection (backbone and detector), in the same order.
    pub inspection_ms: Vec<f64>,
    /// Size on disk.
    pub bytes: u64,
    /// Runtime and session start, in milliseconds.
    pub load_ms: f64,
    /// On the data set; `None` without both classes.
    pub image_auroc: Option<f64>,
    /// On the data set's masks; `None` without masks.
    pub pixel_auroc: Option<f64>,
    /// One image's inspection, median, in milliseconds.
    pub p50_ms: f64,
    /// And its 99th percentile.
    pub p99_ms: f64,
    /// Images per second, one at a time.
    pub images_per_s: f64,
    /// Joules per image.
    pub joules_per_image: f64,
}

/// Measures the backbones at `backbones` (file, name) under `model` on `dataset` (MVTec-AD
/// layout). The timed inspections are interleaved, image by image, each backbone going first in
/// turn, so that the machine's drift falls on all of them alike and [`speedups`] can pair them.
pub fn measure(
    backbones: &[(PathBuf, String)],
    model: &PatchCoreModel,
    dataset: &Path,
    settings: &Settings,
) -> Result<Vec<Figures>, InspectionError> {
    let mut opened = Vec::with_capacity(backbones.len());
    let mut figures = Vec::with_capacity(backbones.len());
    for (path, name) in backbones {
        let io = |error: std::io::Error| InspectionError::Io {
            action: "read",
            path: path.to_owned(),
            error: error.to_string(),
        };
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        let started = Instant::now();
        let runtime = Runtime::load(&settings.runtime)?;
        let mut backbone = Backbone::open(runtime, path, name, model.backbone.input_size)?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let evaluation = evaluate(&mut backbone, model, dataset, None)?;
        figures.push(Figures {
            name: name.clone(),
            path: path.clone(),
            precision: if backbone.is_quantized() { "int8" } else { "fp32" },
            bytes,
            load_ms,
            image_auroc: evaluation.image_auroc,
            pixel_auroc: evaluation.pixel_auroc,
            ..Figures::default()
        });
        opened.push(backbone);
    }

    let images = test_images(dataset)?.iter().map(|(_, path)| preprocess::load(path)).collect::<Result<Vec<_>, _>>()?;
    // One image through the backbone, then the detector: (backbone ms, whole ms).
    let inspect = |backbone: &mut Backbone, image: &image::RgbImage| -> Result<(f64, f64), InspectionError> {
        let started = Instant::now();
        let grids = backbone.patch_grids(std::slice::from_ref(image), model.config.neighbourhood)?;
        let features = started.elapsed().as_secs_f64() * 1000.0;
        model.image_score(&grids[0])?;
        Ok((features, started.elapsed().as_secs_f64() * 1000.0))
    };
    if let Some(first) = images.first() {
        for backbone in &mut opened {
            inspect(backbone, first)?;
        }
    }
    let mut round = 0;
    for _ in 0..settings.passes.max(1) {
        for image in &images {
            for k in 0..opened.len() {
                let at = (round + k) % opened.len();
                let (features, whole) = inspect(&mut opened[at], image)?;
                figures[at].backbone_ms.push(features);
                figures[at].inspection_ms.push(whole);
            }
            round += 1;
        }
    }
    let threads = settings.runtime.threads.max(1) as f64;
    for f in &mut figures {
        let mean_ms = f.inspection_ms.iter().sum::<f64>() / f.inspection_ms.len().max(1) as f64;
        let mut sorted = f.inspection_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied();
        f.p50_ms = quantile(0.5).unwrap_or(0.0);
        f.p99_ms = quantile(0.99).unwrap_or(0.0);
        f.images_per_s = if mean_ms > 0.0 { 1000.0 / mean_ms } else { 0.0 };
        f.joules_per_image = mean_ms / 1000.0 * threads * settings.watts_per_core;
    }
    Ok(figures)
}

/// How much faster `other` ran than `base`, image by image (`base ÷ other` of each pair of
/// timings of the same image in the same round): for a median and its interval.
pub fn speedups(base: &[f64], other: &[f64]) -> Vec<f64> {
    base.iter().zip(other).filter(|(_, &o)| o > 0.0).map(|(b, o)| b / o).collect()
}

/// The figures as a Markdown table, each against the first (the baseline).
pub fn render(figures: &[Figures]) -> String {
    let Some(base) = figures.first() else { return String::new() };
    let auroc = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.4}"));
    let delta = |value: Option<f64>, base: Option<f64>| match (value, base) {
        (Some(v), Some(b)) => format!(" ({:+.4})", v - b),
        _ => String::new(),
    };
    let mut out = String::from(
        "| backbone | precision | size | load | image AUROC | pixel AUROC | p50 | p99 | images/s | J/image |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, f) in figures.iter().enumerate() {
        let versus = |value: f64, base: f64, unit: &str| {
            if i == 0 || base <= 0.0 {
                String::new()
            } else {
                format!(" ({:.2}{unit})", value / base)
            }
        };
        out.push_str(&format!(
            "| {} | {} | {:.2} MiB{} | {:.0} ms | {}{} | {}{} | {:.2} ms | {:.2} ms | {:.1}{} | {:.3} |\n",
            f.name,
            f.precision,
            f.bytes as f64 / (1024.0 * 1024.0),
            versus(f.bytes as f64, base.bytes as f64, "×"),
            f.load_ms,
            auroc(f.image_auroc),
            if i == 0 { String::new() } else { delta(f.image_auroc, base.image_auroc) },
            auroc(f.pixel_auroc),
            if i == 0 { String::new() } else { delta(f.pixel_auroc, base.pixel_auroc) },
            f.p50_ms,
            f.p99_ms,
            f.images_per_s,
            versus(f.images_per_s, base.images_per_s, "×"),
            f.joules_per_image,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(name: &str, precision: &'static str, bytes: u64, images_per_s: f64, auroc: f64) -> Figures {
        Figures {
            name: name.into(),
            path: PathBuf::from(name),
            precision,
            bytes,
            load_ms: 12.0,
            backbone_ms: Vec::new(),
            inspection_ms: Vec::new(),
            image_auroc: Some(auroc),
            pixel_auroc: None,
            p50_ms: 5.0,
            p99_ms: 7.0,
            images_per_s,
            joules_per_image: 0.05,
        }
    }

    #[test]
    fn the_table_sets_each_backbone_against_the_first() {
        let table = render(&[
            figures("lite0", "fp32", 8 << 20, 100.0, 0.99),
            figures("lite0.int8", "int8", 2 << 20, 200.0, 0.985),
        ]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert!(rows[2].starts_with("| lite0 | fp32 | 8.00 MiB | 12 ms | 0.9900 | n/a |"), "{table}");
        assert!(rows[3].contains("2.00 MiB (0.25×)") && rows[3].contains("0.9850 (-0.0050)"), "{table}");
        assert!(rows[3].contains("200.0 (2.00×)"), "{table}");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn speedups_pair_the_same_images() {
        assert_eq!(speedups(&[10.0, 8.0, 6.0], &[5.0, 4.0, 0.0]), vec![2.0, 2.0]);
    }
}
