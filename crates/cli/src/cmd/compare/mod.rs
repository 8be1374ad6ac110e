//! `edgeway compare`: quantizations of one model side by side, measured in one
//! run on this machine.
//!
//! The parent resolves every variant, fetches the evaluation package once,
//! then runs `edgeway compare --worker-out FILE VARIANT` for each variant in
//! turn ([`measure`]), so load time and peak memory belong to that variant
//! alone. [`report`] compares the results with the baseline (the variant
//! with the most bits per weight) and prints them; [`plot`] draws them.

mod measure;
mod plot;
mod report;
mod texts;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::app::DataDir;

use crate::cli::CompareArgs;
use measure::Measured;

/// Runs `edgeway compare`, or one worker when `--worker-out` is set.
pub fn run(data_dir: &DataDir, args: &CompareArgs) -> anyhow::Result<()> {
    let cache = data_dir.cache();
    if let Some(out) = &args.worker_out {
        let [model] = args.models.as_slice() else { bail!("a compare worker measures exactly one model") };
        let path = PathBuf::from(model);
        let info = edgeway_models::GgufInfo::read(&path)?;
        let root = data_dir.eval_package(false)?;
        let texts = texts::Texts::load(&root, args, info.is_encoder())?;
        return measure::run_worker(&path, &info, &texts, args, out);
    }
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let variants: Vec<(String, PathBuf)> = args
        .models
        .iter()
        .map(|spec| Ok((spec.clone(), crate::app::engine::model_file(spec, &cache, !args.no_pull)?)))
        .collect::<anyhow::Result<_>>()?;
    check_one_kind(&variants)?;
    // Fetched once here, so the workers never race to download it.
    data_dir.eval_package(args.no_pull)?;

    let work = std::env::temp_dir().join(format!("edgeway-compare-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let measured = variants
        .iter()
        .enumerate()
        .map(|(index, (_, path))| run_one(data_dir, args, path, &work.join(format!("{index}.json"))))
        .collect::<anyhow::Result<Vec<Measured>>>();
    let _ = std::fs::remove_dir_all(&work);
    let measured = measured?;

    // A path is shown by its file name; the full path is in the JSON.
    let names: Vec<String> = variants
        .iter()
        .map(|(spec, path)| {
            if edgeway_models::resolve::is_path(spec) {
                path.file_name().map_or_else(|| spec.clone(), |name| name.to_string_lossy().into_owned())
            } else {
                spec.clone()
            }
        })
        .collect();
    let baseline = match &args.baseline {
        Some(name) => names
            .iter()
            .position(|n| n == name)
            .or_else(|| args.models.iter().position(|spec| spec == name))
            .with_context(|| format!("--baseline {name} is not one of the variants ({})", names.join(", ")))?,
        None => report::most_precise(&measured),
    };
    let comparison = report::Comparison::new(names, measured, baseline, args);
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&comparison.json())?),
        "markdown" => println!("{}", comparison.markdown()),
        _ => println!("{}", comparison.table()),
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, comparison.markdown()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&comparison.json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::accuracy_vs_size_and_energy(&comparison))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Refuses a mix of embedding and generative models: their measures have nothing in common.
fn check_one_kind(variants: &[(String, PathBuf)]) -> anyhow::Result<()> {
    let mut kinds = Vec::new();
    for (spec, path) in variants {
        let info = edgeway_models::GgufInfo::read(path)?;
        kinds.push((spec, info.is_encoder(), info.architecture.unwrap_or_default()));
    }
    if kinds.iter().any(|k| k.1) && kinds.iter().any(|k| !k.1) {
        let listed: Vec<String> = kinds
            .iter()
            .map(|(spec, encoder, arch)| {
                format!("{spec} ({arch}, {})", if *encoder { "embedding" } else { "generative" })
            })
            .collect();
        bail!("compare variants of one model: these mix embedding and generative models: {}", listed.join(", "));
    }
    Ok(())
}

/// Measures one variant in a child process.
fn run_one(data_dir: &DataDir, args: &CompareArgs, path: &Path, out: &Path) -> anyhow::Result<Measured> {
    let status = Command::new(std::env::current_exe()?)
        .arg("--data-dir")
        .arg(data_dir.path())
        .arg("compare")
        .arg(path)
        .args(["--threads", &args.threads.to_string()])
        .args(["--sets", &args.sets.join(",")])
        .args(["--limit", &args.limit.to_string()])
        .args(["--ppl-tokens", &args.ppl_tokens.to_string()])
        .args(["--ppl-window", &args.ppl_window.to_string()])
        .args(["--prompt-tokens", &args.prompt_tokens.to_string()])
        .args(["--gen-tokens", &args.gen_tokens.to_string()])
        .args(["--repetitions", &args.repetitions.to_string()])
        .args(["--questions", &args.questions.to_string()])
        .args(["--watts-per-core", &args.watts_per_core.to_string()])
        .arg("--worker-out")
        .arg(out)
        .env("EDGEWAY_LOG", std::env::var("EDGEWAY_LOG").unwrap_or_else(|_| "warn".into()))
        .status()
        .context("cannot start a compare worker")?;
    if !status.success() {
        bail!("measuring {} failed ({status}); see the messages above", path.display());
    }
    let bytes = std::fs::read(out).with_context(|| format!("the worker for {} wrote no results", path.display()))?;
    serde_json::from_slice(&bytes).context("the worker's results are not readable")
}
