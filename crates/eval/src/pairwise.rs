//! Comparing the edge's answer with the cloud's, with the positions swapped.
//!
//! Judge models favour an answer for where it stands (often the first). So each
//! pair is judged twice, edge first and cloud first, and a side wins only when
//! both orders pick it; any disagreement is a tie ([`PairOutcome::Inconsistent`]).
//! This module is the rule and the tally, with no model: [`crate::judge::Judge::compare`]
//! asks the model.

use std::future::Future;

/// What a judge said about answers A (shown first) and B (shown second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first answer is better.
    A,
    /// The second answer is better.
    B,
    /// Neither is better.
    Tie,
}

/// The outcome of one position-swapped comparison, from the edge's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOutcome {
    /// Both orders preferred the edge's answer.
    EdgeWins,
    /// Both orders preferred the cloud's answer.
    CloudWins,
    /// Both orders called it a tie.
    Tie,
    /// The two orders disagreed (position bias, or a coin flip): counted as a tie.
    Inconsistent,
}

/// The outcome of judging (edge as A, cloud as B) and then (cloud as A, edge as B).
pub fn swapped(edge_first: Verdict, cloud_first: Verdict) -> PairOutcome {
    let first = match edge_first {
        Verdict::A => PairOutcome::EdgeWins,
        Verdict::B => PairOutcome::CloudWins,
        Verdict::Tie => PairOutcome::Tie,
    };
    let second = match cloud_first {
        Verdict::A => PairOutcome::CloudWins,
        Verdict::B => PairOutcome::EdgeWins,
        Verdict::Tie => PairOutcome::Tie,
    };
    if first == second {
        first
    } else {
        PairOutcome::Inconsistent
    }
}

/// Asks `judge(A, B)` twice, edge first then cloud first, and applies [`swapped`].
/// The first error stops it: a pair judged once is not judged.
pub async fn position_swapped<'x, E, F, Fut>(edge: &'x str, cloud: &'x str, mut judge: F) -> Result<PairOutcome, E>
where
    F: FnMut(&'x str, &'x str) -> Fut,
    Fut: Future<Output = Result<Verdict, E>>,
{
    let edge_first = judge(edge, cloud).await?;
    let cloud_first = judge(cloud, edge).await?;
    Ok(swapped(edge_first, cloud_first))
}

/// Pairwise outcomes counted over a run, from the edge's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairTally {
    /// The edge's answer won in both orders.
    pub wins: u64,
    /// Ties, the inconsistent ones included.
    pub ties: u64,
    /// Of `ties`, those where the two orders disagreed.
    pub inconsistent: u64,
    /// The cloud's answer won in both orders.
    pub losses: u64,
    /// Pairs the judge failed on (an error, no verdict): in no rate.
    pub unjudged: u64,
}

impl PairTally {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: PairOutcome) {
        match outcome {
            PairOutcome::EdgeWins => self.wins += 1,
            PairOutcome::CloudWins => self.losses += 1,
            PairOutcome::Tie => self.ties += 1,
            PairOutcome::Inconsistent => {
                self.ties += 1;
                self.inconsistent += 1;
            }
        }
    }

    /// Pairs with an outcome.
    pub fn judged(&self) -> u64 {
        self.wins + self.ties + self.losses
    }

    /// The edge's win, tie and loss rates among the judged pairs; `None` before any.
    pub fn rates(&self) -> Option<(f64, f64, f64)> {
        let n = self.judged();
        (n > 0).then(|| {
            let n = n as f64;
            (self.wins as f64 / n, self.ties as f64 / n, self.losses as f64 / n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Tie, A, B};

    #[test]
    fn a_side_wins_only_when_both_orders_agree() {
        // Edge first, then cloud first: A then B both point at the edge.
        assert_eq!(swapped(A, B), PairOutcome::EdgeWins);
        assert_eq!(swapped(B, A), PairOutcome::CloudWins);
        assert_eq!(swapped(Tie, Tie), PairOutcome::Tie);
        // Always the first (or always the second) shown: position bias, a tie.
        assert_eq!(swapped(A, A), PairOutcome::Inconsistent);
        assert_eq!(swapped(B, B), PairOutcome::Inconsistent);
        // One order undecided is not a win.
        for (first, second) in [(A, Tie), (Tie, B), (B, Tie), (Tie, A)] {
            assert_eq!(swapped(first, second), PairOutcome::Inconsistent, "{first:?} {second:?}");
        }
    }

    /// A fake judge that prefers the answer containing `good`, wherever it stands.
    async fn prefers_good(a: &str, b: &str) -> Result<Verdict, String> {
        Ok(match (a.contains("good"), b.contains("good")) {
            (true, false) => A,
            (false, true) => B,
            _ => Tie,
        })
    }

    #[tokio::test]
    async fn a_fair_judge_gives_consistent_wins_and_a_biased_one_ties() {
        assert_eq!(position_swapped("good", "bad", prefers_good).await, Ok(PairOutcome::EdgeWins));
        assert_eq!(position_swapped("bad", "good", prefers_good).await, Ok(PairOutcome::CloudWins));
        assert_eq!(position_swapped("good", "good too", prefers_good).await, Ok(PairOutcome::Tie));
        // Prefers whatever is shown first: never a win.
        let first_shown = |_: &str, _: &str| async { Ok::<_, String>(A) };
        assert_eq!(position_swapped("good", "bad", first_shown).await, Ok(PairOutcome::Inconsistent));
        // It is asked edge first, then cloud first.
        let mut seen = Vec::new();
        let recording = |a: &'static str, b: &'static str| {
            seen.push((a, b));
            async { Ok::<_, String>(Tie) }
        };
        position_swapped("edge", "cloud", recording).await.unwrap();
        assert_eq!(seen, [("edge", "cloud"), ("cloud", "edge")]);
    }

    #[tokio::test]
    async fn a_failed_order_fails_the_pair() {
        let mut calls = 0;
        let failing_second = |_: &str, _: &str| {
            calls += 1;
            let result = if calls == 1 { Ok(A) } else { Err("judge down".to_owned()) };
            async move { result }
        };
        assert_eq!(position_swapped("x", "y", failing_second).await, Err("judge down".to_owned()));
    }

    #[test]
    fn the_tally_counts_inconsistent_pairs_as_ties() {
        let mut tally = PairTally::default();
        assert_eq!(tally.rates(), None);
        for outcome in [PairOutcome::EdgeWins, PairOutcome::Inconsistent, PairOutcome::Tie, PairOutcome::CloudWins] {
            tally.add(outcome);
        }
        tally.unjudged += 1;
        assert_eq!((tally.wins, tally.ties, tally.inconsistent, tally.losses, tally.judged()), (1, 2, 1, 1, 4));
        assert_eq!(tally.rates(), Some((0.25, 0.5, 0.25)));
    }
}
