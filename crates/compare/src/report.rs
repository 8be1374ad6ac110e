//! Comparing measured variants with the baseline, and printing the result as
//! a terminal table, Markdown or JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::measure::Measured;
use crate::Settings;

/// How a variant is shown: a path by its file name (the full path is in the JSON), a catalog
/// name as given.
pub fn display_name(spec: &str, path: &Path) -> String {
    if edgeway_models::resolve::is_path(spec) {
        path.file_name().map_or_else(|| spec.to_owned(), |name| name.to_string_lossy().into_owned())
    } else {
        spec.to_owned()
    }
}

/// The variant `wanted` names: by its shown name first, else by the spec as given.
pub fn find_variant(wanted: &str, names: &[String], specs: &[String]) -> Option<usize> {
    names.iter().position(|name| name == wanted).or_else(|| specs.iter().position(|spec| spec == wanted))
}

/// The index of the variant with the most bits per weight.
pub fn most_precise(measured: &[Measured]) -> usize {
    measured.iter().enumerate().max_by(|a, b| a.1.bits_per_weight.total_cmp(&b.1.bits_per_weight)).map_or(0, |m| m.0)
}

/// One variant next to the baseline.
pub struct Row {
    /// What the user called it.
    pub name: String,
    /// The measurements.
    pub measured: Measured,
    /// Mean grade per set (generative), or recall@5 per set (embedding).
    pub quality_by_set: BTreeMap<String, f64>,
    /// Mean over all items (generative) or sets (embedding).
    pub quality: f64,
    /// Share of items answered the same as the baseline (generative).
    pub agreement: Option<f64>,
    /// Mean and lowest cosine of its vectors to the baseline's (embedding).
    pub cosine: Option<(f64, f64)>,
}

/// Every variant, compared with one baseline.
pub struct Comparison {
    /// One row per variant, in the order given.
    pub rows: Vec<Row>,
    /// Which row is the baseline.
    pub baseline: usize,
    /// Whether these are embedding models.
    pub embedding: bool,
    /// Settings worth printing with the results.
    threads: u32,
    items_per_set: usize,
    questions: usize,
}

impl Comparison {
    /// Compares `measured` (named `names`) with `measured[baseline]`; `settings` are what they
    /// were measured with.
    pub fn new(names: Vec<String>, measured: Vec<Measured>, baseline: usize, settings: &Settings) -> Self {
        let embedding = measured.first().is_some_and(|m| m.embedding);
        let base = measured[baseline].clone();
        let base_answers: BTreeMap<(&str, &str), Option<&String>> =
            base.answers.iter().map(|a| ((a.set.as_str(), a.id.as_str()), a.extracted.as_ref())).collect();
        let rows = names
            .into_iter()
            .zip(measured)
            .map(|(name, measured)| {
                let mut quality_by_set = BTreeMap::new();
                let (quality, agreement, cosine) = if embedding {
                    for recall in &measured.recall {
                        quality_by_set.insert(recall.set.clone(), recall.recall_at_5);
                    }
                    let cosines: Vec<f64> = measured
                        .sentence_vectors
                        .iter()
                        .zip(&base.sentence_vectors)
                        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum())
                        .collect();
                    let cosine = (!cosines.is_empty()).then(|| {
                        (
                            cosines.iter().sum::<f64>() / cosines.len() as f64,
                            cosines.iter().copied().fold(1.0, f64::min),
                        )
                    });
                    (mean(quality_by_set.values().copied()), None, cosine)
                } else {
                    let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
                    let mut same = (0u64, 0u64);
                    for answer in &measured.answers {
                        let entry = sums.entry(answer.set.clone()).or_default();
                        entry.0 += answer.score;
                        entry.1 += 1;
                        if let Some(theirs) = base_answers.get(&(answer.set.as_str(), answer.id.as_str())) {
                            same.0 += u64::from(answer.extracted.as_ref() == *theirs);
                            same.1 += 1;
                        }
                    }
                    quality_by_set = sums.iter().map(|(set, (sum, n))| (set.clone(), sum / *n as f64)).collect();
                    let overall = mean(measured.answers.iter().map(|a| a.score));
                    let agreement = (same.1 > 0).then(|| same.0 as f64 / same.1 as f64);
                    (overall, agreement, None)
                };
                Row { name, measured, quality_by_set, quality, agreement, cosine }
            })
            .collect();
        Self {
            rows,
            baseline,
            embedding,
            threads: settings.threads,
            items_per_set: settings.limit,
            questions: settings.questions,
        }
    }

    /// The baseline's row.
    pub fn base(&self) -> &Row {
        &self.rows[self.baseline]
    }

    fn sets(&self) -> Vec<String> {
        let mut sets: Vec<String> = self.rows.iter().flat_map(|r| r.quality_by_set.keys().cloned()).collect();
        sets.sort();
        sets.dedup();
        sets
    }

    /// Column headers and cells of the main table.
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let base = self.base();
        let mut header: Vec<String> =
            ["variant", "precision", "size MiB", "bits/w", "size vs base", "load s", "peak RSS MiB"]
                .map(String::from)
                .to_vec();
        if self.embedding {
            header.extend(["embed tok/s", "mJ/token"].map(String::from));
            header.extend(self.sets().iter().map(|s| format!("{s} recall@5")));
            header.extend(["cosine mean", "cosine min"].map(String::from));
        } else {
            header.extend(
                ["prompt tok/s", "gen tok/s", "mJ/prompt tok", "mJ/gen tok", "perplexity", "Δ ppl"].map(String::from),
            );
            header.extend(self.sets().iter().map(|s| format!("{s} acc")));
            header.extend(["Δ acc (pts)", "same answer"].map(String::from));
        }
        let rows = self
            .rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                let m = &row.measured;
                let marker = if index == self.baseline { " (base)" } else { "" };
                let mut cells = vec![
                    format!("{}{marker}", row.name),
                    m.precision.clone(),
                    format!("{:.1}", mib(m.file_bytes)),
                    format!("{:.2}", m.bits_per_weight),
                    format!("{:.2}×", m.file_bytes as f64 / base.measured.file_bytes.max(1) as f64),
                    format!("{:.2}", m.load_s),
                    format!("{:.0}", mib(m.peak_rss_bytes)),
                ];
                if self.embedding {
                    cells.push(format!("{:.0}", m.prompt_tps));
                    cells.push(format!("{:.3}", m.prompt_j_per_token * 1000.0));
                    cells.extend(
                        self.sets()
                            .iter()
                            .map(|s| row.quality_by_set.get(s).map_or("–".into(), |q| format!("{q:.3}"))),
                    );
                    let (mean, min) = row.cosine.unwrap_or((f64::NAN, f64::NAN));
                    cells.push(format!("{mean:.6}"));
                    cells.push(format!("{min:.6}"));
                } else {
                    let ppl_delta = match (m.perplexity, base.measured.perplexity) {
                        (Some(p), Some(b)) => format!("{:+.2}%", 100.0 * (p / b - 1.0)),
                        _ => "–".into(),
                    };
                    cells.push(format!("{:.1}", m.prompt_tps));
                    cells.push(format!("{:.1}", m.gen_tps.unwrap_or(0.0)));
                    cells.push(format!("{:.2}", m.prompt_j_per_token * 1000.0));
                    cells.push(format!("{:.2}", m.gen_j_per_token.unwrap_or(0.0) * 1000.0));
                    cells.push(m.perplexity.map_or("–".into(), |p| format!("{p:.3}")));
                    cells.push(ppl_delta);
                    cells.extend(
                        self.sets()
                            .iter()
                            .map(|s| row.quality_by_set.get(s).map_or("–".into(), |q| format!("{:.1}%", q * 100.0))),
                    );
                    cells.push(format!("{:+.1}", 100.0 * (row.quality - base.quality)));
                    cells.push(row.agreement.map_or("–".into(), |a| format!("{:.1}%", a * 100.0)));
                }
                cells
            })
            .collect();
        (header, rows)
    }

    /// What the figures are and where the energy figures come from.
    fn notes(&self) -> Vec<String> {
        let base = self.base();
        let source = &base.measured.energy_source;
        let energy = if source == "rapl" {
            "energy: measured by the CPU package's RAPL counter (whole package, so other load on the machine counts)"
                .to_owned()
        } else {
            "energy: ESTIMATED by the CPU-time model (process CPU seconds × watts per core), not measured; RAPL was not readable"
                .to_owned()
        };
        let mut notes = vec![
            format!("{} threads; each variant measured in its own process, one after another", self.threads),
            energy,
            format!(
                "baseline: {} ({}, {:.2} bits per weight); deltas and ratios are against it",
                base.name, base.measured.precision, base.measured.bits_per_weight
            ),
        ];
        if self.embedding {
            notes.push(format!(
                "recall@5: the question's own passage among the 5 nearest of every passage of the set (exact search); {} questions per set",
                self.questions
            ));
            notes.push("cosine: each variant's vectors for 128 fixed texts (SQuAD questions, BoolQ passages) against the baseline's".into());
        } else {
            let scored = base.measured.perplexity_tokens;
            notes.push(format!(
                "perplexity: {scored} tokens of SQuAD's Wikipedia passages scored (second half of each window); lower is better"
            ));
            notes.push(format!(
                "accuracy: {} items per set, greedy, zero-shot, graded as `edgeway eval` grades; same answer = the grader read the same answer as the baseline's",
                self.items_per_set
            ));
        }
        notes
    }

    /// A fixed-width table for a terminal.
    pub fn table(&self) -> String {
        let (header, rows) = self.cells();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, width))| if c == 0 { format!("{cell:<width$}") } else { format!("{cell:>width$}") })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut out = line(&header) + "\n";
        for row in &rows {
            out += &line(row);
            out.push('\n');
        }
        for note in self.notes() {
            out += &format!("\n{note}");
        }
        out
    }

    /// A Markdown table with the notes below it.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.cells();
        let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
        for row in &rows {
            out += &format!("| {} |\n", row.join(" | "));
        }
        out.push('\n');
        for note in self.notes() {
            out += &format!("- {note}\n");
        }
        out
    }

    /// Everything, for scripts.
    pub fn json(&self) -> Value {
        let base = self.base();
        let variants: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let m = &row.measured;
                json!({
                    "name": row.name,
                    "path": m.path,
                    "precision": m.precision,
                    "architecture": m.architecture,
                    "file_bytes": m.file_bytes,
                    "n_params": m.n_params,
                    "bits_per_weight": m.bits_per_weight,
                    "params_by_type": m.params_by_type,
                    "size_vs_baseline": m.file_bytes as f64 / base.measured.file_bytes.max(1) as f64,
                    "load_s": m.load_s,
                    "peak_rss_bytes": m.peak_rss_bytes,
                    "prompt_tokens_per_s": m.prompt_tps,
                    "gen_tokens_per_s": m.gen_tps,
                    "prompt_joules_per_token": m.prompt_j_per_token,
                    "gen_joules_per_token": m.gen_j_per_token,
                    "energy_source": m.energy_source,
                    "perplexity": m.perplexity,
                    "perplexity_tokens": m.perplexity_tokens,
                    "quality_by_set": row.quality_by_set,
                    "quality": row.quality,
                    "quality_delta_vs_baseline": row.quality - base.quality,
                    "agreement_with_baseline": row.agreement,
                    "cosine_to_baseline": row.cosine.map(|(mean, min)| json!({"mean": mean, "min": min})),
                    "items": m.answers.len(),
                })
            })
            .collect();
        json!({
            "kind": if self.embedding { "embedding" } else { "generative" },
            "quality_measure": if self.embedding { "recall@5" } else { "mean grade" },
            "baseline": base.name,
            "threads": self.threads,
            "notes": self.notes(),
            "variants": variants,
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::{ItemAnswer, Recall};

    /// `edgeway compare`'s defaults.
    pub(crate) fn settings() -> Settings {
        Settings {
            threads: 2,
            sets: vec!["arc-easy".into(), "mmlu".into(), "gsm8k".into()],
            limit: 100,
            ppl_tokens: 8192,
            ppl_window: 512,
            prompt_tokens: 128,
            gen_tokens: 64,
            repetitions: 3,
            questions: 500,
            watts_per_core: 10.0,
        }
    }

    /// A generative variant of `bytes` bytes with `answers` (id, extracted, score) on arc-easy.
    pub(crate) fn variant(precision: &str, bytes: u64, answers: &[(&str, Option<&str>, f64)]) -> Measured {
        Measured {
            path: format!("{precision}.gguf"),
            precision: precision.into(),
            architecture: "llama".into(),
            embedding: false,
            file_bytes: bytes,
            n_params: 1000,
            bits_per_weight: bytes as f64 * 8.0 / 1000.0,
            params_by_type: Default::default(),
            load_s: 0.1,
            peak_rss_bytes: bytes * 2,
            prompt_tps: 100.0,
            gen_tps: Some(10.0),
            prompt_j_per_token: 0.01,
            gen_j_per_token: Some(0.1),
            energy_source: "cpu-time-model".into(),
            perplexity: Some(10.0 * 1000.0 / bytes as f64),
            perplexity_tokens: 256,
            answers: answers
                .iter()
                .map(|(id, extracted, score)| ItemAnswer {
                    set: "arc-easy".into(),
                    id: (*id).into(),
                    extracted: extracted.map(String::from),
                    score: *score,
                })
                .collect(),
            sentence_vectors: Vec::new(),
            recall: Vec::new(),
        }
    }

    #[test]
    fn generative_variants_compare_accuracy_agreement_and_perplexity_with_the_most_precise() {
        let q8 = variant(
            "Q8_0",
            1000,
            &[("1", Some("A"), 1.0), ("2", Some("B"), 1.0), ("3", Some("C"), 0.0), ("4", None, 0.0)],
        );
        let q4 = variant(
            "Q4_0",
            500,
            &[("1", Some("A"), 1.0), ("2", Some("C"), 0.0), ("3", Some("C"), 0.0), ("4", None, 0.0)],
        );
        let measured = vec![q4, q8];
        assert_eq!(most_precise(&measured), 1);
        let comparison = Comparison::new(vec!["q4".into(), "q8".into()], measured, 1, &settings());
        let q4 = &comparison.rows[0];
        assert_eq!(q4.quality, 0.25);
        assert_eq!(q4.agreement, Some(0.75), "items 1, 3 and 4 read the same");
        assert_eq!(comparison.rows[1].agreement, Some(1.0));
        let table = comparison.table();
        assert!(table.contains("q8 (base)") && table.contains("-25.0") && table.contains("+100.00%"), "{table}");
        assert!(table.contains("ESTIMATED"), "{table}");
        let json = comparison.json();
        assert_eq!(json["baseline"], "q8");
        assert_eq!(json["variants"][0]["size_vs_baseline"], 0.5);
        let markdown = comparison.markdown();
        assert!(markdown.starts_with("| variant | precision |"), "{markdown}");
    }

    #[test]
    fn embedding_variants_compare_cosine_and_recall() {
        let mut f32 = variant("F32", 4000, &[]);
        f32.embedding = true;
        f32.sentence_vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        f32.recall = vec![Recall { set: "squad".into(), questions: 10, recall_at_5: 0.9 }];
        let mut q4 = f32.clone();
        q4.precision = "Q4_0".into();
        q4.sentence_vectors = vec![vec![0.6, 0.8], vec![0.0, 1.0]];
        q4.recall[0].recall_at_5 = 0.8;
        let comparison = Comparison::new(vec!["f32".into(), "q4".into()], vec![f32, q4], 0, &settings());
        let (mean, min) = comparison.rows[1].cosine.unwrap();
        assert!((mean - 0.8).abs() < 1e-6 && (min - 0.6).abs() < 1e-6);
        assert_eq!(comparison.rows[1].quality, 0.8);
        assert!(comparison.table().contains("squad recall@5"));
        assert_eq!(comparison.json()["kind"], "embedding");
    }

    #[test]
    fn variants_are_named_by_file_name_or_as_given_and_found_either_way() {
        assert_eq!(display_name("/models/q4.gguf", Path::new("/models/q4.gguf")), "q4.gguf");
        let cached = Path::new("/cache/models/smollm2-135m.gguf");
        assert_eq!(display_name("smollm2-135m", cached), "smollm2-135m");
        let names = vec!["q4.gguf".to_owned(), "smollm2-135m".to_owned()];
        let specs = vec!["/models/q4.gguf".to_owned(), "smollm2-135m".to_owned()];
        assert_eq!(find_variant("q4.gguf", &names, &specs), Some(0));
        assert_eq!(find_variant("/models/q4.gguf", &names, &specs), Some(0));
        assert_eq!(find_variant("smollm2-135m", &names, &specs), Some(1));
        assert_eq!(find_variant("q8.gguf", &names, &specs), None);
    }
}
