//! `edgeway calibrate --tiers` on a constructed eval log: three tiers, the
//! middle one right on medium questions, the top one (a priced cloud) on all.
//! No model is needed: the log is written directly, as `edgeway eval --route
//! tier0,tier1,tier2` would.

mod common;

use std::path::Path;

use common::{edgeway, output_text, temp_dir};
use edgeway_store::{EvalLog, EvalRecord, QueryRecord};

/// 120 items per tier: easy ones every tier gets right, medium ones from tier 1 up, hard ones only tier 2.
fn write_log(path: &Path) {
    let mut log = EvalLog::open(path).unwrap();
    for i in 0..120 {
        let level = i % 3;
        let question = match level {
            0 => format!("What is {i} plus 1?"),
            1 => format!("Explain step by step why the sum of the first {i} odd numbers is a perfect square."),
            _ => format!(
                "Prove rigorously, analyzing each case and justifying every lemma, that the {i}-th derivative of a \
                 composition of smooth functions follows Faà di Bruno's formula, then implement it in Rust."
            ),
        };
        let domain = if i % 2 == 0 { "code" } else { "general" };
        for (tier, cost) in [(0, 0.0), (1, 0.0), (2, 0.002)] {
            let grade = if tier >= level { 1.0 } else { 0.0 };
            let record = EvalRecord {
                run: "ladder".into(),
                dataset: "mine".into(),
                item_id: i.to_string(),
                route: format!("tier{tier}"),
                domain: Some(domain.into()),
                question: question.clone(),
                grade,
                correct: grade == 1.0,
                latency_ms: 10.0,
                cost,
                ..Default::default()
            };
            log.insert(&QueryRecord { route: record.route.clone(), ..Default::default() }, &record).unwrap();
        }
    }
}

#[test]
fn calibrate_tiers_writes_tier_thresholds_per_boundary() {
    let dir = temp_dir("calibrate-tiers", "flow");
    let log = dir.join("queries.db");
    write_log(&log);
    let config = dir.join("edgeway.toml");
    std::fs::write(
        &config,
        "# mine\n[routing]\ncooldown_secs = 2\n\n[[routing.domains]]\nname = \"code\"\nkeywords = [\"rust\"]\n",
    )
    .unwrap();
    let (log, config_arg, scorer) =
        (log.to_str().unwrap(), config.to_str().unwrap(), dir.join("scorer.json").display().to_string());
    let calibrate = |extra: &[&str]| {
        let mut args = vec!["calibrate", "--log-path", log, "--config", config_arg, "--scorer-path", &scorer];
        args.extend(["--min-domain-items", "10"]);
        args.extend(extra);
        edgeway(&args)
    };

    let output = calibrate(&["--tiers", "tier0,tier1,tier2", "--dry-run"]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("boundary tier0 → tier1") && text.contains("boundary tier1 → tier2"), "{text}");
    assert!(text.contains("of tier2's quality") && text.contains("[routing.tier_thresholds]"), "{text}");
    assert!(!std::fs::read_to_string(&config).unwrap().contains("tier_thresholds"), "--dry-run writes nothing");

    let output = calibrate(&["--tiers", "tier0,tier1,tier2"]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let written = std::fs::read_to_string(&config).unwrap();
    let file: toml::Value = toml::from_str(&written).unwrap();
    let tiers = &file["routing"]["tier_thresholds"];
    let (one, two) = (tiers["1"].as_float().unwrap(), tiers["2"].as_float().unwrap());
    assert!(two >= one, "{written}");
    assert!(written.starts_with("# mine") && written.contains("cooldown_secs = 2"), "{written}");
    assert!(file["routing"]["domains"][0]["tier_thresholds"]["2"].is_float(), "{written}");
    assert_eq!(file["routing"]["scorer"].as_str(), Some("learned"));
    assert!(Path::new(&scorer).is_file(), "the learned scorer is saved");

    // Clear errors: a label that is no tier, a boundary without answers.
    let output = calibrate(&["--tiers", "tier0,cloud", "--dry-run"]);
    assert!(output_text(&output).contains("`cloud` is neither"), "{}", output_text(&output));
    let output = calibrate(&["--tiers", "tier1,tier3", "--dry-run"]);
    let text = output_text(&output);
    assert!(!output.status.success());
    assert!(text.contains("tier1 → tier3") && text.contains("edgeway eval --route tier1,tier3 --run ladder"), "{text}");
    // Without --tiers, edge vs cloud as before: this log has neither.
    let output = calibrate(&["--dry-run"]);
    assert!(output_text(&output).contains("answered by both sides"), "{}", output_text(&output));
    let _ = std::fs::remove_dir_all(dir);
}
