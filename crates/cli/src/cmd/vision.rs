//! `edgeway vision convert`, `classify`, `fit` and `eval`: the backbone to ONNX, the reference check,
//! and the inspection model (fitted from good images, evaluated on an MVTec-AD-layout folder).

use std::path::PathBuf;

use anyhow::Context;
use edgeway_redteam::vision::{self as vision_redteam, Target};
use edgeway_vision::attack::Defence;
use edgeway_vision::inspection::{self, Backbone, FitOptions, ModelOracle};
use edgeway_vision::lite0::{self, LOGITS};
use edgeway_vision::patchcore::{PatchCoreConfig, PatchCoreModel};
use edgeway_vision::preprocess::{self, LITE0};
use edgeway_vision::quantize;
use edgeway_vision::runtime::{Runtime, RuntimeConfig};

use crate::app::{self, DataDir};
use crate::cli::{
    VisionBackboneArgs, VisionClassifyArgs, VisionCommand, VisionCompareArgs, VisionConvertArgs, VisionEvalArgs,
    VisionFitArgs, VisionQuantizeArgs, VisionRedteamArgs,
};

/// The inspection model's file name under DATA_DIR/models when `--out` / `--detector` is not given.
const DEFAULT_DETECTOR: &str = "inspection.patchcore";

pub fn run(data_dir: &DataDir, command: &VisionCommand) -> anyhow::Result<()> {
    match command {
        VisionCommand::Convert(args) => convert(data_dir, args).map(|_| ()),
        VisionCommand::Classify(args) => classify(data_dir, args),
        VisionCommand::Fit(args) => fit(data_dir, args),
        VisionCommand::Eval(args) => eval(data_dir, args),
        VisionCommand::Quantize(args) => quantize(data_dir, args),
        VisionCommand::Redteam(args) => redteam(data_dir, args),
        VisionCommand::Compare(args) => compare(data_dir, args),
    }
}

fn compare(data_dir: &DataDir, args: &VisionCompareArgs) -> anyhow::Result<()> {
    let detector = args.detector.clone().unwrap_or_else(|| default_detector(data_dir));
    let model = PatchCoreModel::load(&detector)?;
    let first = app::vision::backbone_path(data_dir, args.backbone.model.as_deref())?;
    let settings = edgeway_vision::compare::Settings {
        runtime: RuntimeConfig { library: args.backbone.ort_lib.clone(), threads: args.backbone.threads },
        watts_per_core: args.watts_per_core,
        passes: args.passes,
    };
    let backbones: Vec<(PathBuf, String)> = std::iter::once(&first)
        .chain(&args.others)
        .map(|path| {
            let name =
                path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
            (path.clone(), name)
        })
        .collect();
    let figures = edgeway_vision::compare::measure(&backbones, &model, &args.dataset, &settings)?;
    print!("{}", edgeway_vision::compare::render(&figures));
    // Each backbone's speed-up over the first, image by image: (backbone, whole) as (median, low, high).
    let base = &figures[0];
    let speedup = |base_ms: &[f64], other_ms: &[f64]| {
        let ratios = edgeway_vision::compare::speedups(base_ms, other_ms);
        let (low, high, coverage) = edgeway_eval::stats::median_interval(ratios.clone(), 0.95)?;
        Some((edgeway_eval::stats::median(ratios), low, high, coverage))
    };
    let mut speedups = vec![serde_json::Value::Null];
    for other in &figures[1..] {
        let mut entry = serde_json::Map::new();
        for (what, base_ms, other_ms) in [
            ("backbone", &base.backbone_ms, &other.backbone_ms),
            ("inspection", &base.inspection_ms, &other.inspection_ms),
        ] {
            if let Some((median, low, high, coverage)) = speedup(base_ms, other_ms) {
                println!(
                    "{} vs {}, {what}: {median:.2}× as fast (median of {} paired images), {:.1} % interval \
                     [{low:.2}, {high:.2}]",
                    other.name,
                    base.name,
                    other_ms.len(),
                    coverage * 100.0
                );
                entry.insert(what.into(), serde_json::json!({ "median": median, "low": low, "high": high }));
            }
        }
        speedups.push(serde_json::Value::Object(entry));
    }
    if let Some(path) = &args.json {
        let rows: Vec<serde_json::Value> = figures
            .iter()
            .zip(&speedups)
            .map(|(f, speedup)| {
                serde_json::json!({
                    "name": f.name, "path": f.path, "precision": f.precision, "bytes": f.bytes,
                    "load_ms": f.load_ms, "image_auroc": f.image_auroc, "pixel_auroc": f.pixel_auroc,
                    "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "images_per_s": f.images_per_s,
                    "joules_per_image": f.joules_per_image, "speedup_over_first": speedup,
                })
            })
            .collect();
        let report = serde_json::json!({ "dataset": args.dataset, "detector": detector, "backbones": rows });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Converts the backbone and returns where it was written.
fn convert(data_dir: &DataDir, args: &VisionConvertArgs) -> anyhow::Result<PathBuf> {
    let (checkpoint, out, converted) =
        app::vision::convert_backbone(data_dir, args.checkpoint.as_deref(), args.out.as_deref())?;
    println!(
        "{} → {}: {} MBConv blocks, {} parameters, {} classes; outputs {}, {}, {} ({:.1} MiB)",
        checkpoint.display(),
        out.display(),
        converted.blocks,
        converted.parameters,
        converted.classes,
        lite0::LOGITS,
        lite0::FEATURES_STRIDE8,
        lite0::FEATURES_STRIDE16,
        converted.onnx.len() as f64 / 1048576.0
    );
    Ok(out)
}

fn classify(data_dir: &DataDir, args: &VisionClassifyArgs) -> anyhow::Result<()> {
    let model = app::vision::backbone_path(data_dir, args.model.as_deref())?;
    // Decode every image before loading the runtime, so a bad file fails fast.
    let images = args.images.iter().map(|path| preprocess::load(path)).collect::<Result<Vec<_>, _>>()?;
    let runtime = Runtime::load(&RuntimeConfig { library: args.ort_lib.clone(), threads: args.threads })?;
    let mut session = runtime.session_from_file(&model)?;
    let outputs = session.run(&LITE0.batch(&images))?;
    let logits = outputs.get(LOGITS).with_context(|| format!("{} has no `{LOGITS}` output", model.display()))?;
    for (path, row) in args.images.iter().zip(logits.outer_iter()) {
        let row: Vec<f32> = row.iter().copied().collect();
        let top: Vec<String> = lite0::top_classes(&row, args.top)
            .into_iter()
            .map(|(class, probability)| format!("{class} ({:.1}%)", probability * 100.0))
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    Ok(())
}

/// Loads ONNX Runtime and opens the backbone for `size`² images.
fn open_backbone(data_dir: &DataDir, args: &VisionBackboneArgs, size: u32) -> anyhow::Result<Backbone> {
    let path = app::vision::backbone_path(data_dir, args.model.as_deref())?;
    let name = app::vision::backbone_name(args.model.as_deref(), &path);
    let runtime = Runtime::load(&RuntimeConfig { library: args.ort_lib.clone(), threads: args.threads })?;
    Ok(Backbone::open(runtime, &path, &name, size)?)
}

fn default_detector(data_dir: &DataDir) -> PathBuf {
    data_dir.cache().models_dir().join(DEFAULT_DETECTOR)
}

fn fit(data_dir: &DataDir, args: &VisionFitArgs) -> anyhow::Result<()> {
    anyhow::ensure!((32..=1024).contains(&args.size), "--size {} is outside 32..=1024", args.size);
    anyhow::ensure!(args.neighbourhood % 2 == 1, "--neighbourhood {} is not odd (1, 3, 5…)", args.neighbourhood);
    anyhow::ensure!(args.coreset > 0.0 && args.coreset <= 1.0, "--coreset {} is not in (0, 1]", args.coreset);
    anyhow::ensure!(
        (0.0..1.0).contains(&args.false_reject_rate),
        "--false-reject-rate {} is not in [0, 1)",
        args.false_reject_rate
    );
    let good = inspection::list_images(&args.good)?;
    let options = FitOptions {
        config: PatchCoreConfig {
            neighbourhood: args.neighbourhood,
            coreset_ratio: args.coreset,
            coreset_min_rows: args.coreset_min_rows,
            projection_dims: args.projection,
            seed: args.seed,
            sigma: args.sigma,
        },
        hold_out_every: args.hold_out_every,
        margin: args.margin,
        false_reject_rate: args.false_reject_rate,
    };
    let mut backbone = open_backbone(data_dir, &args.backbone, args.size)?;
    let started = std::time::Instant::now();
    let model = inspection::fit(&mut backbone, &good, &options)?;
    let out = args.out.clone().unwrap_or_else(|| default_detector(data_dir));
    model.save(&out)?;
    let bank = model.bank.features();
    println!(
        "{} good images ({} fitted, {} held out) → {}: {} of {} patches kept ({}×{} grid, {} dims), {:.1} s",
        good.len(),
        model.images_fitted,
        model.threshold.held_out_scores.len(),
        out.display(),
        bank.nrows(),
        model.patches_seen,
        model.grid.0,
        model.grid.1,
        bank.ncols(),
        started.elapsed().as_secs_f64()
    );
    println!("threshold {:.4}: {}", model.threshold.value, model.threshold.rule);
    Ok(())
}

fn eval(data_dir: &DataDir, args: &VisionEvalArgs) -> anyhow::Result<()> {
    let detector = args.detector.clone().unwrap_or_else(|| default_detector(data_dir));
    let model = PatchCoreModel::load(&detector)?;
    let mut backbone = open_backbone(data_dir, &args.backbone, model.backbone.input_size)?;
    let pictures = match (&args.pictures, args.no_pictures) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => Some(args.dataset.join("heatmaps")),
    };
    let started = std::time::Instant::now();
    let evaluation = inspection::evaluate(&mut backbone, &model, &args.dataset, pictures.as_deref())?;
    for image in &evaluation.images {
        let name = image.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let verdict = if image.anomalous { "anomalous" } else { "good" };
        println!("{}/{name}: score {:.4} {verdict}", image.category, image.score);
    }
    let mut categories: Vec<&str> = evaluation.images.iter().map(|i| i.category.as_str()).collect();
    categories.dedup();
    for category in categories {
        let scores: Vec<&_> = evaluation.images.iter().filter(|i| i.category == category).collect();
        let flagged = scores.iter().filter(|i| i.anomalous).count();
        let mean = scores.iter().map(|i| f64::from(i.score)).sum::<f64>() / scores.len() as f64;
        println!("{category}: {} images, mean score {mean:.4}, {flagged} flagged", scores.len());
    }
    let show = |auroc: Option<f64>| auroc.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.4}"));
    println!("image AUROC {}", show(evaluation.image_auroc));
    println!("pixel AUROC {}", show(evaluation.pixel_auroc));
    let c = evaluation.confusion;
    println!(
        "at threshold {:.4}: {} of {} defective flagged, {} of {} good flagged (TP {} FN {} FP {} TN {})",
        evaluation.threshold,
        c.true_positives,
        c.true_positives + c.false_negatives,
        c.false_positives,
        c.false_positives + c.true_negatives,
        c.true_positives,
        c.false_negatives,
        c.false_positives,
        c.true_negatives
    );
    if let Some(dir) = &pictures {
        println!("heat maps in {}", dir.display());
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{} images in {seconds:.1} s", evaluation.images.len());
    if let Some(path) = &args.json {
        let images: Vec<serde_json::Value> = evaluation
            .images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "path": i.path, "category": i.category, "score": i.score, "anomalous": i.anomalous,
                })
            })
            .collect();
        let report = serde_json::json!({
            "dataset": args.dataset,
            "detector": detector,
            "backbone": backbone.info().name,
            "precision": if backbone.is_quantized() { "int8" } else { "fp32" },
            "image_auroc": evaluation.image_auroc,
            "pixel_auroc": evaluation.pixel_auroc,
            "threshold": evaluation.threshold,
            "confusion": {
                "true_positives": c.true_positives, "false_negatives": c.false_negatives,
                "false_positives": c.false_positives, "true_negatives": c.true_negatives,
            },
            "seconds": seconds,
            "images": images,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn quantize(data_dir: &DataDir, args: &VisionQuantizeArgs) -> anyhow::Result<()> {
    anyhow::ensure!((32..=1024).contains(&args.size), "--size {} is outside 32..=1024", args.size);
    let mut paths = inspection::list_images(&args.images)?;
    paths.truncate(args.limit.max(1));
    let images = paths.iter().map(|p| preprocess::load(p)).collect::<Result<Vec<_>, _>>()?;
    let preprocessing = preprocess::Preprocessing { resize_shorter_to: args.size, crop: args.size, ..LITE0 };
    let batch = preprocessing.batch(&images);
    let fp32 = app::vision::backbone_path(data_dir, args.backbone.model.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| fp32.with_extension("int8.onnx"));
    anyhow::ensure!(out != fp32, "--out {} is the FP32 model itself", out.display());
    let python = quantize::locate_python(args.python.as_deref());
    let started = std::time::Instant::now();
    let quantized = quantize::quantize_qdq(&python, &fp32, &batch, &out)?;
    println!(
        "{} → {}: {:.2} MiB → {:.2} MiB ({:.2}× smaller), calibrated on {} images, {:.1} s",
        fp32.display(),
        out.display(),
        quantized.fp32_bytes as f64 / 1048576.0,
        quantized.int8_bytes as f64 / 1048576.0,
        quantized.fp32_bytes as f64 / quantized.int8_bytes.max(1) as f64,
        images.len(),
        started.elapsed().as_secs_f64()
    );
    let runtime =
        Runtime::load(&RuntimeConfig { library: args.backbone.ort_lib.clone(), threads: args.backbone.threads })?;
    let (mut reference, mut int8) = (runtime.session_from_file(&fp32)?, runtime.session_from_file(&out)?);
    for agreement in quantize::compare_outputs(&mut reference, &mut int8, &batch)? {
        println!(
            "{}: cosine to FP32 mean {:.4}, min {:.4}",
            agreement.name, agreement.mean_cosine, agreement.min_cosine
        );
    }
    Ok(())
}

fn redteam(data_dir: &DataDir, args: &VisionRedteamArgs) -> anyhow::Result<()> {
    let defence = Defence::parse(&args.defence)
        .with_context(|| format!("--defence {}: write jpeg:QUALITY (1-100), blur:SIGMA or none", args.defence))?;
    anyhow::ensure!(!args.epsilons.is_empty() && args.queries > 0, "--epsilons and --queries must not be empty or 0");
    let detector = args.detector.clone().unwrap_or_else(|| default_detector(data_dir));
    let model = PatchCoreModel::load(&detector)?;
    let mut fp32 = open_backbone(data_dir, &args.backbone, model.backbone.input_size)?;
    fp32.check_model(&model)?;
    let mut int8 = match &args.int8 {
        Some(path) => {
            let backbone_args = VisionBackboneArgs { model: Some(path.clone()), ..args.backbone.clone() };
            let backbone = open_backbone(data_dir, &backbone_args, model.backbone.input_size)?;
            backbone.check_model(&model)?;
            Some(backbone)
        }
        None => None,
    };
    let preprocessing = fp32.preprocessing();
    let images = inspection::test_images(&args.dataset)?;
    let load = |paths: Vec<&std::path::PathBuf>| -> anyhow::Result<Vec<edgeway_vision::RgbImage>> {
        Ok(paths.into_iter().map(|p| preprocess::load(p).map(|i| preprocessing.fit(&i))).collect::<Result<_, _>>()?)
    };
    let good = load(images.iter().filter(|(c, _)| c == "good").map(|(_, p)| p).collect())?;
    let defective = load(images.iter().filter(|(c, _)| c != "good").map(|(_, p)| p).take(args.limit.max(1)).collect())?;
    let mut fp32_oracle = ModelOracle { backbone: &mut fp32, model: &model, queries: 0 };
    let mut targets = vec![Target { name: "fp32".into(), oracle: &mut fp32_oracle, threshold: model.threshold.value }];
    let mut int8_oracle = int8.as_mut().map(|backbone| ModelOracle { backbone, model: &model, queries: 0 });
    if let Some(oracle) = int8_oracle.as_mut() {
        targets.push(Target { name: "int8".into(), oracle, threshold: model.threshold.value });
    }
    let mut epsilons = args.epsilons.clone();
    epsilons.sort_unstable();
    epsilons.dedup();
    let defence_epsilon = args.defence_epsilon.unwrap_or(epsilons[epsilons.len() / 2]);
    let settings = vision_redteam::Settings {
        attacker: match args.attacker {
            crate::cli::VisionAttacker::Square => vision_redteam::Attacker::Square,
            crate::cli::VisionAttacker::Guided => vision_redteam::Attacker::TowardGood,
        },
        epsilons,
        queries: args.queries,
        p_init: 0.05,
        seed: args.seed,
        defence: (defence != Defence::None).then_some((defence, defence_epsilon)),
    };
    let started = std::time::Instant::now();
    let report = vision_redteam::run(&mut targets, &defective, &good, &settings, &mut |line| eprintln!("{line}"))
        .map_err(|e| anyhow::anyhow!("the attack failed: {e}"))?;
    drop(targets);
    print!("{}", vision_redteam::render(&report, args.queries));
    println!("{:.0} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&vision_redteam::to_json(&report, args.queries))? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
