//! `edgeway compare`: quantizations of one model side by side, measured in one
//! run on this machine.
//!
//! The parent resolves every variant, fetches the evaluation package once,
//! then runs `edgeway compare --worker-out FILE VARIANT` for each variant in
//! turn, so load time and peak memory belong to that variant alone. The
//! measuring, the comparison with the baseline and the plot are
//! [`edgeway_compare`]'s; this file runs the processes and prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use edgeway_compare::report::{display_name, find_variant, most_precise};
use edgeway_compare::{Comparison, Measured, Progress, Settings, Texts};
use edgeway_eval::dataset::EvalItem;
use edgeway_eval::run::RunError;
use indicatif::ProgressBar;

use crate::app::engine::model_file;
use crate::app::DataDir;
use crate::cli::CompareArgs;

/// Runs `edgeway compare`, or one worker when `--worker-out` is set.
pub fn run(data_dir: &DataDir, args: &CompareArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.worker_out {
        return worker(data_dir, args, out);
    }
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let cache = data_dir.cache();
    let variants: Vec<(String, PathBuf)> = args
        .models
        .iter()
        .map(|spec| Ok((spec.clone(), model_file(spec, &cache, !args.no_pull)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut kinds = Vec::new();
    for (spec, path) in &variants {
        let info = edgeway_models::GgufInfo::read(path)?;
        kinds.push((spec.clone(), info.architecture.clone().unwrap_or_default(), info.is_encoder()));
    }
    edgeway_compare::check_one_kind(&kinds)?;
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

    let names: Vec<String> = variants.iter().map(|(spec, path)| display_name(spec, path)).collect();
    let baseline = match &args.baseline {
        Some(name) => find_variant(name, &names, &args.models)
            .with_context(|| format!("--baseline {name} is not one of the variants ({})", names.join(", ")))?,
        None => most_precise(&measured),
    };
    let comparison = Comparison::new(names, measured, baseline, &settings(args));
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
        std::fs::write(path, edgeway_compare::plot::accuracy_vs_size_and_energy(&comparison))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// What every variant is measured with, from the flags.
fn settings(args: &CompareArgs) -> Settings {
    Settings {
        threads: args.threads,
        sets: args.sets.clone(),
        limit: args.limit,
        ppl_tokens: args.ppl_tokens,
        ppl_window: args.ppl_window,
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        repetitions: args.repetitions,
        questions: args.questions,
        watts_per_core: args.watts_per_core,
    }
}

/// The worker: measures the one variant given and writes the results as JSON to `out`.
fn worker(data_dir: &DataDir, args: &CompareArgs, out: &Path) -> anyhow::Result<()> {
    let [model] = args.models.as_slice() else { bail!("a compare worker measures exactly one model") };
    let path = PathBuf::from(model);
    let info = edgeway_models::GgufInfo::read(&path)?;
    let root = data_dir.eval_package(false)?;
    let settings = settings(args);
    let texts = Texts::load(&root, &settings, info.is_encoder())?;
    let measured = edgeway_compare::measure(&path, &info, &texts, &settings, &mut Printed::default())?;
    std::fs::write(out, serde_json::to_vec(&measured)?).with_context(|| format!("cannot write {}", out.display()))
}

/// The worker's progress on stderr: a line per stage, a bar while grading.
#[derive(Default)]
struct Printed {
    bar: Option<ProgressBar>,
}

impl Progress for Printed {
    fn stage(&mut self, measured: &Measured, what: &str) {
        eprintln!("compare: {} ({}): {what}", measured.path, measured.precision);
    }

    fn grading(&mut self, items: usize) {
        self.bar = Some(crate::progress::bar(items as u64, "grading"));
    }

    fn graded(&mut self, item: &EvalItem, error: Option<&RunError>) {
        if let Some(bar) = &self.bar {
            if let Some(error) = error {
                bar.suspend(|| eprintln!("{}/{}: {error}", item.dataset, item.id));
            }
            bar.inc(1);
        }
    }

    fn graded_all(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
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
