//! The judge of open answers in `edgeway eval` (MT-Bench): which model it is, the
//! position-swapped comparison of the edge's answers with the cloud's, and the reports.

use std::collections::BTreeMap;

use edgeway_core::RouteTarget;
use edgeway_eval::dataset::EvalItem;
use edgeway_eval::judge::Judge;
use edgeway_eval::pairwise::PairTally;
use edgeway_eval::run::EvalRoute;
use edgeway_store::EvalRecord;

use crate::config::{LocalModel, ServeSettings};

/// A domain no request is classified into. A judge model the router does not have is added
/// as its specialist, so the router sends it only the requests that name it.
const JUDGE_DOMAIN: &str = "edgeway-eval-judge";

/// Judge failures in a row after which the pairwise comparison stops.
const MAX_CONSECUTIVE_JUDGE_FAILURES: u32 = 3;

/// The judge `--judge` names (`cloud`, `edge`, `tierN` or a model), else the strongest there is:
/// the cloud when one is configured, else the local model on the highest tier. A local model
/// the router does not have (a catalog name or a .gguf) is added to it for this run.
pub fn choose(flag: Option<&str>, settings: &mut ServeSettings) -> anyhow::Result<EvalRoute> {
    let route = match flag {
        Some(text) => EvalRoute::parse(text),
        None if !settings.clouds.is_empty() => EvalRoute::Side(RouteTarget::Cloud),
        None => {
            let strongest = settings.models.iter().max_by_key(|model| model.tier).map(name_of).unwrap_or_default();
            if settings.models.len() == 1 {
                eprintln!(
                    "judge: no cloud and one local model, so {strongest} judges its own answers; \
                     name a stronger judge with --judge MODEL"
                );
            }
            EvalRoute::Model(strongest)
        }
    };
    match &route {
        EvalRoute::Side(RouteTarget::Cloud) => anyhow::ensure!(
            !settings.clouds.is_empty(),
            "--judge cloud needs a cloud tier: pass --cloud-url and --cloud-model, or name a local judge with --judge MODEL"
        ),
        EvalRoute::Side(RouteTarget::Edge) => {}
        EvalRoute::Tier(tier) => {
            let tiers = settings.models.iter().map(|model| model.tier).chain(settings.clouds.iter().map(|c| c.tier));
            anyhow::ensure!(tiers.clone().any(|t| t == *tier), "--judge tier{tier}: no model is on tier {tier}");
        }
        EvalRoute::Model(name) => {
            if let Some(cloud) = settings.clouds.iter().find(|cloud| {
                cloud.config.name.eq_ignore_ascii_case(name) || cloud.config.model.eq_ignore_ascii_case(name)
            }) {
                return Ok(EvalRoute::Model(cloud.config.name.clone()));
            }
            let served = edgeway_models::resolve::served_id(name);
            if !settings.models.iter().any(|model| name_of(model).eq_ignore_ascii_case(&served)) {
                add_judge_model(settings, name, &served);
            }
            return Ok(EvalRoute::Model(served));
        }
    }
    Ok(route)
}

/// The name the router knows a local model by.
fn name_of(model: &LocalModel) -> String {
    model.name.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&model.model))
}

/// Adds `spec` to the local models as the specialist of a domain no request has, with the
/// first model's engine settings and unpinned (it loads when first asked), so routing stays
/// as it was.
fn add_judge_model(settings: &mut ServeSettings, spec: &str, served: &str) {
    let mut engine = settings.models.first().map(|model| model.engine.clone()).unwrap_or_default();
    engine.model = None;
    engine.alias = None;
    // The model under test keeps the name it had when it was the only one.
    let alias = settings.alias.clone();
    if let Some(first) = settings.models.first_mut() {
        let name = alias.unwrap_or_else(|| name_of(first));
        first.name.get_or_insert(name);
    }
    eprintln!("judge: {served} is added to the router for this run; it answers only the judge's requests");
    settings.models.push(LocalModel {
        name: Some(served.to_owned()),
        model: spec.to_owned(),
        tier: 0,
        domains: vec![JUDGE_DOMAIN.to_owned()],
        keep_alive: None,
        pinned: false,
        engine,
    });
}

/// The edge's answers against the cloud's on every open item both answered in the run, each
/// pair judged in both orders. A pair the judge fails on is counted as not judged.
pub async fn compare_sides(
    judge: &Judge<'_>,
    results: &[EvalRecord],
    items: &[EvalItem],
) -> BTreeMap<String, PairTally> {
    let answer = |item: &EvalItem, side: RouteTarget| {
        results
            .iter()
            .find(|r| r.dataset == item.dataset && r.item_id == item.id && r.route == side.as_str())
            .map(|r| r.answer.as_str())
    };
    let pairs: Vec<(&EvalItem, &str, &str)> = items
        .iter()
        .filter(|item| edgeway_eval::task::needs_judge(item))
        .filter_map(|item| Some((item, answer(item, RouteTarget::Edge)?, answer(item, RouteTarget::Cloud)?)))
        .collect();
    let mut tallies: BTreeMap<String, PairTally> = BTreeMap::new();
    let bar = crate::progress::bar(pairs.len() as u64, "judging pairs");
    let mut failures = 0;
    for (item, edge, cloud) in pairs {
        bar.set_message(format!("{}/{}", item.dataset, item.id));
        let subject = item.subject.clone().unwrap_or_else(|| item.dataset.clone());
        let outcome = if failures < MAX_CONSECUTIVE_JUDGE_FAILURES {
            judge.compare(item, edge, cloud).await.map_err(|error| {
                bar.suspend(|| eprintln!("pairwise {}/{}: {error}", item.dataset, item.id));
            })
        } else {
            Err(())
        };
        failures = if outcome.is_ok() { 0 } else { failures + 1 };
        for key in [subject, "all".to_owned()] {
            let tally = tallies.entry(key).or_default();
            match outcome {
                Ok(outcome) => tally.add(outcome),
                Err(()) => tally.unjudged += 1,
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failures >= MAX_CONSECUTIVE_JUDGE_FAILURES {
        eprintln!("pairwise: the judge failed {failures} times in a row; the pairs after that were not judged");
    }
    tallies
}

/// The edge's win, tie and loss rates against the cloud, per category and over all.
pub fn print_pairwise(tallies: &BTreeMap<String, PairTally>, judge: &str) {
    let Some(all) = tallies.get("all") else {
        println!("pairwise: no open item was answered on both edge and cloud in this run (--route both)");
        return;
    };
    println!(
        "\npairwise, judged by {judge} in both orders (a win needs both; a disagreement is a tie): edge against cloud"
    );
    println!(
        "{:<16} {:>6} {:>10} {:>8} {:>14} {:>11} {:>10}",
        "category", "pairs", "edge wins", "ties", "inconsistent", "cloud wins", "unjudged"
    );
    let categories = tallies.iter().filter(|(key, _)| key.as_str() != "all").map(|(key, tally)| (key.as_str(), tally));
    for (category, tally) in categories.chain([("all", all)]) {
        let (wins, ties, losses) = tally.rates().unwrap_or_default();
        println!(
            "{:<16} {:>6} {:>9.1}% {:>7.1}% {:>14} {:>10.1}% {:>10}",
            category,
            tally.judged(),
            100.0 * wins,
            100.0 * ties,
            tally.inconsistent,
            100.0 * losses,
            tally.unjudged
        );
    }
}

/// The judge's mean rating (1 to 10) per category and side, for the judged sets of the run.
pub fn print_ratings(results: &[EvalRecord], items: &[EvalItem]) {
    let judged: std::collections::HashSet<(&str, &str)> = items
        .iter()
        .filter(|item| edgeway_eval::task::needs_judge(item))
        .map(|item| (item.dataset.as_str(), item.id.as_str()))
        .collect();
    let mut sums: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    for result in results.iter().filter(|r| judged.contains(&(r.dataset.as_str(), r.item_id.as_str()))) {
        // The grade is (rating - 1) / 9.
        let rating = 1.0 + 9.0 * result.grade;
        let category = result.subject.clone().unwrap_or_else(|| result.dataset.clone());
        for key in [(category, result.route.clone()), ("all".to_owned(), result.route.clone())] {
            let sum = sums.entry(key).or_default();
            sum.0 += rating;
            sum.1 += 1;
        }
    }
    if sums.is_empty() {
        return;
    }
    println!(
        "\nmean judge rating (1-10; accuracy above counts ratings of {} and up)",
        edgeway_eval::judge::PASS_RATING
    );
    println!("{:<16} {:<6} {:>6} {:>8}", "category", "side", "n", "rating");
    let rows =
        sums.iter().filter(|((category, _), _)| category != "all").chain(sums.iter().filter(|((c, _), _)| c == "all"));
    for ((category, side), (total, n)) in rows {
        println!("{:<16} {:<6} {:>6} {:>8.2}", category, side, n, total / *n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServeArgs;
    use crate::config::FileConfig;

    fn settings(toml_text: &str) -> ServeSettings {
        ServeSettings::merge(&ServeArgs::default(), toml::from_str::<FileConfig>(toml_text).unwrap()).unwrap()
    }

    const CLOUD: &str = "[cloud]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"big\"\n";

    #[test]
    fn the_default_judge_is_the_cloud_else_the_highest_local_tier() {
        let mut with_cloud = settings(CLOUD);
        assert_eq!(choose(None, &mut with_cloud).unwrap(), EvalRoute::Side(RouteTarget::Cloud));
        let mut tiers = settings(
            "[[models]]\nname = \"small\"\nmodel = \"smollm2-135m\"\n\
             [[models]]\nname = \"bigger\"\nmodel = \"qwen2.5-0.5b\"\ntier = 1\n",
        );
        assert_eq!(choose(None, &mut tiers).unwrap(), EvalRoute::Model("bigger".into()));
        assert_eq!(tiers.models.len(), 2, "nothing added");
        let mut alone = settings("");
        assert_eq!(choose(None, &mut alone).unwrap(), EvalRoute::Model("smollm2-135m".into()));
        assert_eq!(alone.models.len(), 1);
    }

    #[test]
    fn a_named_judge_the_router_lacks_joins_it_without_changing_routing() {
        let mut one = settings("");
        assert_eq!(choose(Some("qwen2.5-0.5b"), &mut one).unwrap(), EvalRoute::Model("qwen2.5-0.5b".into()));
        assert_eq!(one.models.len(), 2);
        let (answering, judge) = (&one.models[0], &one.models[1]);
        assert_eq!((answering.name.as_deref(), answering.tier, answering.pinned), (Some("smollm2-135m"), 0, true));
        assert!(answering.domains.is_empty(), "the model under test stays the generalist");
        assert_eq!(
            (judge.name.as_deref(), judge.model.as_str(), judge.pinned),
            (Some("qwen2.5-0.5b"), "qwen2.5-0.5b", false)
        );
        assert_eq!(judge.domains, [JUDGE_DOMAIN]);
        // Naming it again (or the model under test) adds nothing.
        assert_eq!(choose(Some("QWEN2.5-0.5b"), &mut one).unwrap(), EvalRoute::Model("qwen2.5-0.5b".into()));
        choose(Some("smollm2-135m"), &mut one).unwrap();
        assert_eq!(one.models.len(), 2);
    }

    #[test]
    fn sides_tiers_and_clouds_must_exist() {
        let mut alone = settings("");
        assert!(choose(Some("cloud"), &mut alone).unwrap_err().to_string().contains("needs a cloud tier"));
        assert!(choose(Some("tier3"), &mut alone).is_err());
        assert_eq!(choose(Some("edge"), &mut alone).unwrap(), EvalRoute::Side(RouteTarget::Edge));
        let mut with_cloud = settings(CLOUD);
        // The cloud's model name means that cloud, by the name the router knows it by.
        assert_eq!(choose(Some("big"), &mut with_cloud).unwrap(), EvalRoute::Model("cloud".into()));
        assert_eq!(with_cloud.models.len(), 1);
        let cloud_tier = with_cloud.clouds[0].tier;
        assert_eq!(choose(Some(&format!("tier{cloud_tier}")), &mut with_cloud).unwrap(), EvalRoute::Tier(cloud_tier));
    }
}
