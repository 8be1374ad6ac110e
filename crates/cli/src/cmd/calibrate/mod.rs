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

mod config_file;
mod ladder;
mod report;
mod scorers;
mod source;

use config_file::*;
use ladder::*;
use report::*;
use scorers::*;
use source::*;

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
    let answers = Answers::open(&args, &file, &data_dir)?;
    let run = match args.run.clone() {
        Some(run) => run,
        None => answers.default_run()?,
    };
    let edge_records = answers.results(&run)?;
    anyhow::ensure!(
        !edge_records.is_empty(),
        "no graded answers under run `{run}`; runs there: {}",
        answers.list_runs()
    );
    if let Some(model) = &args.edge_model {
        anyhow::ensure!(
            edge_records.iter().any(|record| record.route == "edge"),
            "run `{run}` holds no edge answers by `{model}` (--edge-model); the center's edge models for it: {}",
            answers.edge_models(&run)
        );
    }
    if let Some(ladder) = &ladder {
        return run_tiers(&args, kind, &file, &data_dir, &run, &edge_records, ladder);
    }
    let cloud_records = match &args.cloud_run {
        Some(cloud_run) => answers.results(cloud_run)?,
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
    let (shipped_policy, shipped_scorer) = shipped_defaults()?;
    let shipped_calibration = learned_scores(shipped_scorer.model(), &calibration);
    let shipped_held = learned_scores(shipped_scorer.model(), &held_out);
    let (scores_calibration, scores_held) = match (kind, &embedded) {
        (ScorerKind::Shipped, _) => (&shipped_calibration, &shipped_held),
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
    let outcomes = [
        ("all edge", apply(&all_edge(), &held_out, scores_held)),
        ("all cloud", apply(&all_cloud(), &held_out, scores_held)),
        ("shipped defaults", apply(&shipped_policy, &held_out, &shipped_held)),
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
    let provenance = Provenance {
        run: &run,
        items: calibration.len() + held_out.len(),
        target: args.target,
        plot: Some(&plot_path),
    };
    if let Answers::Fleet(center) = &answers {
        // The trained scorer travels inside the version (the boxes cannot read this machine's
        // files), and so does no plot path.
        let scorer = match (kind, &embedded) {
            (ScorerKind::Learned, _) => Some(serde_json::to_string(&trained.model)?),
            (ScorerKind::Embedding, Some((trained, _))) => Some(serde_json::to_string(&trained.model)?),
            _ => None,
        };
        let written = written.map(|written| WrittenScorer { path: None, ..written });
        let mut document = toml_edit::DocumentMut::new();
        set_routing(&mut document, &policy, written)?;
        set_provenance(&mut document, &Provenance { plot: None, ..provenance })?;
        let note = format!("edgeway calibrate on run `{run}`, target {:.0} %", args.target * 100.0);
        let travels = scorer.as_ref().map_or(String::new(), |_| format!(" with its {} scorer", kind.name()));
        let config = edgeway_fleet::follow::PushedConfig { version: 0, routing: routing_only(&document), scorer };
        let version = center.publish(&config, &note)?;
        println!(
            "published fleet config version {version}{travels}; boxes apply it within their poll interval:\n{}",
            config.routing
        );
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
    write_config(&config_path, &policy, written, Some(&provenance))?;
    println!("thresholds written to {}; restart `edgeway serve` to use them", config_path.display());
    Ok(())
}

fn all_edge() -> RoutingPolicy {
    RoutingPolicy { default_threshold: f32::INFINITY, domain_thresholds: Default::default(), escalate_below: None }
}

fn all_cloud() -> RoutingPolicy {
    RoutingPolicy { default_threshold: f32::NEG_INFINITY, domain_thresholds: Default::default(), escalate_below: None }
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
        let provenance = Provenance { run: "mix-1", items: 400, target: 0.95, plot: Some(Path::new("curve.svg")) };
        write_config(&path, &policy, ScorerKind::Learned.written(&scorer_file), Some(&provenance)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my settings"), "{text}");
        let file = FileConfig::load(Some(&path)).unwrap();
        assert_eq!(file.server.port, Some(9000));
        assert_eq!(file.routing.threshold, Some(0.3123));
        assert_eq!(file.routing.thresholds.get("code"), Some(&0.7));
        assert_eq!(file.routing.domains[0].threshold, Some(0.2));
        assert_eq!(file.routing.escalate_below_logprob, Some(-0.812));
        assert_eq!(file.routing.scorer.as_deref(), Some("learned"));
        let calibration = file.routing.calibration.clone().unwrap();
        assert_eq!(
            (calibration.run.as_deref(), calibration.items, calibration.target),
            (Some("mix-1"), Some(400), Some(0.95))
        );
        assert!(calibration.plot.unwrap().is_absolute(), "serve finds the plot from any directory");
        assert!(calibration.at.unwrap().ends_with('Z'));
        let settings = crate::config::ServeSettings::merge(&Default::default(), file).unwrap();
        assert_eq!(settings.calibration.as_ref().and_then(|c| c.run.as_deref()), Some("mix-1"));
        assert_eq!(settings.gateway.thresholds.of("inspection"), 0.2);
        assert_eq!(settings.gateway.thresholds.of("code"), 0.7);
        assert!((settings.gateway.thresholds.of("general") - 0.3123).abs() < 1e-6);
        assert!(matches!(settings.scorer, crate::config::ScorerSetting::Learned(Some(_))));

        // Recalibrating without escalation or the learned scorer removes what no longer applies.
        let plain = RoutingPolicy { escalate_below: None, domain_thresholds: Default::default(), ..policy };
        write_config(&path, &plain, None, None).unwrap();
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
        write_config(&path, &policy, ScorerKind::Embedding.written(&scorer_file), None).unwrap();
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
        // Answers logged as edge and cloud stand for the tiers above a smaller model's.
        let ladder = parse_ladder(&labels("tier0,edge=1,cloud=2")).unwrap();
        let tiers: Vec<(&str, u32)> = ladder.iter().map(|r| (r.label.as_str(), r.tier)).collect();
        assert_eq!(tiers, [("tier0", 0), ("edge", 1), ("cloud", 2)]);
        for (text, expected) in [
            ("tier0,edge", "`edge` is neither"),
            ("tier0,tier01", "`tier01` is neither"),
            ("tier0,edge=one", "`one` is not a tier number"),
            ("tier1,edge=0", "`edge` comes after `tier1`"),
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
