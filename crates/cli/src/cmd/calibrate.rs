//! `edgeway calibrate`: thresholds that meet a quality target at the lowest cost, from graded answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use edgeway_calibrate::boundaries::{choose_boundaries, tier_of_label, Boundary, BoundaryItems, LadderThresholds};
use edgeway_calibrate::curve::{apgr, cpt, oracle_curve, random_curve, share_to_reach, threshold_curve, tiers};
use edgeway_calibrate::plot::{quality_vs_share, Series};
use edgeway_calibrate::policy::{
    apply, apply_by_domain, apply_by_set, choose, GroupSplit, Outcome, RoutingPolicy, Search,
};
use edgeway_calibrate::train::Trained;
use edgeway_calibrate::train_embedding::{train_embedding, TrainedEmbedding};
use edgeway_calibrate::{pair_routes, pair_up, split, train, Baselines, Pair, Point};
use edgeway_core::{ChatMessage, EmbeddingBackend, Prompt};
use edgeway_policy::learned::{featurize, LearnedModel};
use edgeway_policy::{ComplexityScorer, EmbeddingSpec, LearnedScorer, TransparentScorer};
use edgeway_store::{EvalLog, EvalRecord};
use serde_json::json;

use crate::app::DataDir;
use crate::cli::CalibrateArgs;
use crate::config::{FileConfig, DEFAULT_CONFIG_FILE};

/// Fewest paired items worth calibrating on.
const MIN_PAIRS: usize = 20;

/// Runs `edgeway calibrate`: edge vs cloud, or with `--tiers` every boundary of a ladder of tiers.
pub fn run(data_dir_flag: Option<PathBuf>, args: CalibrateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.target > 0.0 && args.target <= 1.0,
        "--target is a fraction of cloud-only quality, between 0 and 1 (e.g. 0.95); got {}",
        args.target
    );
    anyhow::ensure!(
        args.calibration_share > 0.0 && args.calibration_share < 1.0,
        "--calibration-share must be between 0 and 1 (both splits need items)"
    );
    let ladder = if args.tiers.is_empty() { None } else { Some(parse_ladder(&args.tiers)?) };
    let kind = ScorerKind::parse(&args.scorer)?;
    let file = FileConfig::load(args.config.as_deref())?;
    let data_dir = DataDir::resolve(data_dir_flag, file.data_dir.clone());
    let log_path = data_dir.query_log(args.log_path.clone().or(file.log.path.clone()).as_deref());
    anyhow::ensure!(log_path.is_file(), "no query log at {}; run `edgeway eval` first", log_path.display());
    let log = EvalLog::open(&log_path).with_context(|| format!("cannot open the query log {}", log_path.display()))?;
    let run = match args.run.clone() {
        Some(run) => run,
        None => log.latest_run()?.with_context(|| {
            format!("the query log {} holds no graded answers; run `edgeway eval` first", log_path.display())
        })?,
    };
    let edge_records = log.results(&run)?;
    anyhow::ensure!(
        !edge_records.is_empty(),
        "no graded answers under run `{run}`; runs in the log: {}",
        list_runs(&log)
    );
    if let Some(ladder) = &ladder {
        return run_tiers(&args, kind, &file, &data_dir, &run, &edge_records, ladder);
    }
    let cloud_records = match &args.cloud_run {
        Some(cloud_run) => log.results(cloud_run)?,
        None => edge_records.clone(),
    };
    let pairs = pair_up(&edge_records, &cloud_records);
    anyhow::ensure!(
        pairs.len() >= MIN_PAIRS,
        "run `{run}` has {} items answered by both sides; calibration needs at least {MIN_PAIRS} \
         (run `edgeway eval --route both`, or --cloud-run RUN for cloud answers from another run)",
        pairs.len()
    );
    let (calibration, held_out) = split(pairs, args.calibration_share);
    anyhow::ensure!(
        calibration.len() >= MIN_PAIRS / 2 && held_out.len() >= MIN_PAIRS / 2,
        "too few items on one side of the split"
    );

    let trained = train::train(&calibration, &run);
    let learned_held = learned_scores(&trained.model, &held_out);
    let transparent_calibration = transparent_scores(&calibration);
    let transparent_held = transparent_scores(&held_out);
    // The embedding scorer, trained on the same split when the embedding model is at hand.
    let embedded = match question_embedder(kind, &file, &data_dir)? {
        Some(embedder) => {
            let questions = EmbeddedQuestions::embed(&embedder, calibration.iter().chain(&held_out))?;
            let trained = train_embedding(&calibration, &questions.of(&calibration)?, questions.spec.clone(), &run);
            let held = embedding_scores(&trained, &held_out, &questions.of(&held_out)?);
            Some((trained, held))
        }
        None => None,
    };
    let (scores_calibration, scores_held) = match (kind, &embedded) {
        (ScorerKind::Learned, _) => (&trained.out_of_fold, &learned_held),
        (ScorerKind::Embedding, Some((trained, held))) => (&trained.out_of_fold, held),
        (ScorerKind::Embedding, None) => anyhow::bail!("the embedding scorer needs the embedding model"),
        (ScorerKind::Transparent, _) => (&transparent_calibration, &transparent_held),
    };

    println!(
        "run `{run}`{}: {} paired items, {} to calibrate, {} held out; target {:.0} % of cloud-only quality; scorer: {}",
        args.cloud_run.as_ref().map(|c| format!(" (cloud answers from `{c}`)")).unwrap_or_default(),
        calibration.len() + held_out.len(),
        calibration.len(),
        held_out.len(),
        args.target * 100.0,
        args.scorer
    );
    print_tiers(&calibration, scores_calibration);

    let search = Search { target: args.target, min_domain_items: args.min_domain_items, escalation: false };
    let score_only = choose(&calibration, scores_calibration, search);
    let policy = if args.no_escalation {
        score_only.clone()
    } else {
        choose(&calibration, scores_calibration, Search { escalation: true, ..search })
    };
    print_policy(&policy, &score_only);

    println!("\nheld-out split ({} items):", held_out.len());
    let held_base = Baselines::of(&held_out);
    let goal = args.target * held_base.cloud_quality;
    let mut curves = vec![("learned", threshold_curve(&held_out, &learned_held, None))];
    if let Some((_, held)) = &embedded {
        curves.push(("embedding", threshold_curve(&held_out, held, None)));
    }
    curves.extend([
        ("transparent", threshold_curve(&held_out, &transparent_held, None)),
        ("random", random_curve(&held_base, 1000)),
        ("oracle", oracle_curve(&held_out)),
    ]);
    let comparison = print_comparison(&curves, &held_base, goal, args.target);
    let (shipped_policy, shipped_scorer) = shipped_defaults()?;
    let outcomes = [
        ("all edge", apply(&all_edge(), &held_out, scores_held)),
        ("all cloud", apply(&all_cloud(), &held_out, scores_held)),
        ("shipped defaults", apply(&shipped_policy, &held_out, &learned_scores(shipped_scorer.model(), &held_out))),
        ("calibrated, score only", apply(&score_only, &held_out, scores_held)),
        ("calibrated", apply(&policy, &held_out, scores_held)),
    ];
    print_outcomes(&outcomes);
    let domains = apply_by_domain(&policy, &held_out, scores_held);
    print_groups("domain", &domains);
    let sets = apply_by_set(&policy, &held_out, scores_held);
    print_groups("set", &sets);

    let config_path = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    let plot_path = args.plot.clone().unwrap_or_else(|| {
        config_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("calibration.svg")
    });
    let series: Vec<Series> = curves
        .iter()
        .map(|(name, points)| Series {
            label: (*name).to_owned(),
            colour: match *name {
                "learned" => "#1f77b4",
                "embedding" => "#ff7f0e",
                "transparent" => "#2ca02c",
                "random" => "#7f7f7f",
                _ => "#d62728",
            },
            dashed: matches!(*name, "random" | "oracle"),
            points,
        })
        .collect();
    let svg = quality_vs_share(
        &format!("{run}: held-out quality vs cloud share"),
        &series,
        Some((goal, format!("{:.0} % of cloud-only", args.target * 100.0))),
    );
    std::fs::write(&plot_path, svg).with_context(|| format!("cannot write the plot {}", plot_path.display()))?;
    println!("\nplot: {}", plot_path.display());

    if let Some(json_path) = &args.json {
        let report = json!({
            "run": run,
            "cloud_run": args.cloud_run,
            "target": args.target,
            "scorer": args.scorer,
            "items": { "calibration": calibration.len(), "held_out": held_out.len() },
            "learned": { "cv_apgr": trained.cv_apgr, "l2": trained.model.training.l2 },
            "embedding": embedded.as_ref().map(|(trained, _)| embedding_json(trained)),
            "policy": policy_json(&policy),
            "score_only_policy": policy_json(&score_only),
            "held_out": {
                "edge_quality": held_base.edge_quality,
                "cloud_quality": held_base.cloud_quality,
                "scorers": comparison,
                "outcomes": outcomes.iter().map(|(name, o)| json!({
                    "policy": name, "quality": o.quality, "relative_quality": o.relative_quality,
                    "cloud_share": o.cloud_share, "escalated_share": o.escalated_share, "cost_per_query": o.cost,
                    "edge_energy_j_per_query": o.edge_energy_j,
                })).collect::<Vec<_>>(),
                "domains": groups_json("domain", &domains),
                "sets": groups_json("set", &sets),
            },
        });
        std::fs::write(json_path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", json_path.display()))?;
    }

    let scorer_path = scorer_path(&args, kind, &file, &data_dir);
    let written = kind.written(&scorer_path);
    if args.dry_run {
        println!("\n--dry-run: nothing written. The settings, for [routing] in {}:", config_path.display());
        println!("{}", routing_toml(&policy, written)?);
        return Ok(());
    }
    match (kind, &embedded) {
        (ScorerKind::Learned, _) => {
            trained.model.save(&scorer_path).with_context(|| format!("cannot write {}", scorer_path.display()))?;
            println!("learned scorer: {}", scorer_path.display());
        }
        (ScorerKind::Embedding, Some((trained, _))) => {
            trained.model.save(&scorer_path).with_context(|| format!("cannot write {}", scorer_path.display()))?;
            println!("embedding scorer ({}): {}", trained.model.classifier.describe(), scorer_path.display());
        }
        _ => {}
    }
    write_config(&config_path, &policy, written)?;
    println!("thresholds written to {}; restart `edgeway serve` to use them", config_path.display());
    Ok(())
}

/// The scorer `--scorer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScorerKind {
    /// The hashed-word logistic regression.
    Learned,
    /// The scorer over the questions' sentence embeddings.
    Embedding,
    /// The shipped feature-weighted scorer (nothing to train).
    Transparent,
}

impl ScorerKind {
    fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "learned" => Ok(Self::Learned),
            "embedding" => Ok(Self::Embedding),
            "transparent" => Ok(Self::Transparent),
            other => anyhow::bail!("--scorer is `learned`, `embedding` or `transparent`, not `{other}`"),
        }
    }

    /// The config's name for it.
    fn name(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Embedding => "embedding",
            Self::Transparent => "transparent",
        }
    }

    /// What the config records: the scorer and its file, or nothing for the transparent one.
    fn written(self, path: &Path) -> Option<WrittenScorer<'_>> {
        (self != Self::Transparent).then_some(WrittenScorer { kind: self.name(), path })
    }
}

/// A trained scorer as the config names it: `scorer` and `scorer_path`.
#[derive(Debug, Clone, Copy)]
struct WrittenScorer<'a> {
    kind: &'static str,
    path: &'a Path,
}

/// Where the trained scorer goes: the flag, else the config's `scorer_path` when the config names
/// the same scorer (a file of one kind is never overwritten with the other), else the data directory's.
fn scorer_path(args: &CalibrateArgs, kind: ScorerKind, file: &FileConfig, data_dir: &DataDir) -> PathBuf {
    if let Some(path) = &args.scorer_path {
        return path.clone();
    }
    // A scorer_path without a scorer has always meant the learned scorer.
    let configured = file.routing.scorer.as_deref().unwrap_or("learned");
    match (&file.routing.scorer_path, kind) {
        (Some(path), kind) if configured == kind.name() => path.clone(),
        (_, ScorerKind::Embedding) => data_dir.embedding_scorer(),
        _ => data_dir.learned_scorer(),
    }
}

/// The embedding model `serve` embeds with, to embed the questions: required for
/// `--scorer embedding` (converted on first use if need be), else used for the comparison when
/// it is already in the cache. `None` when it is off or missing (the comparison says so).
fn question_embedder(
    kind: ScorerKind,
    file: &FileConfig,
    data_dir: &DataDir,
) -> anyhow::Result<Option<Arc<edgeway_engine::Embedder>>> {
    let needed = kind == ScorerKind::Embedding;
    if !file.embeddings.enabled.unwrap_or(true) {
        anyhow::ensure!(
            !needed,
            "the embedding scorer reads the embedding model, and the config turns embeddings off \
             ([embeddings] enabled = false), so `serve` could not use it"
        );
        println!("note: embeddings are off in the config; no embedding scorer in the comparison");
        return Ok(None);
    }
    let spec = file.embeddings.model.clone().unwrap_or_else(|| edgeway_models::DEFAULT_EMBEDDING_MODEL.to_owned());
    match crate::app::engine::load_embedder(&spec, &data_dir.cache(), needed, None) {
        Ok(embedder) => Ok(Some(embedder)),
        Err(error) if !needed => {
            println!("note: no embedding scorer in the comparison ({error:#})");
            Ok(None)
        }
        Err(error) => Err(error.context("the embedding scorer needs the embedding model `serve` embeds with")),
    }
}

/// Each item's question embedded once, by the model `serve` embeds with.
struct EmbeddedQuestions {
    spec: EmbeddingSpec,
    vectors: HashMap<(String, String), Vec<f32>>,
}

impl EmbeddedQuestions {
    /// Embeds the questions of `pairs` (each item once).
    fn embed<'a>(embedder: &edgeway_engine::Embedder, pairs: impl Iterator<Item = &'a Pair>) -> anyhow::Result<Self> {
        let mut items: Vec<((String, String), String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pair in pairs {
            if seen.insert((pair.dataset.clone(), pair.item_id.clone())) {
                items.push(((pair.dataset.clone(), pair.item_id.clone()), pair.question.clone()));
            }
        }
        let info = embedder.embedding_info();
        let started = Instant::now();
        let mut vectors = HashMap::with_capacity(items.len());
        for batch in items.chunks(32) {
            let texts: Vec<String> = batch.iter().map(|(_, question)| question.clone()).collect();
            let output = embedder.embed(&texts).context("cannot embed the questions")?;
            for ((key, _), vector) in batch.iter().zip(output.vectors) {
                vectors.insert(key.clone(), vector);
            }
        }
        println!(
            "embedded {} questions with {} ({} dims) in {:.1} s",
            items.len(),
            info.id,
            info.dims,
            started.elapsed().as_secs_f64()
        );
        Ok(Self { spec: EmbeddingSpec { model: info.id.clone(), dims: info.dims }, vectors })
    }

    /// The vectors of `pairs`' questions, in order.
    fn of(&self, pairs: &[Pair]) -> anyhow::Result<Vec<Vec<f32>>> {
        pairs
            .iter()
            .map(|p| {
                self.vectors
                    .get(&(p.dataset.clone(), p.item_id.clone()))
                    .cloned()
                    .with_context(|| format!("no embedding of {}/{}", p.dataset, p.item_id))
            })
            .collect()
    }
}

/// An embedding model's score of each pair's question, given its embedding.
fn embedding_scores(trained: &TrainedEmbedding, pairs: &[Pair], vectors: &[Vec<f32>]) -> Vec<f32> {
    pairs
        .iter()
        .zip(vectors)
        .map(|(p, v)| trained.model.predict(&edgeway_calibrate::train_embedding::features(p, v)))
        .collect()
}

/// The embedding scorer's part of the JSON report.
fn embedding_json(trained: &TrainedEmbedding) -> serde_json::Value {
    json!({
        "cv_apgr": trained.cv_apgr,
        "classifier": trained.model.classifier.describe(),
        "embedding_model": trained.model.embedding.model,
        "dims": trained.model.embedding.dims,
    })
}

/// The transparent scorer's score of each pair's question, as the router computes it.
fn transparent_scores(pairs: &[Pair]) -> Vec<f32> {
    pairs
        .iter()
        .map(|p| TransparentScorer.score(&Prompt::Chat(vec![ChatMessage::new("user", p.question.clone())])).value)
        .collect()
}

/// A learned model's score of each pair's question.
fn learned_scores(model: &LearnedModel, pairs: &[Pair]) -> Vec<f32> {
    pairs.iter().map(|p| model.predict(&featurize(&p.question.to_lowercase(), model.hash_buckets))).collect()
}

/// What `serve` routes with before any calibration: the shipped scorer and its settings.
fn shipped_defaults() -> anyhow::Result<(RoutingPolicy, LearnedScorer)> {
    let routing = crate::shipped::routing()?;
    let policy = RoutingPolicy {
        default_threshold: routing.threshold.unwrap_or(edgeway_policy::Thresholds::defaults().of("general")),
        domain_thresholds: routing.thresholds.into_iter().collect(),
        escalate_below: routing.escalate_below_logprob.map(f64::from),
    };
    Ok((policy, crate::shipped::scorer()?))
}

fn list_runs(log: &EvalLog) -> String {
    match log.runs() {
        Ok(runs) if !runs.is_empty() => {
            runs.iter().map(|(run, n)| format!("`{run}` ({n})")).collect::<Vec<_>>().join(", ")
        }
        _ => "none".into(),
    }
}

fn all_edge() -> RoutingPolicy {
    RoutingPolicy { default_threshold: f32::INFINITY, domain_thresholds: Default::default(), escalate_below: None }
}

fn all_cloud() -> RoutingPolicy {
    RoutingPolicy { default_threshold: f32::NEG_INFINITY, domain_thresholds: Default::default(), escalate_below: None }
}

fn print_tiers(pairs: &[Pair], scores: &[f32]) {
    println!("\naccuracy per complexity decile (calibration split):");
    println!("{:>6} {:>17} {:>6} {:>8} {:>8} {:>8}", "decile", "score range", "n", "edge", "cloud", "gap");
    for (index, tier) in tiers(pairs, scores, 10).iter().enumerate() {
        println!(
            "{:>6} {:>8.3}–{:<8.3} {:>6} {:>7.1}% {:>7.1}% {:>+7.1}",
            index + 1,
            tier.low,
            tier.high,
            tier.n,
            tier.edge_quality * 100.0,
            tier.cloud_quality * 100.0,
            (tier.cloud_quality - tier.edge_quality) * 100.0
        );
    }
}

fn print_policy(policy: &RoutingPolicy, score_only: &RoutingPolicy) {
    println!("\nchosen on the calibration split:");
    println!("  threshold (default): {:.4}", policy.default_threshold);
    for (domain, threshold) in &policy.domain_thresholds {
        println!("  threshold ({domain}): {threshold:.4}");
    }
    match policy.escalate_below {
        Some(limit) => println!("  escalate edge answers with mean logprob below {limit:.3}"),
        None => println!("  no confidence escalation (it did not lower the cost)"),
    }
    if policy != score_only {
        println!("  (score only, without escalation: default threshold {:.4})", score_only.default_threshold);
    }
}

/// Per scorer: cloud share to reach the target, APGR and CPT, on the held-out split.
fn print_comparison(curves: &[(&str, Vec<Point>)], base: &Baselines, goal: f64, target: f64) -> serde_json::Value {
    println!(
        "  edge alone {:.1} %, cloud alone {:.1} %; the target is {:.1} %",
        base.edge_quality * 100.0,
        base.cloud_quality * 100.0,
        goal * 100.0
    );
    println!(
        "{:<12} {:>22} {:>8} {:>9} {:>9} {:>9}",
        "scorer",
        format!("cloud share @ {:.0} %", target * 100.0),
        "APGR",
        "CPT(50%)",
        "CPT(80%)",
        "CPT(95%)"
    );
    let percent = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
    let mut rows = Vec::new();
    let random_share = curves.iter().find(|(n, _)| *n == "random").and_then(|(_, c)| share_to_reach(c, goal));
    for (name, curve) in curves {
        let share = share_to_reach(curve, goal);
        let row = json!({
            "scorer": name,
            "cloud_share_to_target": share,
            "vs_random": share.zip(random_share).map(|(s, r)| if r > 0.0 { s / r } else { f64::NAN }),
            "apgr": apgr(curve, base),
            "cpt50": cpt(curve, base, 0.5),
            "cpt80": cpt(curve, base, 0.8),
            "cpt95": cpt(curve, base, 0.95),
        });
        println!(
            "{:<12} {:>22} {:>8} {:>9} {:>9} {:>9}",
            name,
            match (share, random_share) {
                (Some(s), Some(r)) if r > 0.0 && *name != "random" =>
                    format!("{} ({:.2}× random)", percent(Some(s)), s / r),
                _ => percent(share),
            },
            apgr(curve, base).map_or("–".into(), |a| format!("{a:.3}")),
            percent(cpt(curve, base, 0.5)),
            percent(cpt(curve, base, 0.8)),
            percent(cpt(curve, base, 0.95))
        );
        rows.push(row);
    }
    serde_json::Value::Array(rows)
}

fn print_outcomes(outcomes: &[(&str, Outcome)]) {
    println!(
        "\n{:<24} {:>8} {:>10} {:>12} {:>11} {:>14} {:>9}",
        "policy", "quality", "of cloud", "cloud calls", "escalated", "cost/query", "edge J/q"
    );
    for (name, o) in outcomes {
        println!(
            "{:<24} {:>7.1}% {:>9.1}% {:>11.1}% {:>10.1}% {:>14.8} {:>9.2}",
            name,
            o.quality * 100.0,
            o.relative_quality * 100.0,
            o.cloud_share * 100.0,
            o.escalated_share * 100.0,
            o.cost,
            o.edge_energy_j
        );
    }
}

/// The per-domain (or per-set) split on the held-out items: how much of each one's traffic the edge keeps.
fn print_groups(kind: &str, groups: &[GroupSplit]) {
    println!(
        "\n{:<20} {:>6} {:>7} {:>8} {:>17} {:>14} {:>14} {:>16}",
        kind, "items", "edge", "cloud", "quality vs cloud", "cost/query", "all-cloud c/q", "all-edge quality"
    );
    for d in groups {
        println!(
            "{:<20} {:>6} {:>6.1}% {:>7.1}% {:>16.1}% {:>14.8} {:>14.8} {:>15.1}%",
            d.group,
            d.items,
            (1.0 - d.routed.cloud_share) * 100.0,
            d.routed.cloud_share * 100.0,
            d.routed.relative_quality * 100.0,
            d.routed.cost,
            d.all_cloud.cost,
            d.all_edge.relative_quality * 100.0
        );
    }
}

/// The per-domain (or per-set) split as the JSON report holds it; `kind` names the group's key.
fn groups_json(kind: &str, groups: &[GroupSplit]) -> Vec<serde_json::Value> {
    groups
        .iter()
        .map(|d| {
            json!({
                kind: d.group, "items": d.items, "edge_share": 1.0 - d.routed.cloud_share,
                "cloud_share": d.routed.cloud_share, "relative_quality": d.routed.relative_quality,
                "cost_per_query": d.routed.cost, "all_cloud_cost_per_query": d.all_cloud.cost,
                "all_edge_relative_quality": d.all_edge.relative_quality,
            })
        })
        .collect()
}

fn policy_json(policy: &RoutingPolicy) -> serde_json::Value {
    json!({
        "threshold": policy.default_threshold,
        "thresholds": policy.domain_thresholds,
        "escalate_below_logprob": policy.escalate_below,
    })
}

/// Thresholds for the config: in `[0, 1]`, rounded so the file stays readable.
fn config_threshold(threshold: f32) -> f64 {
    (f64::from(threshold.clamp(0.0, 1.0)) * 10_000.0).round() / 10_000.0
}

/// The `[routing]` keys calibration owns, set in `document` (other keys and comments are kept).
fn set_routing(
    document: &mut toml_edit::DocumentMut,
    policy: &RoutingPolicy,
    scorer: Option<WrittenScorer>,
) -> anyhow::Result<()> {
    use toml_edit::{value, Item, Table};
    let routing = routing_table(document)?;
    routing["threshold"] = value(config_threshold(policy.default_threshold));
    set_scorer(routing, scorer);
    match policy.escalate_below {
        Some(limit) => routing["escalate_below_logprob"] = value((limit * 1000.0).round() / 1000.0),
        None => {
            routing.remove("escalate_below_logprob");
        }
    }
    // Domains defined in [[routing.domains]] keep their threshold there; the rest go in [routing.thresholds].
    let mut remaining = policy.domain_thresholds.clone();
    if let Some(domains) = routing.get_mut("domains").and_then(Item::as_array_of_tables_mut) {
        for domain in domains.iter_mut() {
            let name = domain.get("name").and_then(Item::as_str).map(str::to_owned);
            match name.and_then(|name| remaining.remove(&name)) {
                Some(threshold) => domain["threshold"] = value(config_threshold(threshold)),
                None => {
                    domain.remove("threshold");
                }
            }
        }
    }
    let mut thresholds = Table::new();
    for (domain, threshold) in remaining {
        thresholds[domain.as_str()] = value(config_threshold(threshold));
    }
    routing.remove("thresholds");
    if !thresholds.is_empty() {
        routing["thresholds"] = Item::Table(thresholds);
    }
    Ok(())
}

/// The `[routing]` table of `document`, created if missing.
fn routing_table(document: &mut toml_edit::DocumentMut) -> anyhow::Result<&mut toml_edit::Table> {
    let routing = document.entry("routing").or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    routing.as_table_mut().context("`routing` in the config is not a table")
}

/// The scorer the thresholds were chosen for: a trained one and its file, or the transparent one.
fn set_scorer(routing: &mut toml_edit::Table, scorer: Option<WrittenScorer>) {
    use toml_edit::value;
    match scorer {
        Some(WrittenScorer { kind, path }) => {
            routing["scorer"] = value(kind);
            routing["scorer_path"] = value(path.display().to_string());
        }
        None => {
            routing["scorer"] = value("transparent");
            routing.remove("scorer_path");
        }
    }
}

fn routing_toml(policy: &RoutingPolicy, scorer: Option<WrittenScorer>) -> anyhow::Result<String> {
    let mut document = toml_edit::DocumentMut::new();
    set_routing(&mut document, policy, scorer)?;
    Ok(document.to_string())
}

/// Writes the policy into the config file (created if missing), keeping everything else in it.
fn write_config(path: &Path, policy: &RoutingPolicy, scorer: Option<WrittenScorer>) -> anyhow::Result<()> {
    let mut document = read_config(path)?;
    set_routing(&mut document, policy, scorer)?;
    save_config(path, &document)
}

/// The config file as an editable document (empty if the file is missing).
fn read_config(path: &Path) -> anyhow::Result<toml_edit::DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    text.parse().with_context(|| format!("{} is not valid TOML; fix it or pass --dry-run", path.display()))
}

/// Replaces the config file with `document`, through a temporary file so a failed write leaves the old one.
fn save_config(path: &Path, document: &toml_edit::DocumentMut) -> anyhow::Result<()> {
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, document.to_string()).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// One rung of the `--tiers` ladder: the eval route label and its tier.
#[derive(Debug, Clone, PartialEq)]
struct Rung {
    label: String,
    tier: u32,
}

/// The `--tiers` labels as a ladder, lowest tier first.
fn parse_ladder(labels: &[String]) -> anyhow::Result<Vec<Rung>> {
    let rungs = labels
        .iter()
        .map(|label| {
            let label = label.trim();
            let tier = tier_of_label(label).with_context(|| {
                format!(
                    "--tiers takes the route labels `edgeway eval --route tier0,tier1,…` logs answers under \
                     (`tierN`); `{label}` is not one"
                )
            })?;
            Ok(Rung { label: label.to_owned(), tier })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(rungs.len() >= 2, "--tiers needs at least two tiers, lowest first (e.g. --tiers tier0,tier1)");
    for step in rungs.windows(2) {
        anyhow::ensure!(
            step[0].tier < step[1].tier,
            "--tiers lists the ladder lowest tier first, each tier once; `{}` comes after `{}`",
            step[1].label,
            step[0].label
        );
    }
    Ok(rungs)
}

/// The `edgeway eval` command that logs answers for every rung of `ladder` under `run`.
fn eval_command(ladder: &[Rung], run: &str) -> String {
    let routes: Vec<&str> = ladder.iter().map(|r| r.label.as_str()).collect();
    format!("edgeway eval --route {} --run {run}", routes.join(","))
}

/// One boundary's paired items, split as the two-sided path splits them.
struct BoundarySplit<'a> {
    lower: &'a Rung,
    upper: &'a Rung,
    calibration: Vec<Pair>,
    held_out: Vec<Pair>,
}

/// Pairs each two adjacent rungs' answers and splits them; every boundary needs [`MIN_PAIRS`] items.
fn boundary_splits<'a>(
    records: &[EvalRecord],
    ladder: &'a [Rung],
    run: &str,
    calibration_share: f64,
) -> anyhow::Result<Vec<BoundarySplit<'a>>> {
    let mut splits = Vec::new();
    for step in ladder.windows(2) {
        let (lower, upper) = (&step[0], &step[1]);
        let pairs = pair_routes((records, &lower.label), (records, &upper.label));
        anyhow::ensure!(
            pairs.len() >= MIN_PAIRS,
            "the boundary {} → {}: run `{run}` has {} items answered on both routes; calibration needs at least \
             {MIN_PAIRS} per boundary (run `{}`)",
            lower.label,
            upper.label,
            pairs.len(),
            eval_command(ladder, run)
        );
        let (calibration, held_out) = split(pairs, calibration_share);
        anyhow::ensure!(
            calibration.len() >= MIN_PAIRS / 2 && held_out.len() >= MIN_PAIRS / 2,
            "the boundary {} → {}: too few items on one side of the split (run `{}` on more items)",
            lower.label,
            upper.label,
            eval_command(ladder, run)
        );
        splits.push(BoundarySplit { lower, upper, calibration, held_out });
    }
    Ok(splits)
}

/// The router's one scorer, for every boundary of the ladder.
enum LadderScorer {
    /// The shipped scorer.
    Transparent,
    /// Trained as the two-sided path trains it, on the calibration split of the ladder's two ends
    /// (lowest rung as the edge, highest as the cloud). Its training items keep their out-of-fold scores.
    Learned { trained: Box<Trained>, out_of_fold: HashMap<(String, String), f32> },
    /// The embedding scorer, trained the same way; every item's question is embedded once.
    Embedding {
        trained: Box<TrainedEmbedding>,
        out_of_fold: HashMap<(String, String), f32>,
        questions: EmbeddedQuestions,
    },
}

impl LadderScorer {
    fn new(
        kind: ScorerKind,
        records: &[EvalRecord],
        ladder: &[Rung],
        run: &str,
        share: f64,
        embedder: Option<&edgeway_engine::Embedder>,
    ) -> anyhow::Result<Self> {
        if kind == ScorerKind::Transparent {
            return Ok(Self::Transparent);
        }
        let (lowest, highest) = (&ladder[0], &ladder[ladder.len() - 1]);
        let (calibration, _) = split(pair_routes((records, &lowest.label), (records, &highest.label)), share);
        anyhow::ensure!(
            calibration.len() >= MIN_PAIRS / 2,
            "the {} scorer is trained on the items both {} and {} answered, and run `{run}` has too few \
             (run `{}`, or pass --scorer transparent)",
            kind.name(),
            lowest.label,
            highest.label,
            eval_command(ladder, run)
        );
        let keyed = |scores: &[f32]| {
            calibration
                .iter()
                .zip(scores)
                .map(|(p, score)| ((p.dataset.clone(), p.item_id.clone()), *score))
                .collect::<HashMap<_, _>>()
        };
        if kind == ScorerKind::Embedding {
            let embedder = embedder.context("the embedding scorer needs the embedding model")?;
            let every_item: Vec<Pair> = ladder
                .windows(2)
                .flat_map(|step| pair_routes((records, &step[0].label), (records, &step[1].label)))
                .collect();
            let questions = EmbeddedQuestions::embed(embedder, every_item.iter())?;
            let trained = train_embedding(&calibration, &questions.of(&calibration)?, questions.spec.clone(), run);
            let out_of_fold = keyed(&trained.out_of_fold);
            return Ok(Self::Embedding { trained: Box::new(trained), out_of_fold, questions });
        }
        let trained = train::train(&calibration, run);
        let out_of_fold = keyed(&trained.out_of_fold);
        Ok(Self::Learned { trained: Box::new(trained), out_of_fold })
    }

    /// Each pair's score: out of fold for the scorer's training items, else the model's (or the transparent) score.
    fn scores(&self, pairs: &[Pair]) -> anyhow::Result<Vec<f32>> {
        let out_of_fold_or = |out_of_fold: &HashMap<(String, String), f32>, scores: Vec<f32>| {
            pairs
                .iter()
                .zip(scores)
                .map(|(p, score)| out_of_fold.get(&(p.dataset.clone(), p.item_id.clone())).copied().unwrap_or(score))
                .collect()
        };
        Ok(match self {
            Self::Transparent => transparent_scores(pairs),
            Self::Learned { trained, out_of_fold } => {
                out_of_fold_or(out_of_fold, learned_scores(&trained.model, pairs))
            }
            Self::Embedding { trained, out_of_fold, questions } => {
                out_of_fold_or(out_of_fold, embedding_scores(trained, pairs, &questions.of(pairs)?))
            }
        })
    }
}

/// `edgeway calibrate --tiers`: thresholds for every boundary of a ladder, written as tier thresholds.
fn run_tiers(
    args: &CalibrateArgs,
    kind: ScorerKind,
    file: &FileConfig,
    data_dir: &DataDir,
    run: &str,
    records: &[EvalRecord],
    ladder: &[Rung],
) -> anyhow::Result<()> {
    let splits = boundary_splits(records, ladder, run, args.calibration_share)?;
    let embedder = match kind {
        ScorerKind::Embedding => question_embedder(kind, file, data_dir)?,
        _ => None,
    };
    let scorer = LadderScorer::new(kind, records, ladder, run, args.calibration_share, embedder.as_deref())?;
    let labels: Vec<&str> = ladder.iter().map(|r| r.label.as_str()).collect();
    println!(
        "run `{run}`: ladder {}; target {:.0} % of each upper tier's quality; scorer: {}",
        labels.join(" → "),
        args.target * 100.0,
        args.scorer
    );
    let search =
        Search { target: args.target, min_domain_items: args.min_domain_items, escalation: !args.no_escalation };
    let items: Vec<BoundaryItems> = splits
        .iter()
        .map(|s| {
            Ok(BoundaryItems {
                tier: s.upper.tier,
                pairs: s.calibration.clone(),
                scores: scorer.scores(&s.calibration)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // The ladder's tiers rise, so the chosen boundaries come back in the order of the splits.
    let chosen = choose_boundaries(&items, search);
    let outcomes: Vec<Outcome> = chosen
        .iter()
        .zip(&splits)
        .map(|(b, s)| Ok(apply(&b.policy, &s.held_out, &scorer.scores(&s.held_out)?)))
        .collect::<anyhow::Result<_>>()?;
    for ((boundary, split), outcome) in chosen.iter().zip(&splits).zip(&outcomes) {
        print_boundary(boundary, split, outcome);
    }
    if let Some(json_path) = &args.json {
        let report = ladder_json(args, run, &scorer, &chosen, &splits, &outcomes);
        std::fs::write(json_path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", json_path.display()))?;
    }
    if chosen.iter().any(|b| b.policy.escalate_below.is_some()) {
        println!(
            "\nnote: some thresholds above assume confidence escalation at that boundary; the config has one \
             escalate_below_logprob for the whole cascade, which --tiers leaves as it is (--no-escalation \
             calibrates without)"
        );
    }
    let thresholds = LadderThresholds::of(&chosen);
    let config_path = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    let scorer_path = scorer_path(args, kind, file, data_dir);
    let mut document = read_config(&config_path)?;
    let homeless = set_tier_routing(&mut document, &thresholds, kind.written(&scorer_path))?;
    for domain in &homeless {
        println!(
            "note: `{domain}` got tier thresholds of its own, but per-domain tier thresholds live in a \
             [[routing.domains]] entry and the config has none for it; it uses the default ones"
        );
    }
    if args.dry_run {
        println!("\n--dry-run: nothing written. The settings, for [routing] in {}:", config_path.display());
        println!("{}", routing_only(&document));
        return Ok(());
    }
    match &scorer {
        LadderScorer::Learned { trained, .. } => {
            trained.model.save(&scorer_path).with_context(|| format!("cannot write {}", scorer_path.display()))?;
            println!("learned scorer: {}", scorer_path.display());
        }
        LadderScorer::Embedding { trained, .. } => {
            trained.model.save(&scorer_path).with_context(|| format!("cannot write {}", scorer_path.display()))?;
            println!("embedding scorer ({}): {}", trained.model.classifier.describe(), scorer_path.display());
        }
        LadderScorer::Transparent => {}
    }
    save_config(&config_path, &document)?;
    println!("tier thresholds written to {}; restart `edgeway serve` to use them", config_path.display());
    Ok(())
}

/// One boundary's table: its thresholds and what they do to the held-out split.
fn print_boundary(boundary: &Boundary, split: &BoundarySplit, outcome: &Outcome) {
    println!(
        "\nboundary {} → {} (starts requests at tier {}): {} items to calibrate, {} held out",
        split.lower.label,
        split.upper.label,
        boundary.tier,
        boundary.items,
        split.held_out.len()
    );
    println!("  {:<24} {:>9}", "domain", "threshold");
    println!("  {:<24} {:>9.4}", "(default)", boundary.policy.default_threshold);
    for (domain, threshold) in &boundary.policy.domain_thresholds {
        println!("  {domain:<24} {threshold:>9.4}");
    }
    if let Some(limit) = boundary.policy.escalate_below {
        println!("  escalate {} answers with mean logprob below {limit:.3}", split.lower.label);
    }
    println!(
        "  held out: {:.1} % of {}'s quality, {:.1} % sent up, cost/query {:.8}",
        outcome.relative_quality * 100.0,
        split.upper.label,
        outcome.cloud_share * 100.0,
        outcome.cost
    );
}

/// Every number of a `--tiers` report.
fn ladder_json(
    args: &CalibrateArgs,
    run: &str,
    scorer: &LadderScorer,
    chosen: &[Boundary],
    splits: &[BoundarySplit],
    outcomes: &[Outcome],
) -> serde_json::Value {
    let boundaries: Vec<serde_json::Value> = chosen
        .iter()
        .zip(splits)
        .zip(outcomes)
        .map(|((boundary, split), o)| {
            json!({
                "lower": split.lower.label, "upper": split.upper.label, "tier": boundary.tier,
                "items": { "calibration": boundary.items, "held_out": split.held_out.len() },
                "policy": policy_json(&boundary.policy),
                "held_out": {
                    "quality": o.quality, "relative_quality": o.relative_quality, "upper_share": o.cloud_share,
                    "escalated_share": o.escalated_share, "cost_per_query": o.cost,
                },
            })
        })
        .collect();
    let learned = match scorer {
        LadderScorer::Learned { trained, .. } => json!({ "cv_apgr": trained.cv_apgr, "l2": trained.model.training.l2 }),
        LadderScorer::Embedding { trained, .. } => embedding_json(trained),
        LadderScorer::Transparent => serde_json::Value::Null,
    };
    json!({
        "run": run, "tiers": args.tiers, "target": args.target, "scorer": args.scorer,
        "learned": learned, "boundaries": boundaries,
    })
}

/// A tier's key in the config: its number (`1 = 0.3`).
fn tier_key(tier: u32) -> String {
    tier.to_string()
}

/// Sets `[routing.tier_thresholds]`, the `tier_thresholds` of each `[[routing.domains]]` entry and the
/// scorer keys in `document` (other keys and comments are kept). Returns the domains with thresholds of
/// their own but no entry to hold them.
fn set_tier_routing(
    document: &mut toml_edit::DocumentMut,
    thresholds: &LadderThresholds,
    scorer: Option<WrittenScorer>,
) -> anyhow::Result<Vec<String>> {
    use toml_edit::{value, InlineTable, Item, Table};
    let routing = routing_table(document)?;
    set_scorer(routing, scorer);
    // An existing [routing.tier_thresholds] keeps its place and the comments above it.
    if !routing.get("tier_thresholds").is_some_and(Item::is_table) {
        routing.remove("tier_thresholds");
        routing["tier_thresholds"] = Item::Table(Table::new());
    }
    let tiers = routing["tier_thresholds"].as_table_mut().context("tier_thresholds was just made a table")?;
    tiers.clear();
    for (tier, threshold) in &thresholds.default {
        tiers[tier_key(*tier).as_str()] = value(config_threshold(*threshold));
    }
    let mut remaining = thresholds.per_domain.clone();
    if let Some(domains) = routing.get_mut("domains").and_then(Item::as_array_of_tables_mut) {
        for domain in domains.iter_mut() {
            let name = domain.get("name").and_then(Item::as_str).map(str::to_owned);
            match name.and_then(|name| remaining.remove(&name)) {
                Some(own) => {
                    let mut table = InlineTable::new();
                    for (tier, threshold) in own {
                        table.insert(tier_key(tier), config_threshold(threshold).into());
                    }
                    domain["tier_thresholds"] = value(table);
                }
                None => {
                    domain.remove("tier_thresholds");
                }
            }
        }
    }
    Ok(remaining.into_keys().collect())
}

/// The `[routing]` part of `document`, for printing.
fn routing_only(document: &toml_edit::DocumentMut) -> String {
    let mut routing = toml_edit::DocumentMut::new();
    if let Some(item) = document.get("routing") {
        routing.insert("routing", item.clone());
    }
    routing.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    #[test]
    fn written_thresholds_load_back_through_the_config() {
        let dir = std::env::temp_dir().join(format!("edgeway-calibrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edgeway.toml");
        std::fs::write(
            &path,
            "# my settings\n[server]\nport = 9000\n\n[routing]\ncooldown_secs = 2\n\n\
             [[routing.domains]]\nname = \"inspection\"\nkeywords = [\"crack\"]\nthreshold = 0.9\n",
        )
        .unwrap();
        let policy = RoutingPolicy {
            default_threshold: 0.31234567,
            domain_thresholds: [("inspection".to_owned(), 0.2), ("code".to_owned(), 0.7)].into_iter().collect(),
            escalate_below: Some(-0.8123),
        };
        let scorer_file = dir.join("scorer.json");
        write_config(&path, &policy, ScorerKind::Learned.written(&scorer_file)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my settings"), "{text}");
        let file = FileConfig::load(Some(&path)).unwrap();
        assert_eq!(file.server.port, Some(9000));
        assert_eq!(file.routing.threshold, Some(0.3123));
        assert_eq!(file.routing.thresholds.get("code"), Some(&0.7));
        assert_eq!(file.routing.domains[0].threshold, Some(0.2));
        assert_eq!(file.routing.escalate_below_logprob, Some(-0.812));
        assert_eq!(file.routing.scorer.as_deref(), Some("learned"));
        let settings = crate::config::ServeSettings::merge(&Default::default(), file).unwrap();
        assert_eq!(settings.gateway.thresholds.of("inspection"), 0.2);
        assert_eq!(settings.gateway.thresholds.of("code"), 0.7);
        assert!((settings.gateway.thresholds.of("general") - 0.3123).abs() < 1e-6);
        assert!(matches!(settings.scorer, crate::config::ScorerSetting::Learned(Some(_))));

        // Recalibrating without escalation or the learned scorer removes what no longer applies.
        let plain = RoutingPolicy { escalate_below: None, domain_thresholds: Default::default(), ..policy };
        write_config(&path, &plain, None).unwrap();
        let file = FileConfig::load(Some(&path)).unwrap();
        assert_eq!(file.routing.escalate_below_logprob, None);
        assert_eq!(file.routing.scorer.as_deref(), Some("transparent"));
        assert_eq!(file.routing.domains[0].threshold, None);
        assert!(file.routing.thresholds.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_embedding_scorer_is_written_as_its_own_scorer_with_its_own_file() {
        let dir = std::env::temp_dir().join(format!("edgeway-calibrate-embedding-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edgeway.toml");
        let policy =
            RoutingPolicy { default_threshold: 0.4, domain_thresholds: Default::default(), escalate_below: None };
        let scorer_file = dir.join("embedding-scorer.json");
        write_config(&path, &policy, ScorerKind::Embedding.written(&scorer_file)).unwrap();
        let file = FileConfig::load(Some(&path)).unwrap();
        assert_eq!(file.routing.scorer.as_deref(), Some("embedding"));
        let settings = crate::config::ServeSettings::merge(&Default::default(), file).unwrap();
        assert_eq!(settings.scorer, crate::config::ScorerSetting::Embedding(Some(scorer_file.clone())));

        // Where each kind is written: the flag, the config's file when it names the same scorer
        // (never a file of the other kind), else the data directory's.
        let data_dir = DataDir::new("/data");
        let args = |scorer_path: Option<&str>| {
            use clap::Parser;
            let mut argv = vec!["edgeway", "calibrate"];
            if let Some(path) = scorer_path {
                argv.extend(["--scorer-path", path]);
            }
            match crate::cli::Cli::parse_from(argv).command {
                crate::cli::Command::Calibrate(args) => *args,
                _ => unreachable!("parsed calibrate"),
            }
        };
        let file = FileConfig::load(Some(&path)).unwrap();
        let (embedding, learned) = (ScorerKind::Embedding, ScorerKind::Learned);
        assert_eq!(scorer_path(&args(Some("/x/s.json")), learned, &file, &data_dir), Path::new("/x/s.json"));
        assert_eq!(scorer_path(&args(None), embedding, &file, &data_dir), scorer_file);
        assert_eq!(scorer_path(&args(None), learned, &file, &data_dir), Path::new("/data/scorer.json"));
        let plain = FileConfig::default();
        assert_eq!(scorer_path(&args(None), embedding, &plain, &data_dir), Path::new("/data/embedding-scorer.json"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn labels(text: &str) -> Vec<String> {
        text.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn the_ladder_is_tier_labels_lowest_first() {
        let ladder = parse_ladder(&labels("tier0, tier1,tier3")).unwrap();
        let tiers: Vec<(&str, u32)> = ladder.iter().map(|r| (r.label.as_str(), r.tier)).collect();
        assert_eq!(tiers, [("tier0", 0), ("tier1", 1), ("tier3", 3)]);
        assert_eq!(eval_command(&ladder, "r"), "edgeway eval --route tier0,tier1,tier3 --run r");
        for (text, expected) in [
            ("tier0,edge", "`edge` is not one"),
            ("tier0,tier01", "`tier01` is not one"),
            ("tier1", "at least two tiers"),
            ("tier1,tier0", "`tier0` comes after `tier1`"),
            ("tier0,tier1,tier1", "each tier once"),
        ] {
            let error = parse_ladder(&labels(text)).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn tier_thresholds_load_back_through_the_config() {
        let mut document: toml_edit::DocumentMut = "# my settings\n[routing]\ncooldown_secs = 2\nthreshold = 0.5\n\n\
             # calibrated\n[routing.tier_thresholds]\n1 = 0.9\n7 = 0.99\n\n\
             [[routing.domains]]\nname = \"code\"\nkeywords = [\"rust\"] # mine\ntier_thresholds = { 1 = 0.1 }\n\n\
             [[routing.domains]]\nname = \"chat\"\nkeywords = [\"hi\"]\ntier_thresholds = { 1 = 0.1 }\n"
            .parse()
            .unwrap();
        let thresholds = LadderThresholds {
            default: [(1, 0.31234567), (2, 0.6)].into_iter().collect(),
            per_domain: [
                ("code".to_owned(), [(1, 0.2), (2, 0.5)].into_iter().collect()),
                ("math".to_owned(), [(2, 0.7)].into_iter().collect()),
            ]
            .into_iter()
            .collect(),
        };
        let homeless =
            set_tier_routing(&mut document, &thresholds, ScorerKind::Learned.written(Path::new("/data/scorer.json")))
                .unwrap();
        assert_eq!(homeless, ["math"]);
        let text = document.to_string();
        assert!(
            text.starts_with("# my settings") && text.contains("# calibrated\n[routing.tier_thresholds]"),
            "{text}"
        );
        assert!(text.contains("# mine") && text.contains("tier_thresholds = { 1 = 0.2, 2 = 0.5 }"), "{text}");
        assert!(routing_only(&document).contains("[routing.tier_thresholds]\n1 = 0.3123\n2 = 0.6\n"), "{text}");
        let file: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(file.routing.threshold, Some(0.5), "the two-sided threshold is left alone");
        assert_eq!(file.routing.cooldown_secs, Some(2.0));
        assert_eq!(file.routing.scorer.as_deref(), Some("learned"));
        assert!(file.routing.domains[1].tier_thresholds.is_empty(), "chat has no thresholds of its own now");
        let settings = crate::config::ServeSettings::merge(&Default::default(), file).unwrap();
        let tiers = &settings.gateway.tier_thresholds;
        assert_eq!(
            (tiers.of("general", 1), tiers.of("general", 2), tiers.of("general", 7)),
            (Some(0.3123), Some(0.6), None)
        );
        assert_eq!((tiers.of("code", 1), tiers.of("code", 2)), (Some(0.2), Some(0.5)));
        assert_eq!(tiers.of("chat", 1), Some(0.3123));

        // A fresh config gets the table; the transparent scorer drops scorer_path.
        let mut fresh = toml_edit::DocumentMut::new();
        set_tier_routing(&mut fresh, &thresholds, None).unwrap();
        let file: FileConfig = toml::from_str(&fresh.to_string()).unwrap();
        assert_eq!(file.routing.tier_thresholds.get("2"), Some(&0.6));
        assert_eq!((file.routing.scorer.as_deref(), file.routing.scorer_path), (Some("transparent"), None));
    }
}
