//! The vision red team: can a defective part be made to pass inspection, and
//! is that easier on the INT8 model that is deployed than on the FP32 one?
//!
//! For every model (a "target": FP32, INT8…), at every L∞ budget ε, the
//! score-only Square Attack ([`edgeway_vision::attack`]; blind, or guided
//! towards the good parts the report's good images stand for) runs on the
//! defective images every target catches when clean, at the same query
//! budget; the evasion rate comes with its 95 % Wilson interval. The images
//! found on one target are replayed on the others (transfer). A defence (JPEG
//! re-encoding, smoothing) is measured three ways at one ε: what it costs on
//! clean images (AUROC, false rejects at the threshold), whether it stops the
//! images already found (replayed through it), and whether an attacker who
//! queries the defended model still gets through (adaptive).

use edgeway_vision::attack::{square_attack, Defence, Defended, Direction, ScoreOracle, SquareAttack};
use edgeway_vision::metrics::auroc;
use edgeway_vision::RgbImage;

use crate::stats::wilson_95;

/// A model under attack.
pub struct Target<'a> {
    /// Its name in the report (`fp32`, `int8`).
    pub name: String,
    /// Its scores.
    pub oracle: &'a mut dyn ScoreOracle,
    /// Its decision threshold: a score at or below it passes.
    pub threshold: f32,
}

/// Which attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attacker {
    /// The Square Attack as published: random ±ε squares.
    Square,
    /// The Square Attack that also holds good parts (the run's good images) and pulls each
    /// defective image towards the one most like it.
    TowardGood,
}

impl Attacker {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Attacker::Square => "Square Attack (L∞)",
            Attacker::TowardGood => "Square Attack guided towards good parts (L∞)",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Which attacker.
    pub attacker: Attacker,
    /// The L∞ budgets, in 0–255 pixel units.
    pub epsilons: Vec<u8>,
    /// Queries per image.
    pub queries: usize,
    /// The Square Attack's starting square share.
    pub p_init: f64,
    /// Seeds the attack.
    pub seed: u64,
    /// The defence measured, and the budget it is measured at.
    pub defence: Option<(Defence, u8)>,
}

/// A rate with its 95 % Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Successes.
    pub hits: usize,
    /// Trials.
    pub n: usize,
    /// The interval's ends.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

impl Rate {
    /// `hits` of `n`, with the interval.
    pub fn new(hits: usize, n: usize) -> Self {
        let (low, high) = wilson_95(hits, n);
        Self { hits, n, low, high }
    }

    /// The share, 0 for no trials.
    pub fn share(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.hits as f64 / self.n as f64
        }
    }
}

/// One target at one ε.
#[derive(Debug, Clone, PartialEq)]
pub struct Evasion {
    /// The target.
    pub target: String,
    /// Images that passed after the attack.
    pub rate: Rate,
    /// Mean queries spent per image.
    pub mean_queries: f64,
}

/// Images found on one target, replayed on another.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Where they were found.
    pub from: String,
    /// Where they were replayed.
    pub to: String,
    /// How many pass there.
    pub rate: Rate,
}

/// All targets at one ε.
#[derive(Debug, Clone, PartialEq)]
pub struct EpsilonRow {
    /// The budget.
    pub epsilon: u8,
    /// Per target.
    pub evasion: Vec<Evasion>,
    /// Per ordered pair of targets.
    pub transfer: Vec<Transfer>,
}

/// The defence on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenceRow {
    /// The target.
    pub target: String,
    /// Clean image AUROC without the defence.
    pub auroc: Option<f64>,
    /// And with it.
    pub defended_auroc: Option<f64>,
    /// Good images flagged at the threshold with the defence (false rejects).
    pub defended_false_rejects: Rate,
    /// The images found without the defence, replayed through it.
    pub replayed: Rate,
    /// A fresh attack that queries the defended model.
    pub adaptive: Rate,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionReport {
    /// Defective images given.
    pub defective: usize,
    /// Good images given.
    pub good: usize,
    /// Per target: clean image AUROC and the defective images it catches.
    pub clean: Vec<(String, Option<f64>, Rate)>,
    /// Defective images every target catches: the ones attacked.
    pub attacked: usize,
    /// Per ε.
    pub rows: Vec<EpsilonRow>,
    /// The defence, at its ε.
    pub defence: Option<(String, u8, Vec<DefenceRow>)>,
    /// The attacker.
    pub attacker: Attacker,
}

fn clean_auroc(good: &[f32], defective: &[f32]) -> Option<f64> {
    let scores: Vec<f32> = good.iter().chain(defective).copied().collect();
    let labels: Vec<bool> = good.iter().map(|_| false).chain(defective.iter().map(|_| true)).collect();
    auroc(&scores, &labels)
}

/// Runs the red team; `progress` hears a line per step.
pub fn run(
    targets: &mut [Target<'_>],
    defective: &[RgbImage],
    good: &[RgbImage],
    settings: &Settings,
    progress: &mut dyn FnMut(&str),
) -> Result<VisionReport, String> {
    let mut clean = Vec::new();
    let mut caught_by_all = vec![true; defective.len()];
    let mut good_scores = Vec::new();
    for target in targets.iter_mut() {
        let (d, g) = (target.oracle.scores(defective)?, target.oracle.scores(good)?);
        let caught: Vec<bool> = d.iter().map(|&s| s > target.threshold).collect();
        for (all, &c) in caught_by_all.iter_mut().zip(&caught) {
            *all &= c;
        }
        let hits = caught.iter().filter(|&&c| c).count();
        clean.push((target.name.clone(), clean_auroc(&g, &d), Rate::new(hits, defective.len())));
        good_scores.push(g);
    }
    let population: Vec<RgbImage> =
        defective.iter().zip(&caught_by_all).filter(|(_, &c)| c).map(|(i, _)| i.clone()).collect();
    let direction = match settings.attacker {
        Attacker::Square => Direction::Random,
        Attacker::TowardGood => Direction::TowardGood(good),
    };
    let mut rows = Vec::new();
    let mut found_at_defence_epsilon: Vec<Vec<RgbImage>> = Vec::new();
    for &epsilon in &settings.epsilons {
        let attack = SquareAttack { epsilon, queries: settings.queries, p_init: settings.p_init, seed: settings.seed };
        let mut evasion = Vec::new();
        let mut found = Vec::new();
        for target in targets.iter_mut() {
            progress(&format!("ε {epsilon}/255: attacking {} ({} images)", target.name, population.len()));
            let outcomes = square_attack(target.oracle, &population, target.threshold, &attack, direction)?;
            let hits = outcomes.iter().filter(|o| o.evaded).count();
            let mean_queries = outcomes.iter().map(|o| o.queries as f64).sum::<f64>() / outcomes.len().max(1) as f64;
            evasion.push(Evasion { target: target.name.clone(), rate: Rate::new(hits, outcomes.len()), mean_queries });
            found.push(outcomes.into_iter().map(|o| o.adversarial).collect::<Vec<_>>());
        }
        let mut transfer = Vec::new();
        for (from, images) in found.iter().enumerate() {
            for (to, target) in targets.iter_mut().enumerate() {
                if from == to {
                    continue;
                }
                let scores = target.oracle.scores(images)?;
                let hits = scores.iter().filter(|&&s| s <= target.threshold).count();
                transfer.push(Transfer {
                    from: evasion[from].target.clone(),
                    to: target.name.clone(),
                    rate: Rate::new(hits, scores.len()),
                });
            }
        }
        if settings.defence.is_some_and(|(_, e)| e == epsilon) {
            found_at_defence_epsilon = found;
        }
        rows.push(EpsilonRow { epsilon, evasion, transfer });
    }
    let defence = match settings.defence {
        Some((defence, epsilon)) if defence != Defence::None => {
            let attack =
                SquareAttack { epsilon, queries: settings.queries, p_init: settings.p_init, seed: settings.seed };
            let mut rows = Vec::new();
            for (i, target) in targets.iter_mut().enumerate() {
                progress(&format!("ε {epsilon}/255: {} behind {}", target.name, defence.label()));
                let threshold = target.threshold;
                let mut defended = Defended { inner: &mut *target.oracle, defence };
                let (d, g) = (defended.scores(defective)?, defended.scores(good)?);
                let false_rejects = g.iter().filter(|&&s| s > threshold).count();
                let replayed = match found_at_defence_epsilon.get(i) {
                    Some(images) => {
                        let scores = defended.scores(images)?;
                        Rate::new(scores.iter().filter(|&&s| s <= threshold).count(), scores.len())
                    }
                    None => Rate::new(0, 0),
                };
                let outcomes = square_attack(&mut defended, &population, threshold, &attack, direction)?;
                rows.push(DefenceRow {
                    target: target.name.clone(),
                    auroc: clean.get(i).and_then(|c| c.1),
                    defended_auroc: clean_auroc(&g, &d),
                    defended_false_rejects: Rate::new(false_rejects, g.len()),
                    replayed,
                    adaptive: Rate::new(outcomes.iter().filter(|o| o.evaded).count(), outcomes.len()),
                });
            }
            Some((defence.label(), epsilon, rows))
        }
        _ => None,
    };
    Ok(VisionReport {
        defective: defective.len(),
        good: good.len(),
        clean,
        attacked: population.len(),
        rows,
        defence,
        attacker: settings.attacker,
    })
}

/// `hits/n share % [low, high]`.
fn show(rate: &Rate) -> String {
    format!(
        "{}/{} {:.1} % [{:.1}, {:.1}]",
        rate.hits,
        rate.n,
        rate.share() * 100.0,
        rate.low * 100.0,
        rate.high * 100.0
    )
}

fn show_auroc(auroc: Option<f64>) -> String {
    auroc.map_or_else(|| "n/a".into(), |a| format!("{a:.4}"))
}

/// The report as Markdown tables.
pub fn render(report: &VisionReport, queries: usize) -> String {
    let mut out = String::new();
    out.push_str("| model | clean image AUROC | defective caught |\n|---|---|---|\n");
    for (name, auroc, caught) in &report.clean {
        out.push_str(&format!("| {name} | {} | {} |\n", show_auroc(*auroc), show(caught)));
    }
    out.push_str(&format!(
        "\n{} of {} defective images are caught by every model and attacked: {}, {queries} \
         score-only queries each; evaded = scores at or below the threshold (95 % Wilson intervals)\n\n",
        report.attacked,
        report.defective,
        report.attacker.label()
    ));
    let Some(first) = report.rows.first() else { return out };
    let names: Vec<&str> = first.evasion.iter().map(|e| e.target.as_str()).collect();
    let pairs: Vec<String> = first.transfer.iter().map(|t| format!("{} → {}", t.from, t.to)).collect();
    out.push_str("| ε (/255) |");
    for name in &names {
        out.push_str(&format!(" {name} evaded | {name} mean queries |"));
    }
    for pair in &pairs {
        out.push_str(&format!(" {pair} |"));
    }
    out.push('\n');
    out.push_str(&"|---".repeat(1 + 2 * names.len() + pairs.len()));
    out.push_str("|\n");
    for row in &report.rows {
        out.push_str(&format!("| {} |", row.epsilon));
        for evasion in &row.evasion {
            out.push_str(&format!(" {} | {:.0} |", show(&evasion.rate), evasion.mean_queries));
        }
        for transfer in &row.transfer {
            out.push_str(&format!(" {} |", show(&transfer.rate)));
        }
        out.push('\n');
    }
    if let Some((label, epsilon, rows)) = &report.defence {
        out.push_str(&format!(
            "\ndefence {label} at ε {epsilon}/255 (replayed: the images found without it; adaptive: a new attack \
             through it)\n\n| model | AUROC clean → defended | good rejected, defended | replayed evaded | \
             adaptive evaded |\n|---|---|---|---|---|\n"
        ));
        for row in rows {
            out.push_str(&format!(
                "| {} | {} → {} | {} | {} | {} |\n",
                row.target,
                show_auroc(row.auroc),
                show_auroc(row.defended_auroc),
                show(&row.defended_false_rejects),
                show(&row.replayed),
                show(&row.adaptive)
            ));
        }
    }
    out
}

fn rate_json(rate: &Rate) -> serde_json::Value {
    serde_json::json!({ "hits": rate.hits, "n": rate.n, "rate": rate.share(), "low": rate.low, "high": rate.high })
}

/// The report as JSON.
pub fn to_json(report: &VisionReport, queries: usize) -> serde_json::Value {
    serde_json::json!({
        "defective": report.defective,
        "good": report.good,
        "attacked": report.attacked,
        "queries": queries,
        "attacker": report.attacker.label(),
        "clean": report.clean.iter().map(|(name, auroc, caught)| serde_json::json!({
            "model": name, "image_auroc": auroc, "caught": rate_json(caught),
        })).collect::<Vec<_>>(),
        "epsilons": report.rows.iter().map(|row| serde_json::json!({
            "epsilon": row.epsilon,
            "evasion": row.evasion.iter().map(|e| serde_json::json!({
                "model": e.target, "evaded": rate_json(&e.rate), "mean_queries": e.mean_queries,
            })).collect::<Vec<_>>(),
            "transfer": row.transfer.iter().map(|t| serde_json::json!({
                "from": t.from, "to": t.to, "evaded": rate_json(&t.rate),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "defence": report.defence.as_ref().map(|(label, epsilon, rows)| serde_json::json!({
            "defence": label,
            "epsilon": epsilon,
            "models": rows.iter().map(|r| serde_json::json!({
                "model": r.target,
                "auroc": r.auroc,
                "defended_auroc": r.defended_auroc,
                "defended_false_rejects": rate_json(&r.defended_false_rejects),
                "replayed": rate_json(&r.replayed),
                "adaptive": rate_json(&r.adaptive),
            })).collect::<Vec<_>>(),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean red level of the image, scaled: a defect is a bright image. `bias` shifts it, so two
    /// such oracles disagree a little, as FP32 and INT8 do.
    struct Brightness {
        bias: f32,
    }

    impl ScoreOracle for Brightness {
        fn scores(&mut self, images: &[RgbImage]) -> Result<Vec<f32>, String> {
            Ok(images
                .iter()
                .map(|i| i.pixels().map(|p| f32::from(p[0])).sum::<f32>() / (i.width() * i.height()) as f32 + self.bias)
                .collect())
        }
    }

    #[test]
    fn a_larger_budget_evades_more_and_the_report_adds_up() {
        let defective: Vec<RgbImage> =
            (0..10).map(|k| RgbImage::from_pixel(16, 16, edgeway_vision::Rgb([102 + k % 4, 0, 0]))).collect();
        let good: Vec<RgbImage> =
            (0..5).map(|k| RgbImage::from_pixel(16, 16, edgeway_vision::Rgb([80 + k, 0, 0]))).collect();
        let (mut a, mut b) = (Brightness { bias: 0.0 }, Brightness { bias: 1.0 });
        let mut targets = [
            Target { name: "fp32".into(), oracle: &mut a, threshold: 100.0 },
            Target { name: "int8".into(), oracle: &mut b, threshold: 100.0 },
        ];
        let settings = Settings {
            attacker: Attacker::Square,
            epsilons: vec![1, 16],
            queries: 100,
            p_init: 0.8,
            seed: 1,
            defence: Some((Defence::Blur(1.0), 16)),
        };
        let report = run(&mut targets, &defective, &good, &settings, &mut |_| {}).unwrap();
        assert_eq!((report.defective, report.good, report.attacked), (10, 5, 10));
        assert_eq!(report.clean[0].1, Some(1.0));
        let (small, large) = (&report.rows[0], &report.rows[1]);
        assert!(small.evasion[0].rate.hits < large.evasion[0].rate.hits, "{report:?}");
        assert_eq!(large.evasion[0].rate.n, 10);
        assert_eq!(large.transfer.len(), 2, "fp32 → int8 and int8 → fp32");
        let rate = large.evasion[0].rate;
        assert!(rate.low <= rate.share() && rate.share() <= rate.high + 1e-9, "{rate:?}");
        let (label, epsilon, rows) = report.defence.unwrap();
        assert_eq!((label.as_str(), epsilon, rows.len()), ("blur:1", 16, 2));
    }
}
