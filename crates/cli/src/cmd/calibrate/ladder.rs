//! `edgeway calibrate --tiers`: thresholds for every boundary of a ladder of tiers.

use super::*;

/// One rung of the `--tiers` ladder: the eval route label and its tier.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rung {
    pub(super) label: String,
    pub(super) tier: u32,
}

/// The `--tiers` labels as a ladder, lowest tier first.
pub(super) fn parse_ladder(labels: &[String]) -> anyhow::Result<Vec<Rung>> {
    let rungs = labels
        .iter()
        .map(|label| {
            let label = label.trim();
            // `edge=1`: answers logged under another route label (`edge`, `cloud`, a model's name),
            // standing for the tier given.
            if let Some((route, tier)) = label.split_once('=') {
                let tier = tier.trim().parse().with_context(|| {
                    format!(
                        "--tiers: `{label}` gives a route label its tier as ROUTE=N, and `{tier}` is not a tier number"
                    )
                })?;
                return Ok(Rung { label: route.trim().to_owned(), tier });
            }
            let tier = tier_of_label(label).with_context(|| {
                format!(
                    "--tiers takes the route labels `edgeway eval --route tier0,tier1,…` logs answers under \
                     (`tierN`), or another label with its tier (`edge=1`); `{label}` is neither"
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
pub(super) fn eval_command(ladder: &[Rung], run: &str) -> String {
    let routes: Vec<&str> = ladder.iter().map(|r| r.label.as_str()).collect();
    format!("edgeway eval --route {} --run {run}", routes.join(","))
}

/// One boundary's paired items, split as the two-sided path splits them.
pub(super) struct BoundarySplit<'a> {
    pub(super) lower: &'a Rung,
    pub(super) upper: &'a Rung,
    pub(super) calibration: Vec<Pair>,
    pub(super) held_out: Vec<Pair>,
}

/// Pairs each two adjacent rungs' answers and splits them; every boundary needs [`MIN_PAIRS`] items.
pub(super) fn boundary_splits<'a>(
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
pub(super) enum LadderScorer {
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
    pub(super) fn new(
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
        anyhow::ensure!(
            kind != ScorerKind::Shipped,
            "--scorer shipped calibrates the edge-or-cloud threshold only; for --tiers, use learned, embedding or transparent"
        );
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
    pub(super) fn scores(&self, pairs: &[Pair]) -> anyhow::Result<Vec<f32>> {
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
pub(super) fn run_tiers(
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
    set_provenance(&mut document, &Provenance { run, items: records.len(), target: args.target, plot: None })?;
    save_config(&config_path, &document)?;
    println!("tier thresholds written to {}; restart `edgeway serve` to use them", config_path.display());
    Ok(())
}

/// One boundary's table: its thresholds and what they do to the held-out split.
pub(super) fn print_boundary(boundary: &Boundary, split: &BoundarySplit, outcome: &Outcome) {
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
pub(super) fn ladder_json(
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
