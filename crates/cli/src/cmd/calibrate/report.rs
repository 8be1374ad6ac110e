//! The report: the tables `calibrate` prints and the JSON it writes with `--json`.

use super::*;

pub(super) fn print_tiers(pairs: &[Pair], scores: &[f32]) {
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

pub(super) fn print_policy(policy: &RoutingPolicy, score_only: &RoutingPolicy) {
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
pub(super) fn print_comparison(
    curves: &[(&str, Vec<Point>)],
    base: &Baselines,
    goal: f64,
    target: f64,
) -> serde_json::Value {
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

pub(super) fn print_outcomes(outcomes: &[(&str, Outcome)]) {
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
pub(super) fn print_groups(kind: &str, groups: &[GroupSplit]) {
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
pub(super) fn groups_json(kind: &str, groups: &[GroupSplit]) -> Vec<serde_json::Value> {
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

pub(super) fn policy_json(policy: &RoutingPolicy) -> serde_json::Value {
    json!({
        "threshold": policy.default_threshold,
        "thresholds": policy.domain_thresholds,
        "escalate_below_logprob": policy.escalate_below,
    })
}
