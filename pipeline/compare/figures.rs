//! What `compare` computes from matched prompt pairs, as plain functions: pointwise (both sides
//! scored on the same rubric: mean difference with a paired bootstrap interval, Wilcoxon
//! signed-rank p, the shares that got worse and better) and pairwise (a judge asked which answer
//! is better in both orders; a verdict that changes with the order is a tie and counts as
//! position inconsistency; win/tie/loss with Wilson intervals; a length-controlled win rate).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analyse::stats;

/// Above this many pairs the interval of the mean difference is the normal one, not the
/// bootstrap's.
pub const BOOTSTRAP_MAX: usize = 20_000;

/// Pointwise figures of one metric over matched pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pointwise {
    pub n: usize,
    pub baseline_mean: f64,
    pub candidate_mean: f64,
    /// mean(candidate - baseline).
    pub delta: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Wilcoxon signed-rank, two-sided.
    pub p_value: f64,
    /// Share of prompts whose candidate score is below the baseline's.
    pub worse_share: f64,
    pub better_share: f64,
}

impl std::fmt::Display for Pointwise {
    /// `0.852 -> 0.833, delta -0.019 [-0.047, +0.009], Wilcoxon p 1.86e-1, 17.5% worse`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} -> {:.3}, delta {:+.3} [{:+.3}, {:+.3}], Wilcoxon p {:.2e}, {:.1}% worse",
            self.baseline_mean,
            self.candidate_mean,
            self.delta,
            self.ci_low,
            self.ci_high,
            self.p_value,
            100.0 * self.worse_share
        )
    }
}

/// Pointwise figures of paired scores (`baseline[i]` and `candidate[i]` answer the same prompt).
pub fn pointwise(baseline: &[f64], candidate: &[f64], resamples: usize, seed: u64) -> Pointwise {
    let diffs: Vec<f64> = baseline
        .iter()
        .zip(candidate)
        .map(|(b, c)| c - b)
        .filter(|d| d.is_finite())
        .collect();
    let n = diffs.len();
    // The bootstrap costs n x resamples draws; past BOOTSTRAP_MAX pairs the mean is normal to
    // well within the bootstrap's own noise, so the normal interval is used.
    let (delta, ci_low, ci_high) = if n <= BOOTSTRAP_MAX {
        stats::paired_bootstrap(&diffs, resamples, seed, 0.95)
    } else {
        let mean = stats::mean(&diffs);
        let half = 1.959_963_984_540_054 * (stats::variance(&diffs) / n as f64).sqrt();
        (mean, mean - half, mean + half)
    };
    let (_, p_value) = stats::wilcoxon_signed_rank(&diffs);
    let share = |f: fn(f64) -> bool| {
        if n == 0 {
            f64::NAN
        } else {
            diffs.iter().filter(|d| f(**d)).count() as f64 / n as f64
        }
    };
    Pointwise {
        n,
        baseline_mean: stats::mean(baseline),
        candidate_mean: stats::mean(candidate),
        delta,
        ci_low,
        ci_high,
        p_value,
        worse_share: share(|d| d < 0.0),
        better_share: share(|d| d > 0.0),
    }
}

/// Which answer a pairwise judge preferred, in the order it was shown them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    First,
    Second,
    Tie,
}

/// One prompt's pairwise outcome for the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Win,
    Loss,
    Tie,
    /// The two orders disagreed: counted as a tie, and as position inconsistency.
    Inconsistent,
    /// A verdict is missing (a judge error): left out.
    Missing,
}

impl Outcome {
    /// The candidate's score for a win rate: 1, 0 or ½.
    pub fn value(self) -> Option<f64> {
        match self {
            Outcome::Win => Some(1.0),
            Outcome::Loss => Some(0.0),
            Outcome::Tie | Outcome::Inconsistent => Some(0.5),
            Outcome::Missing => None,
        }
    }
}

/// Reconciles the two orders: `baseline_first` saw (baseline, candidate), `candidate_first` saw
/// (candidate, baseline).
pub fn reconcile(
    baseline_first: Option<Preference>,
    candidate_first: Option<Preference>,
) -> Outcome {
    use Preference::*;
    let (Some(a), Some(b)) = (baseline_first, candidate_first) else {
        return Outcome::Missing;
    };
    // Both in the candidate's terms: +1 candidate better, -1 baseline better, 0 tie.
    let first = match a {
        First => -1,
        Second => 1,
        Tie => 0,
    };
    let second = match b {
        First => 1,
        Second => -1,
        Tie => 0,
    };
    match (first, second) {
        (1, 1) => Outcome::Win,
        (-1, -1) => Outcome::Loss,
        (0, 0) => Outcome::Tie,
        _ => Outcome::Inconsistent,
    }
}

/// Pairwise figures over the prompts' outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pairwise {
    pub n: usize,
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
    pub inconsistent: usize,
    pub missing: usize,
    /// (wins + ½ ties) / n, ties including the inconsistent ones.
    pub win_rate: f64,
    pub win_rate_lower: f64,
    pub win_rate_upper: f64,
    pub tie_rate: f64,
    pub loss_rate: f64,
    /// Share of prompts whose verdict changed with the order.
    pub position_inconsistency: f64,
    /// The win rate a logistic model of the outcomes on the (squashed) response-length
    /// difference predicts at equal lengths (NaN without length differences to fit).
    pub length_controlled_win_rate: f64,
}

/// Pairwise figures; `length_delta[i]` is len(candidate) - len(baseline) of prompt `i`.
pub fn pairwise(outcomes: &[Outcome], length_delta: &[f64]) -> Pairwise {
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let (wins, losses, ties, inconsistent, missing) = (
        count(Outcome::Win),
        count(Outcome::Loss),
        count(Outcome::Tie),
        count(Outcome::Inconsistent),
        count(Outcome::Missing),
    );
    let n = wins + losses + ties + inconsistent;
    let nf = n as f64;
    let points = wins as f64 + 0.5 * (ties + inconsistent) as f64;
    let (lower, upper) = stats::wilson_interval(points, nf);
    let rate = |k: usize| if n == 0 { f64::NAN } else { k as f64 / nf };
    let (y, x): (Vec<f64>, Vec<f64>) = outcomes
        .iter()
        .zip(length_delta)
        .filter_map(|(o, d)| Some((o.value()?, *d)))
        .unzip();
    Pairwise {
        n,
        wins,
        ties: ties + inconsistent,
        losses,
        inconsistent,
        missing,
        win_rate: if n == 0 { f64::NAN } else { points / nf },
        win_rate_lower: lower,
        win_rate_upper: upper,
        tie_rate: rate(ties + inconsistent),
        loss_rate: rate(losses),
        position_inconsistency: rate(inconsistent),
        length_controlled_win_rate: length_controlled(&y, &x),
    }
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

/// Fits P(win) = σ(a + b·tanh(Δ / sd(Δ))) to outcomes in [0, 1] (ties ½) by Newton's method on
/// the Bernoulli log-likelihood and returns σ(a): the win rate at equal length. Like AlpacaEval's
/// length-controlled win rate without its per-instruction terms.
pub fn length_controlled(y: &[f64], delta: &[f64]) -> f64 {
    let n = y.len();
    if n < 2 {
        return f64::NAN;
    }
    let sd = stats::variance(delta).sqrt();
    if sd.is_nan() || sd <= 0.0 {
        return f64::NAN;
    }
    let x: Vec<f64> = delta.iter().map(|d| (d / sd).tanh()).collect();
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (yi, xi) in y.iter().zip(&x) {
            let p = sigmoid(a + b * xi);
            let w = (p * (1.0 - p)).max(1e-12);
            ga += yi - p;
            gb += (yi - p) * xi;
            haa += w;
            hab += w * xi;
            hbb += w * xi * xi;
        }
        // A small ridge keeps the step finite when every outcome is the same.
        let (haa, hbb) = (haa + 1e-9, hbb + 1e-9);
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a = (a + da).clamp(-30.0, 30.0);
        b = (b + db).clamp(-30.0, 30.0);
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            break;
        }
    }
    sigmoid(a)
}

/// The figures as the gate reads them: `<group>.<name>` -> value.
pub fn named(
    pointwise: &BTreeMap<String, Pointwise>,
    pairwise: Option<&Pairwise>,
) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    let finite = |v: f64| v.is_finite().then_some(v);
    for (metric, p) in pointwise {
        for (name, v) in [
            ("delta", p.delta),
            ("ci_low", p.ci_low),
            ("ci_high", p.ci_high),
            ("p_value", p.p_value),
            ("worse_share", p.worse_share),
            ("better_share", p.better_share),
            ("baseline_mean", p.baseline_mean),
            ("candidate_mean", p.candidate_mean),
        ] {
            out.insert(format!("{metric}.{name}"), finite(v));
        }
    }
    if let Some(p) = pairwise {
        for (name, v) in [
            ("win_rate", p.win_rate),
            ("win_rate_lower", p.win_rate_lower),
            ("win_rate_upper", p.win_rate_upper),
            ("tie_rate", p.tie_rate),
            ("loss_rate", p.loss_rate),
            ("position_inconsistency", p.position_inconsistency),
            ("length_controlled_win_rate", p.length_controlled_win_rate),
        ] {
            out.insert(format!("pairwise.{name}"), finite(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_figures_of_a_small_regression() {
        let baseline = [1.0, 1.0, 0.75, 1.0, 0.5, 1.0, 0.75, 1.0];
        let candidate = [1.0, 0.75, 0.75, 0.5, 0.5, 1.0, 0.5, 0.75];
        let p = pointwise(&baseline, &candidate, 500, 1);
        assert_eq!(p.n, 8);
        assert!((p.delta - (-1.25 / 8.0)).abs() < 1e-12);
        assert_eq!(p.worse_share, 0.5);
        assert_eq!(p.better_share, 0.0);
        assert!(p.ci_low <= p.delta && p.delta <= p.ci_high);
        assert!(p.ci_high <= 0.0);
        assert!(p.p_value > 0.0 && p.p_value < 0.2, "{}", p.p_value);
    }

    #[test]
    fn a_judge_that_always_prefers_the_first_answer_yields_ties_not_wins() {
        use Preference::*;
        // Shown (baseline, candidate) it says First; shown (candidate, baseline) it says First.
        let outcomes: Vec<Outcome> = (0..100)
            .map(|_| reconcile(Some(First), Some(First)))
            .collect();
        let p = pairwise(&outcomes, &vec![0.0; 100]);
        assert_eq!(p.inconsistent, 100);
        assert_eq!(p.position_inconsistency, 1.0);
        assert_eq!(p.win_rate, 0.5);
        assert_eq!((p.wins, p.losses, p.ties), (0, 0, 100));
        assert!(p.win_rate_lower < 0.5 && p.win_rate_upper > 0.5);
        // A consistent judge.
        assert_eq!(reconcile(Some(Second), Some(First)), Outcome::Win);
        assert_eq!(reconcile(Some(First), Some(Second)), Outcome::Loss);
        assert_eq!(reconcile(Some(Tie), Some(Tie)), Outcome::Tie);
        assert_eq!(reconcile(Some(Tie), Some(First)), Outcome::Inconsistent);
        assert_eq!(reconcile(None, Some(First)), Outcome::Missing);
    }

    #[test]
    fn length_control_removes_a_preference_for_longer_answers() {
        // The judge prefers the longer answer; at equal length the candidate is a coin flip.
        let mut y = Vec::new();
        let mut delta = Vec::new();
        for i in 0..400 {
            let d = (i as f64 - 200.0) * 5.0; // -1000..+995 chars
            delta.push(d);
            y.push(if d > 0.0 {
                1.0
            } else if d < 0.0 {
                0.0
            } else {
                0.5
            });
        }
        // A few upsets so the fit stays finite.
        for i in (0..400).step_by(10) {
            y[i] = 1.0 - y[i];
        }
        let outcomes: Vec<Outcome> = y
            .iter()
            .map(|v| match *v {
                1.0 => Outcome::Win,
                0.0 => Outcome::Loss,
                _ => Outcome::Tie,
            })
            .collect();
        let p = pairwise(&outcomes, &delta);
        assert!((p.length_controlled_win_rate - 0.5).abs() < 0.05, "{p:?}");
        // Shifted lengths: the candidate always writes 300 chars more; raw win rate is high,
        // the length-controlled one stays near a coin flip.
        let shifted: Vec<f64> = delta.iter().map(|d| d + 300.0).collect();
        let y_shifted: Vec<Outcome> = shifted
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let win = (*d > 0.0) != (i % 10 == 0);
                if win { Outcome::Win } else { Outcome::Loss }
            })
            .collect();
        let q = pairwise(&y_shifted, &shifted);
        assert!(q.win_rate > 0.6, "{q:?}");
        assert!(q.length_controlled_win_rate < q.win_rate - 0.05, "{q:?}");
    }

    #[test]
    fn gate_names_cover_every_figure() {
        let mut pw = BTreeMap::new();
        pw.insert(
            "composite".to_string(),
            pointwise(&[1.0, 0.5], &[0.5, 0.5], 10, 1),
        );
        let outcomes = [Outcome::Win, Outcome::Loss];
        let names = named(&pw, Some(&pairwise(&outcomes, &[10.0, -10.0])));
        for key in [
            "composite.delta",
            "composite.worse_share",
            "pairwise.win_rate_lower",
            "pairwise.position_inconsistency",
            "pairwise.length_controlled_win_rate",
        ] {
            assert!(names.contains_key(key), "{key}");
        }
    }
}
