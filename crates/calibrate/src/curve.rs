//! Quality against cloud share: what each routing policy buys, and RouteLLM's summary numbers.
//!
//! Qualities are mean grades; costs are per query. "Share" is the fraction
//! of queries that call the cloud (escalations included).

use crate::pairs::Pair;

/// One operating point of a routing policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Fraction of queries that call the cloud.
    pub share: f64,
    /// Mean grade of the answers users get.
    pub quality: f64,
    /// Money per query.
    pub cost: f64,
    /// The score threshold that gives this point, for threshold curves.
    pub threshold: Option<f32>,
}

/// All-edge and all-cloud, the two ends every policy lies between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baselines {
    /// Items.
    pub n: usize,
    /// Mean grade when the edge answers everything.
    pub edge_quality: f64,
    /// Mean grade when the cloud answers everything.
    pub cloud_quality: f64,
    /// Cost per query, all edge.
    pub edge_cost: f64,
    /// Cost per query, all cloud.
    pub cloud_cost: f64,
}

impl Baselines {
    /// Measures both ends on `pairs`.
    pub fn of(pairs: &[Pair]) -> Self {
        let n = pairs.len().max(1) as f64;
        Self {
            n: pairs.len(),
            edge_quality: pairs.iter().map(|p| p.edge.grade).sum::<f64>() / n,
            cloud_quality: pairs.iter().map(|p| p.cloud.grade).sum::<f64>() / n,
            edge_cost: pairs.iter().map(|p| p.edge.cost).sum::<f64>() / n,
            cloud_cost: pairs.iter().map(|p| p.cloud.cost).sum::<f64>() / n,
        }
    }

    /// RouteLLM's performance gap recovered: 0 at all-edge quality, 1 at all-cloud.
    pub fn pgr(&self, quality: f64) -> Option<f64> {
        let gap = self.cloud_quality - self.edge_quality;
        (gap.abs() > 1e-12).then(|| (quality - self.edge_quality) / gap)
    }
}

/// What an item costs and scores when it stays at the edge, with confidence
/// escalation below `escalate_below` (the cloud answers instead, after the edge was paid for).
pub fn edge_outcome(pair: &Pair, escalate_below: Option<f64>) -> (f64, f64, bool) {
    let escalated = match (escalate_below, pair.edge.mean_logprob) {
        (Some(limit), Some(logprob)) => logprob < limit,
        _ => false,
    };
    if escalated {
        (pair.cloud.grade, pair.edge.cost + pair.cloud.cost, true)
    } else {
        (pair.edge.grade, pair.edge.cost, false)
    }
}

/// The curve traced by moving the threshold: items scoring at or above it go
/// to the cloud, the rest stay at the edge (escalating below `escalate_below`).
/// Items with equal scores move together, as a threshold cannot split them.
/// The first point sends nothing by score, the last sends everything.
pub fn threshold_curve(pairs: &[Pair], scores: &[f32], escalate_below: Option<f64>) -> Vec<Point> {
    assert_eq!(pairs.len(), scores.len(), "one score per pair");
    let n = pairs.len().max(1) as f64;
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let edge: Vec<(f64, f64, bool)> = pairs.iter().map(|p| edge_outcome(p, escalate_below)).collect();
    let mut quality: f64 = edge.iter().map(|e| e.0).sum();
    let mut cost: f64 = edge.iter().map(|e| e.1).sum();
    let mut calls = edge.iter().filter(|e| e.2).count() as f64;
    let top = order.first().map_or(1.0, |&i| scores[i]);
    let above_all = if top < 1.0 { (top + 1.0) / 2.0 } else { 1.0 };
    let mut points = vec![Point { share: calls / n, quality: quality / n, cost: cost / n, threshold: Some(above_all) }];
    let mut at = 0;
    while at < order.len() {
        let group_score = scores[order[at]];
        while at < order.len() && scores[order[at]] == group_score {
            let i = order[at];
            quality += pairs[i].cloud.grade - edge[i].0;
            cost += pairs[i].cloud.cost - edge[i].1;
            calls += 1.0 - f64::from(u8::from(edge[i].2));
            at += 1;
        }
        let threshold = match order.get(at) {
            Some(&next) => (group_score + scores[next]) / 2.0,
            None => 0.0,
        };
        points.push(Point { share: calls / n, quality: quality / n, cost: cost / n, threshold: Some(threshold) });
    }
    points
}

/// Random routing: a share `s` of queries picked at random, in expectation.
pub fn random_curve(baselines: &Baselines, steps: usize) -> Vec<Point> {
    (0..=steps)
        .map(|k| {
            let s = k as f64 / steps as f64;
            Point {
                share: s,
                quality: (1.0 - s) * baselines.edge_quality + s * baselines.cloud_quality,
                cost: (1.0 - s) * baselines.edge_cost + s * baselines.cloud_cost,
                threshold: None,
            }
        })
        .collect()
}

/// The oracle: the best possible routing with a given number of cloud calls,
/// knowing both answers (the cloud goes first where it gains the most).
pub fn oracle_curve(pairs: &[Pair]) -> Vec<Point> {
    let n = pairs.len().max(1) as f64;
    let mut order: Vec<&Pair> = pairs.iter().collect();
    let gain = |p: &Pair| p.cloud.grade - p.edge.grade;
    order.sort_by(|a, b| gain(b).total_cmp(&gain(a)).then(a.cloud.cost.total_cmp(&b.cloud.cost)));
    let mut quality: f64 = pairs.iter().map(|p| p.edge.grade).sum();
    let mut cost: f64 = pairs.iter().map(|p| p.edge.cost).sum();
    let mut points = vec![Point { share: 0.0, quality: quality / n, cost: cost / n, threshold: None }];
    for (calls, pair) in order.iter().enumerate() {
        quality += gain(pair);
        cost += pair.cloud.cost - pair.edge.cost;
        points.push(Point { share: (calls + 1) as f64 / n, quality: quality / n, cost: cost / n, threshold: None });
    }
    points
}

/// The smallest cloud share at which `curve` reaches `quality`.
pub fn share_to_reach(curve: &[Point], quality: f64) -> Option<f64> {
    curve.iter().filter(|p| p.quality >= quality - 1e-9).map(|p| p.share).min_by(f64::total_cmp)
}

/// RouteLLM's APGR: the area under performance-gap-recovered against cloud share, from 0 to 1.
pub fn apgr(curve: &[Point], baselines: &Baselines) -> Option<f64> {
    let mut points: Vec<(f64, f64)> =
        curve.iter().map(|p| Some((p.share, baselines.pgr(p.quality)?))).collect::<Option<_>>()?;
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Anchor both ends: nothing recovered with no calls, everything with all calls.
    if points.first().is_none_or(|p| p.0 > 0.0) {
        points.insert(0, (0.0, 0.0));
    }
    if points.last().is_none_or(|p| p.0 < 1.0) {
        points.push((1.0, 1.0));
    }
    Some(points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum())
}

/// RouteLLM's CPT(x): the smallest cloud share that recovers `x` of the gap (0.5 for CPT(50 %)).
pub fn cpt(curve: &[Point], baselines: &Baselines, x: f64) -> Option<f64> {
    curve
        .iter()
        .filter(|p| baselines.pgr(p.quality).is_some_and(|g| g >= x - 1e-9))
        .map(|p| p.share)
        .min_by(f64::total_cmp)
}

/// Accuracy of both sides in one band of scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    /// Lowest score in the band.
    pub low: f32,
    /// Highest score in the band.
    pub high: f32,
    /// Items.
    pub n: usize,
    /// Mean edge grade.
    pub edge_quality: f64,
    /// Mean cloud grade.
    pub cloud_quality: f64,
}

/// Items in `tiers` equal-sized bands of score (deciles for 10), lowest first.
pub fn tiers(pairs: &[Pair], scores: &[f32], tiers: usize) -> Vec<Tier> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let tiers = tiers.max(1);
    (0..tiers)
        .filter_map(|t| {
            let band = &order[t * order.len() / tiers..(t + 1) * order.len() / tiers];
            let n = band.len();
            (n > 0).then(|| Tier {
                low: scores[band[0]],
                high: scores[band[n - 1]],
                n,
                edge_quality: band.iter().map(|&i| pairs[i].edge.grade).sum::<f64>() / n as f64,
                cloud_quality: band.iter().map(|&i| pairs[i].cloud.grade).sum::<f64>() / n as f64,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pairs::Side;

    pub(crate) fn pair(id: usize, edge: f64, cloud: f64) -> Pair {
        Pair {
            dataset: "d".into(),
            item_id: id.to_string(),
            domain: "general".into(),
            question: format!("q{id}"),
            logged_score: 0.0,
            edge: Side { grade: edge, mean_logprob: Some(-0.1), ..Side::default() },
            cloud: Side { grade: cloud, cost: 1.0, ..Side::default() },
        }
    }

    /// 10 items; the cloud alone is right on the 4 with the highest scores.
    pub(crate) fn separable() -> (Vec<Pair>, Vec<f32>) {
        let pairs: Vec<Pair> = (0..10).map(|i| if i >= 6 { pair(i, 0.0, 1.0) } else { pair(i, 1.0, 1.0) }).collect();
        let scores = (0..10).map(|i| i as f32 / 10.0).collect();
        (pairs, scores)
    }

    #[test]
    fn a_separating_score_matches_the_oracle() {
        let (pairs, scores) = separable();
        let base = Baselines::of(&pairs);
        assert_eq!((base.edge_quality, base.cloud_quality, base.cloud_cost), (0.6, 1.0, 1.0));
        let curve = threshold_curve(&pairs, &scores, None);
        assert_eq!(curve.len(), 11);
        assert_eq!(curve[0].share, 0.0);
        assert_eq!(curve[4].share, 0.4);
        assert!((curve[4].quality - 1.0).abs() < 1e-12);
        // The threshold between the 6th and 7th items: 0.55.
        assert!((curve[4].threshold.unwrap() - 0.55).abs() < 1e-6);
        assert_eq!(share_to_reach(&curve, 1.0), Some(0.4));
        assert_eq!(share_to_reach(&oracle_curve(&pairs), 1.0), Some(0.4));
        // Random needs every call to reach full quality.
        assert_eq!(share_to_reach(&random_curve(&base, 100), 1.0), Some(1.0));
        assert!((cpt(&curve, &base, 0.5).unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn apgr_is_half_for_random_and_higher_for_a_good_scorer() {
        let (pairs, scores) = separable();
        let base = Baselines::of(&pairs);
        assert!((apgr(&random_curve(&base, 100), &base).unwrap() - 0.5).abs() < 1e-9);
        let good = apgr(&threshold_curve(&pairs, &scores, None), &base).unwrap();
        // PGR rises 0.25 per call to 1 at 40 %, then stays: area = 0.2 + 0.6 = 0.8.
        assert!((good - 0.8).abs() < 1e-9, "{good}");
        let reversed: Vec<f32> = scores.iter().map(|s| 1.0 - s).collect();
        assert!(apgr(&threshold_curve(&pairs, &reversed, None), &base).unwrap() < 0.5);
    }

    #[test]
    fn ties_move_together_and_tiers_split_evenly() {
        let pairs: Vec<Pair> = (0..4).map(|i| pair(i, 0.0, 1.0)).collect();
        let curve = threshold_curve(&pairs, &[0.5; 4], None);
        assert_eq!(curve.iter().map(|p| p.share).collect::<Vec<_>>(), vec![0.0, 1.0]);
        let (pairs, scores) = separable();
        let bands = tiers(&pairs, &scores, 5);
        assert_eq!(bands.len(), 5);
        assert!(bands.iter().all(|b| b.n == 2));
        assert_eq!(bands[4].edge_quality, 0.0);
        assert_eq!(bands[0].edge_quality, 1.0);
    }

    #[test]
    fn escalation_sends_unsure_edge_answers_to_the_cloud() {
        let (mut pairs, scores) = separable();
        for p in pairs.iter_mut().skip(6) {
            p.edge.mean_logprob = Some(-3.0);
        }
        let curve = threshold_curve(&pairs, &scores, Some(-1.0));
        // With nothing routed by score, escalation alone recovers everything.
        assert_eq!(curve[0].share, 0.4);
        assert!((curve[0].quality - 1.0).abs() < 1e-12);
    }
}
