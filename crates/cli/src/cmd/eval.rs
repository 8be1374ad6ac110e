//! `edgeway eval`: graded sets through the same router `serve` runs, each side forced in turn.

mod judged;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use edgeway_core::{Backend, RouteTarget};
use edgeway_eval::dataset::{self, EvalItem};
use edgeway_eval::judge::Judge;
use edgeway_eval::mix::Mix;
use edgeway_eval::run::{answer_with_judge, sample, EvalRoute, RunError};
use edgeway_eval::task::AnswerFormat;
use edgeway_store::EvalLog;

use crate::app::{self, DataDir};
use crate::cli::{EvalArgs, ServeArgs};
use crate::config::{FileConfig, ServeSettings};

/// Consecutive failures of one side after which the run stops (a dead upstream, say).
const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// Runs `edgeway eval`.
pub fn run(data_dir_flag: Option<PathBuf>, args: EvalArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.config.path.as_deref())?;
    let data_dir = DataDir::resolve(data_dir_flag, file.data_dir.clone());
    // The router `serve` would build from the same flag groups; the rest of serve's flags stay unset.
    let serve_args = ServeArgs {
        config: args.config.clone(),
        edge: args.edge.clone(),
        cloud: args.cloud.clone(),
        log: args.log.clone(),
        ..ServeArgs::default()
    };
    let mut settings = ServeSettings::merge(&serve_args, file)?;
    let targets = routes(&args.route);
    if targets.contains(&EvalRoute::Side(RouteTarget::Cloud)) && settings.cloud.is_none() {
        anyhow::bail!(
            "--route {} needs a cloud tier: pass --cloud-url and --cloud-model, or set [cloud] in the config \
             (or use --route edge)",
            args.route
        );
    }
    let items = load_items(&args, &data_dir)?;
    anyhow::ensure!(!items.is_empty(), "the sets hold no items");
    if items.iter().any(edgeway_eval::task::runs_code) {
        report_sandbox()?;
    }
    // Open answers (MT-Bench) need a judge; a judge model the router lacks is added to it.
    let judged = items.iter().any(edgeway_eval::task::needs_judge);
    anyhow::ensure!(judged || !args.pairwise, "--pairwise compares open answers: add --set mt-bench");
    let judge_route = if judged { Some(judged::choose(args.judge.as_deref(), &mut settings)?) } else { None };
    if let Some(route) = &judge_route {
        eprintln!("open answers are rated 1-10 by the judge {}", route.label());
    }

    let model_id = settings.alias.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&settings.model));
    let run_name = args.run.clone().unwrap_or_else(|| {
        let cloud = settings.cloud.as_ref().map_or("none", |cloud| cloud.model.as_str());
        match args.answer_format {
            AnswerFormat::Constrained => format!("{model_id}+{cloud}"),
            AnswerFormat::Free => format!("{model_id}+{cloud}+free"),
        }
    });
    let log_path = data_dir.query_log(settings.log_path.as_deref());
    let mut log =
        EvalLog::open(&log_path).with_context(|| format!("cannot open the query log {}", log_path.display()))?;
    if args.regrade {
        regrade(&log, &run_name, &items)?;
    }
    let answered = log.answered(&run_name)?;
    let todo: Vec<(&EvalItem, &EvalRoute)> = items
        .iter()
        .flat_map(|item| targets.iter().map(move |target| (item, target)))
        .filter(|(item, target)| !answered.contains(&(item.dataset.clone(), item.id.clone(), target.label())))
        .collect();
    let already = items.len() * targets.len() - todo.len();
    eprintln!(
        "run `{run_name}`: {} items × {} side(s); {already} answers already logged, {} to go → {}",
        items.len(),
        targets.len(),
        todo.len(),
        log_path.display()
    );

    let mut pairwise = None;
    if !todo.is_empty() || args.pairwise {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        // A model pool starts its reaper task when built: inside the runtime.
        let _runtime = runtime.enter();
        let models = app::gateway::load_models(&settings, &data_dir.cache(), !args.no_pull, model_id)?;
        runtime.block_on(models.load_pinned())?;
        let scorer = app::gateway::build_scorer(&settings.scorer, &data_dir)?;
        let tiers = app::gateway::build_tiers(&settings.clouds)?;
        let gateway = app::gateway::build_gateway(models, tiers, settings.gateway.clone(), scorer)?;
        let judge = judge_route.map(|route| Judge::new(&gateway, route));
        runtime.block_on(answer_all(&gateway, &run_name, &todo, args.answer_format, judge.as_ref(), &mut log))?;
        if let (true, Some(judge)) = (args.pairwise, &judge) {
            let results = log.results(&run_name)?;
            pairwise = Some((runtime.block_on(judged::compare_sides(judge, &results, &items)), judge.label()));
        }
    }
    let results = log.results(&run_name)?;
    print_summary(&results, &run_name, args.mix.is_some());
    if judged {
        judged::print_ratings(&results, &items);
    }
    if let Some((tallies, judge)) = &pairwise {
        judged::print_pairwise(tallies, judge);
    }
    eprintln!("next: edgeway calibrate --run '{run_name}' --target 0.95");
    Ok(())
}

/// The routes `--route` names, comma-separated: `edge`, `cloud`, `both` (edge and cloud), `tierN`, or model names.
fn routes(text: &str) -> Vec<EvalRoute> {
    let mut routes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let parsed = match part {
            "both" => vec![EvalRoute::Side(RouteTarget::Edge), EvalRoute::Side(RouteTarget::Cloud)],
            _ => vec![EvalRoute::parse(part)],
        };
        for route in parsed {
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
    }
    routes
}

/// Loads and samples every requested set, or the mix, fetching the evaluation package when a built-in set needs it.
fn load_items(args: &EvalArgs, data_dir: &DataDir) -> anyhow::Result<Vec<EvalItem>> {
    if let Some(name) = &args.mix {
        return load_mix(name, args, data_dir);
    }
    let mut root: Option<PathBuf> = None;
    let mut items = Vec::new();
    for name in &args.sets {
        let root = if name == edgeway_eval::mtbench::SET {
            data_dir.mtbench_package(args.no_pull)?
        } else if dataset::is_builtin(name) {
            if root.is_none() {
                root = Some(data_dir.eval_package(args.no_pull)?);
            }
            root.clone().unwrap_or_default()
        } else {
            PathBuf::new()
        };
        let loaded = dataset::load(name, &root).with_context(|| format!("cannot load the evaluation set `{name}`"))?;
        items.extend(sample(loaded, args.limit));
    }
    Ok(items)
}

/// The mix's sample, each item tagged with its domain; says what each set gave.
fn load_mix(name: &str, args: &EvalArgs, data_dir: &DataDir) -> anyhow::Result<Vec<EvalItem>> {
    let mix = Mix::load(name)?;
    mix.check_sets()?;
    let needs_package = mix.domains.iter().flat_map(|d| &d.sets).any(|set| dataset::is_builtin(&set.set));
    let root = if needs_package { data_dir.eval_package(args.no_pull)? } else { PathBuf::new() };
    let seed = args.seed.unwrap_or(0);
    let sample = mix.sample(args.limit, seed, |set| dataset::load(set, &root))?;
    if args.limit.is_some_and(|limit| limit > sample.capacity) {
        eprintln!(
            "mix `{}` gives at most {} items in its proportions (a set would run out); taking {}",
            mix.name,
            sample.capacity,
            sample.items.len()
        );
    }
    eprintln!("mix `{}`: {} items (seed {seed})", mix.name, sample.items.len());
    let mut domains: Vec<(&str, usize)> = Vec::new();
    for draw in &sample.draws {
        match domains.iter_mut().find(|(domain, _)| *domain == draw.domain) {
            Some((_, count)) => *count += draw.drawn,
            None => domains.push((&draw.domain, draw.drawn)),
        }
    }
    for (domain, count) in domains {
        let sets: Vec<String> = sample
            .draws
            .iter()
            .filter(|draw| draw.domain == domain && draw.drawn > 0)
            .map(|draw| format!("{} {}", draw.set, draw.drawn))
            .collect();
        eprintln!("  {domain:<18} {count:>5}  {}", sets.join(", "));
    }
    Ok(sample.items)
}

async fn answer_all(
    backend: &dyn Backend,
    run: &str,
    todo: &[(&EvalItem, &EvalRoute)],
    format: AnswerFormat,
    judge: Option<&Judge<'_>>,
    log: &mut EvalLog,
) -> anyhow::Result<()> {
    let bar = crate::progress::bar(todo.len() as u64, "evaluating");
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut skipped = 0u64;
    for (item, target) in todo {
        bar.set_message(format!("{} {}", target.label(), item.dataset));
        match answer_with_judge(backend, run, item, target, format, judge).await {
            Ok(answered) => {
                log.insert(&answered.query, &answered.result)?;
                failures.insert(target.label(), 0);
            }
            Err(error) => {
                skipped += 1;
                bar.suspend(|| eprintln!("{} {}/{}: {error}", target.label(), item.dataset, item.id));
                let count = failures.entry(target.label()).or_default();
                *count += 1;
                if *count >= MAX_CONSECUTIVE_FAILURES || matches!(error, RunError::Backend(_)) && *count >= 2 {
                    bar.abandon();
                    anyhow::bail!(
                        "{} failed {count} times in a row (last: {error}); fix it and run the same \
                         command again: the answers logged so far are kept and skipped",
                        target.label()
                    );
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if skipped > 0 {
        eprintln!("{skipped} answers were not graded (see above); run the same command again to retry them");
    }
    Ok(())
}

/// Checks that code can be run (before any model is loaded) and says how it is isolated.
fn report_sandbox() -> anyhow::Result<()> {
    let sandbox = edgeway_eval::sandbox::Sandbox::shared().context("code sets are graded by running their tests")?;
    let limits = sandbox.limits();
    let fallback = sandbox.namespace_error().map(|why| format!(" (no network namespace: {why})")).unwrap_or_default();
    eprintln!(
        "code runs in {} with {}{fallback}, {} s, {} MiB",
        sandbox.python().display(),
        sandbox.isolation().as_str(),
        limits.wall.as_secs(),
        limits.memory_bytes >> 20
    );
    Ok(())
}

/// Grades the logged answers of `run` to these items again.
fn regrade(log: &EvalLog, run: &str, items: &[EvalItem]) -> anyhow::Result<()> {
    let by_key: std::collections::HashMap<(&str, &str), &EvalItem> =
        items.iter().map(|item| ((item.dataset.as_str(), item.id.as_str()), item)).collect();
    let (mut seen, mut changed, mut judged) = (0, 0, 0);
    for result in log.results(run)? {
        let Some(item) = by_key.get(&(result.dataset.as_str(), result.item_id.as_str())) else { continue };
        // A judge's rating stands: judging again would only ask the same judge the same thing.
        if edgeway_eval::task::needs_judge(item) {
            judged += 1;
            continue;
        }
        seen += 1;
        let grade = edgeway_eval::task::try_grade(item, &result.answer)?;
        let key = (run, result.dataset.as_str(), result.item_id.as_str(), result.route.as_str());
        if log.update_grade(key, grade.score, grade.correct, grade.extracted.as_deref())? {
            changed += 1;
        }
    }
    eprintln!("regraded {seen} logged answers: {changed} changed");
    if judged > 0 {
        eprintln!("{judged} judged answers kept their ratings (start a new --run to judge again)");
    }
    Ok(())
}

/// Accuracy, latency and cost per set and side (and per domain, for a mix).
fn print_summary(results: &[edgeway_store::EvalRecord], run: &str, by_domain: bool) {
    #[derive(Default)]
    struct Row {
        n: u64,
        correct: u64,
        grade: f64,
        latency_ms: f64,
        cost: f64,
        energy_j: f64,
    }
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for r in results {
        let mut keys = vec![(r.dataset.clone(), r.route.clone()), ("all".to_owned(), r.route.clone())];
        if by_domain {
            let domain = r.domain.as_deref().unwrap_or("general");
            keys.push((format!("[{domain}]"), r.route.clone()));
        }
        for key in keys {
            let row = rows.entry(key).or_default();
            row.n += 1;
            row.correct += u64::from(r.correct);
            row.grade += r.grade;
            row.latency_ms += r.latency_ms;
            row.cost += r.cost;
            row.energy_j += r.energy_j.unwrap_or(0.0);
        }
    }
    println!("run `{run}`");
    println!(
        "{:<18} {:<6} {:>6} {:>9} {:>8} {:>11} {:>14} {:>10}",
        "set", "side", "n", "accuracy", "grade", "latency ms", "cost/query", "J/query"
    );
    for ((set, side), row) in &rows {
        let n = row.n.max(1) as f64;
        println!(
            "{:<18} {:<6} {:>6} {:>8.1}% {:>8.3} {:>11.0} {:>14.8} {:>10.2}",
            set,
            side,
            row.n,
            100.0 * row.correct as f64 / n,
            row.grade / n,
            row.latency_ms / n,
            row.cost / n,
            row.energy_j / n
        );
    }
}
