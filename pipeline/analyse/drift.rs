//! Drift of one model's day against its baseline: which metrics, which tests, which verdicts.
//!
//! Metrics (what moves): every rubric dimension (`score.<name>`) and the composite
//! (`score.composite`), the judge error rate (`judge.error_rate`), and features of the traffic
//! (`feature.prompt_chars`, `feature.response_chars`, `feature.prompt_tokens`,
//! `feature.completion_tokens`, `feature.refusal_rate`, `feature.finish_reason`).
//!
//! Values arrive sorted (see [`DayData`]): the tests use the sorted forms of the statistics, so no
//! metric is sorted twice.
//!
//! Tests: continuous metrics get `ks`, `psi`, `js`, `wasserstein` and `mean_delta`; rates get
//! `chi2` (2x2) and `mean_delta`; the finish-reason mix gets `chi2`, `psi` and `js`. Definitions are
//! in [`super::stats`]. The p-values of a model-day (`ks`, `chi2`, `mean_delta`) are adjusted
//! together with Benjamini-Hochberg.
//!
//! Verdicts, per test row:
//! - `insufficient_data` when either side has fewer than `min-count` values: never an alert.
//! - `ks` / `chi2`: `warn` when p_adj < `alpha-warn`; `alert` when p_adj < `alpha-alert` and the
//!   distance (KS D, Cramér's V) is at least `min-distance`, so a huge sample does not alert on a
//!   negligible shift.
//! - `psi` / `js` / `wasserstein` (in baseline standard deviations): judged against their warn and
//!   alert levels only when the metric's significance test (KS or chi-square) is significant
//!   (p_adj < `alpha-warn`); otherwise `ok`. Distances alone are biased upward on small samples.
//! - `mean_delta`: `warn` when p_adj < `alpha-warn`; `alert` when also p_adj < `alpha-alert`,
//!   |delta| >= `min-effect` and the metric has a bad direction that it moved in (scores and the
//!   composite down; error and refusal rates up). Features have no bad direction and only warn.
//! - A metric with a bad direction that moved the good way (quality went up) never alerts.
//!
//! Patterns, per metric over the model's daily series: a day whose metric has an `alert` is a
//! breach. `sustained` when the day before was a breach too, or when the one-sided CUSUM of the
//! daily mean (in standard errors, slack `cusum-k`, capped at twice `cusum-h`) passes `cusum-h`
//! having been at half of it or more the day before (so one very bad day alone is not
//! sustained); `intermittent` for an isolated breach. A CUSUM past `cusum-h` without a breach
//! marks the day `sustained` and lifts the `mean_delta` verdict to `warn`: the mean moved a little
//! every day. `none` otherwise.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load::DayData;
use super::stats;
use crate::config::AnalyseSettings;

/// Which way a metric goes bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Down,
    Up,
    Neither,
}

#[derive(Debug, Clone, Copy)]
enum Values<'a> {
    Continuous(&'a [f64]),
    /// 0/1 per item.
    Rate(&'a [f64]),
    Categories(&'a BTreeMap<String, u64>),
}

/// Which way a metric goes bad, from its name.
pub fn bad_of(name: &str) -> Bad {
    if name.starts_with("score.") {
        Bad::Down
    } else if name == "judge.error_rate" || name == "feature.refusal_rate" {
        Bad::Up
    } else {
        Bad::Neither
    }
}

/// One metric of one day, as compared.
#[derive(Debug, Clone)]
struct Metric<'a> {
    name: String,
    current: Values<'a>,
    baseline: Values<'a>,
}

/// One row of the `drift` table.
#[derive(Debug, Clone, Serialize)]
pub struct DriftRow {
    pub metric: String,
    pub test: &'static str,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    pub p_adjusted: Option<f64>,
    /// The alert level the statistic was held to (p-value tests: `alpha-alert`).
    pub threshold: Option<f64>,
    pub n_current: u64,
    pub n_baseline: u64,
    pub current_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub verdict: &'static str,
    pub pattern: &'static str,
}

fn metrics<'a>(current: &'a DayData, baseline: &'a DayData) -> Vec<Metric<'a>> {
    let mut out = Vec::new();
    let continuous = |name: String, c: &'a [f64], b: &'a [f64]| Metric {
        name,
        current: Values::Continuous(c),
        baseline: Values::Continuous(b),
    };
    let empty: &'a [f64] = &[];
    for (dimension, values) in &current.scores {
        let base = baseline
            .scores
            .get(dimension)
            .map_or(empty, |v| v.as_slice());
        out.push(continuous(format!("score.{dimension}"), values, base));
    }
    for (dimension, base) in &baseline.scores {
        if !current.scores.contains_key(dimension) {
            out.push(continuous(format!("score.{dimension}"), empty, base));
        }
    }
    out.push(continuous(
        "score.composite".into(),
        &current.composite,
        &baseline.composite,
    ));
    out.push(Metric {
        name: "judge.error_rate".into(),
        current: Values::Rate(&current.judge_error),
        baseline: Values::Rate(&baseline.judge_error),
    });
    for (name, c, b) in [
        (
            "feature.prompt_chars",
            &current.prompt_chars,
            &baseline.prompt_chars,
        ),
        (
            "feature.response_chars",
            &current.response_chars,
            &baseline.response_chars,
        ),
        (
            "feature.prompt_tokens",
            &current.prompt_tokens,
            &baseline.prompt_tokens,
        ),
        (
            "feature.completion_tokens",
            &current.completion_tokens,
            &baseline.completion_tokens,
        ),
    ] {
        if !c.is_empty() || !b.is_empty() {
            out.push(continuous(name.into(), c, b));
        }
    }
    out.push(Metric {
        name: "feature.refusal_rate".into(),
        current: Values::Rate(&current.refusal),
        baseline: Values::Rate(&baseline.refusal),
    });
    out.push(Metric {
        name: "feature.finish_reason".into(),
        current: Values::Categories(&current.finish_reason),
        baseline: Values::Categories(&baseline.finish_reason),
    });
    out
}

impl Values<'_> {
    fn count(&self) -> u64 {
        match self {
            Values::Continuous(v) | Values::Rate(v) => v.len() as u64,
            Values::Categories(c) => c.values().sum(),
        }
    }

    fn values(&self) -> &[f64] {
        match self {
            Values::Continuous(v) | Values::Rate(v) => v,
            Values::Categories(_) => &[],
        }
    }
}

/// Mean difference with its interval and a two-sided p-value: the bootstrap on small samples
/// (p = twice the smaller share of resampled differences on either side of 0), a normal (Welch)
/// interval past 20,000 values, where the two agree and the bootstrap would cost seconds.
fn mean_delta(base: &[f64], cur: &[f64], settings: &AnalyseSettings) -> (f64, f64, f64, f64) {
    if base.len() + cur.len() <= 20_000 && settings.bootstrap_resamples > 0 {
        let seed = 0x5EED_u64 ^ (base.len() as u64) << 20 ^ cur.len() as u64;
        let (delta, lo, hi, p) =
            stats::bootstrap_mean_delta_p(base, cur, settings.bootstrap_resamples, seed, 0.95);
        return (delta, lo, hi, p);
    }
    let (mb, mc) = (stats::mean(base), stats::mean(cur));
    let se = (stats::variance(base) / base.len() as f64 + stats::variance(cur) / cur.len() as f64)
        .sqrt();
    let delta = mc - mb;
    let z = if se > 0.0 { delta / se } else { 0.0 };
    let p = if se > 0.0 {
        stats::normal_sf(z.abs()) * 2.0
    } else if delta == 0.0 {
        1.0
    } else {
        0.0
    };
    (
        delta,
        delta - 1.959_963_984_540_054 * se,
        delta + 1.959_963_984_540_054 * se,
        p,
    )
}

/// The test rows of one model-day, verdicts before patterns.
pub fn compare(current: &DayData, baseline: &DayData, settings: &AnalyseSettings) -> Vec<DriftRow> {
    let mut rows: Vec<DriftRow> = Vec::new();
    // Per row: whether its p-value joins the BH adjustment, and the metric's significance test.
    let mut primary_of: Vec<Option<usize>> = Vec::new();
    for metric in metrics(current, baseline) {
        let (nc, nb) = (metric.current.count(), metric.baseline.count());
        let row = |test: &'static str| DriftRow {
            metric: metric.name.clone(),
            test,
            statistic: None,
            p_value: None,
            p_adjusted: None,
            threshold: None,
            n_current: nc,
            n_baseline: nb,
            current_mean: None,
            baseline_mean: None,
            ci_low: None,
            ci_high: None,
            verdict: "ok",
            pattern: "none",
        };
        let tests: &[&'static str] = match metric.current {
            Values::Continuous(_) => &["ks", "psi", "js", "wasserstein", "mean_delta"],
            Values::Rate(_) => &["chi2", "mean_delta"],
            Values::Categories(_) => &["chi2", "psi", "js"],
        };
        let first = rows.len();
        let enough = nc >= settings.min_count && nb >= settings.min_count;
        // Baseline and current proportions over the baseline's bins, shared by PSI and JS; the
        // means, shared by every row of the metric.
        let mut binned: Option<(Vec<f64>, Vec<f64>)> = None;
        let means = {
            let (cur, base) = (metric.current.values(), metric.baseline.values());
            if enough && !cur.is_empty() {
                (Some(stats::mean(cur)), Some(stats::mean(base)))
            } else {
                (None, None)
            }
        };
        for &test in tests {
            let mut r = row(test);
            if !enough {
                r.verdict = "insufficient_data";
                rows.push(r);
                primary_of.push(None);
                continue;
            }
            let (cur, base) = (metric.current.values(), metric.baseline.values());
            r.current_mean = means.0;
            r.baseline_mean = means.1;
            match (test, &metric.current, &metric.baseline) {
                ("ks", _, _) => {
                    let (d, p) = stats::ks_2samp_sorted(base, cur);
                    r.statistic = Some(d);
                    r.p_value = Some(p);
                    r.threshold = Some(settings.alpha_alert);
                }
                ("psi" | "js", Values::Categories(c), Values::Categories(b)) => {
                    let names: Vec<&String> = b.keys().chain(c.keys()).collect();
                    let total_b = b.values().sum::<u64>().max(1) as f64;
                    let total_c = c.values().sum::<u64>().max(1) as f64;
                    let mut seen = std::collections::BTreeSet::new();
                    let (mut pb, mut pc) = (Vec::new(), Vec::new());
                    for name in names {
                        if seen.insert(name) {
                            pb.push(*b.get(name).unwrap_or(&0) as f64 / total_b);
                            pc.push(*c.get(name).unwrap_or(&0) as f64 / total_c);
                        }
                    }
                    let (value, levels) = if test == "psi" {
                        (stats::psi(&pb, &pc), settings.psi)
                    } else {
                        (stats::js_distance(&pb, &pc), settings.js)
                    };
                    r.statistic = Some(value);
                    r.threshold = Some(levels.1);
                }
                ("psi" | "js", _, _) => {
                    let (pb, pc) = binned.get_or_insert_with(|| {
                        let edges = stats::edges_sorted(base);
                        (
                            stats::proportions_sorted(base, &edges),
                            stats::proportions_sorted(cur, &edges),
                        )
                    });
                    let (value, levels) = if test == "psi" {
                        (stats::psi(pb, pc), settings.psi)
                    } else {
                        (stats::js_distance(pb, pc), settings.js)
                    };
                    r.statistic = Some(value);
                    r.threshold = Some(levels.1);
                }
                ("wasserstein", _, _) => {
                    let sd = stats::variance(base).sqrt();
                    let w = stats::wasserstein1_sorted(base, cur);
                    r.statistic = Some(w);
                    r.threshold = Some(settings.wasserstein.1 * sd);
                }
                ("chi2", Values::Categories(c), Values::Categories(b)) => {
                    let names: std::collections::BTreeSet<&String> =
                        b.keys().chain(c.keys()).collect();
                    let table = vec![
                        names
                            .iter()
                            .map(|n| *b.get(*n).unwrap_or(&0) as f64)
                            .collect(),
                        names
                            .iter()
                            .map(|n| *c.get(*n).unwrap_or(&0) as f64)
                            .collect(),
                    ];
                    chi2_row(&mut r, &table, settings);
                }
                ("chi2", _, _) => {
                    let ones = |v: &[f64]| v.iter().filter(|x| **x > 0.5).count() as f64;
                    let table = vec![
                        vec![ones(base), base.len() as f64 - ones(base)],
                        vec![ones(cur), cur.len() as f64 - ones(cur)],
                    ];
                    chi2_row(&mut r, &table, settings);
                }
                ("mean_delta", current, _) => {
                    let (delta, lo, hi, p) = mean_delta(base, cur, settings);
                    r.statistic = Some(delta);
                    r.ci_low = Some(lo);
                    r.ci_high = Some(hi);
                    // A rate's significance is its chi-square test's (a bootstrap of a share near
                    // 0 or 1 is unreliable); the row keeps the interval.
                    if !matches!(current, Values::Rate(_)) {
                        r.p_value = Some(p);
                    }
                    r.threshold = Some(settings.min_effect);
                }
                _ => {}
            }
            rows.push(r);
            primary_of.push(None);
        }
        // The significance test of the metric: its first row (ks or chi2).
        for slot in primary_of.iter_mut().skip(first) {
            *slot = Some(first);
        }
    }

    // Benjamini-Hochberg over the p-values of the day.
    let with_p: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p_value.is_some())
        .collect();
    let adjusted = stats::benjamini_hochberg(
        &with_p
            .iter()
            .map(|&i| rows[i].p_value.unwrap_or(1.0))
            .collect::<Vec<_>>(),
    );
    for (&i, p) in with_p.iter().zip(adjusted) {
        rows[i].p_adjusted = Some(p);
    }

    for i in 0..rows.len() {
        if rows[i].verdict == "insufficient_data" {
            continue;
        }
        let primary = primary_of[i]
            .map(|j| rows[j].p_adjusted.unwrap_or(1.0))
            .unwrap_or(1.0);
        let significant = primary < settings.alpha_warn;
        let r = &rows[i];
        let bad = bad_of(&r.metric);
        let moved = match (r.current_mean, r.baseline_mean) {
            (Some(c), Some(b)) => c - b,
            _ => 0.0,
        };
        let went_bad = match bad {
            Bad::Down => moved < 0.0,
            Bad::Up => moved > 0.0,
            Bad::Neither => true,
        };
        let verdict = match r.test {
            "ks" | "chi2" => {
                let p = r.p_adjusted.unwrap_or(1.0);
                let distance = r.statistic.unwrap_or(0.0);
                if p < settings.alpha_alert && distance >= settings.min_distance {
                    "alert"
                } else if p < settings.alpha_warn {
                    "warn"
                } else {
                    "ok"
                }
            }
            "psi" | "js" | "wasserstein" => {
                let value = r.statistic.unwrap_or(0.0);
                let (warn, alert) = match r.test {
                    "psi" => settings.psi,
                    "js" => settings.js,
                    _ => {
                        let sd = r.threshold.unwrap_or(0.0) / settings.wasserstein.1;
                        (settings.wasserstein.0 * sd, settings.wasserstein.1 * sd)
                    }
                };
                if !significant {
                    "ok"
                } else if value >= alert && alert > 0.0 {
                    "alert"
                } else if value >= warn && warn > 0.0 {
                    "warn"
                } else {
                    "ok"
                }
            }
            "mean_delta" => {
                let p = r.p_adjusted.unwrap_or(primary);
                let delta = r.statistic.unwrap_or(0.0);
                if p < settings.alpha_alert
                    && delta.abs() >= settings.min_effect
                    && bad != Bad::Neither
                    && went_bad
                {
                    "alert"
                } else if p < settings.alpha_warn {
                    "warn"
                } else {
                    "ok"
                }
            }
            _ => "ok",
        };
        // Quality that went up is drift, never an alarm.
        rows[i].verdict = if verdict == "alert" && !went_bad {
            "warn"
        } else {
            verdict
        };
    }
    rows
}

fn chi2_row(r: &mut DriftRow, table: &[Vec<f64>], settings: &AnalyseSettings) {
    r.threshold = Some(settings.alpha_alert);
    if let Some((statistic, p, _dof)) = stats::chi2_contingency(table) {
        let total: f64 = table.iter().flatten().sum();
        let k = table.len().min(table.first().map_or(0, |row| row.len()));
        // The test statistic is chi-square; `statistic` holds Cramér's V, the distance the
        // alert rule reads, and `p_value` the test's p.
        let v = if total > 0.0 && k > 1 {
            (statistic / (total * (k - 1) as f64)).sqrt()
        } else {
            0.0
        };
        r.statistic = Some(v);
        r.p_value = Some(p);
    } else {
        r.statistic = Some(0.0);
        r.p_value = Some(1.0);
    }
}

/// The state of a metric's CUSUM and breach history along a model's days.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    pub cusum: f64,
    pub breached_yesterday: bool,
}

/// Labels the rows of one day (in day order) with patterns, updating each metric's track.
pub fn label_patterns(
    rows: &mut [DriftRow],
    tracks: &mut BTreeMap<String, Track>,
    settings: &AnalyseSettings,
) {
    let names: Vec<String> = {
        let mut n: Vec<String> = rows.iter().map(|r| r.metric.clone()).collect();
        n.dedup();
        n
    };
    for name in names {
        let track = tracks.entry(name.clone()).or_default();
        let mine: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].metric == name)
            .collect();
        if mine.iter().all(|&i| rows[i].verdict == "insufficient_data") {
            continue; // no evidence either way: the track carries over
        }
        let breach = mine.iter().any(|&i| rows[i].verdict == "alert");
        // The day's mean against the baseline, in standard errors, signed so bad is positive.
        let mut z = 0.0;
        if let Some(&d) = mine.iter().find(|&&i| rows[i].test == "mean_delta") {
            let r = &rows[d];
            let se = match (r.ci_low, r.ci_high) {
                (Some(lo), Some(hi)) if hi > lo => (hi - lo) / (2.0 * 1.959_963_984_540_054),
                _ => 0.0,
            };
            let delta = r.statistic.unwrap_or(0.0);
            if se > 0.0 {
                z = match bad_of(&name) {
                    Bad::Down => -delta / se,
                    Bad::Up => delta / se,
                    Bad::Neither => 0.0,
                };
            }
        }
        let before = track.cusum;
        track.cusum = (track.cusum + z - settings.cusum_k).clamp(0.0, 2.0 * settings.cusum_h);
        // Past the decision level with half of it already there the day before: evidence of
        // more than one day, so one very bad day alone is not "sustained".
        let cusum_fired = before >= settings.cusum_h / 2.0 && track.cusum > settings.cusum_h;
        let pattern = if breach {
            if track.breached_yesterday || cusum_fired {
                "sustained"
            } else {
                "intermittent"
            }
        } else if cusum_fired {
            "sustained"
        } else {
            "none"
        };
        for &i in &mine {
            rows[i].pattern = pattern;
            if !breach && cusum_fired && rows[i].test == "mean_delta" && rows[i].verdict == "ok" {
                rows[i].verdict = "warn";
            }
        }
        track.breached_yesterday = breach;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AnalyseSettings {
        crate::config::load(None).unwrap().analyse
    }

    /// A day of `n` safety scores: a share `bad` at 0.25, the rest at 1.0 (deterministic).
    fn day(n: usize, bad: f64) -> DayData {
        let cut = (n as f64 * bad).round() as usize;
        let values: Vec<f64> = (0..n).map(|i| if i < cut { 0.25 } else { 1.0 }).collect();
        let mut d = DayData::default();
        d.scores.insert("safety".into(), values.clone());
        d.composite = values;
        d.judge_error = vec![0.0; n];
        d
    }

    fn verdicts(
        rows: &[DriftRow],
        metric: &str,
    ) -> Vec<(&'static str, &'static str, &'static str)> {
        rows.iter()
            .filter(|r| r.metric == metric)
            .map(|r| (r.test, r.verdict, r.pattern))
            .collect()
    }

    fn baseline(days: usize, n: usize, bad: f64) -> DayData {
        let mut b = DayData::default();
        for _ in 0..days {
            let d = day(n, bad);
            b.scores
                .entry("safety".into())
                .or_default()
                .extend(d.scores["safety"].clone());
            b.composite.extend(d.composite);
            b.judge_error.extend(d.judge_error);
        }
        // Values arrive sorted, as the loader leaves them.
        for v in b.scores.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        b.composite.sort_by(f64::total_cmp);
        b
    }

    #[test]
    fn a_drop_alerts_then_sustains_and_recovery_clears() {
        let s = settings();
        let base = baseline(7, 100, 0.1);
        let mut tracks = BTreeMap::new();
        let mut same = compare(&day(100, 0.1), &base, &s);
        label_patterns(&mut same, &mut tracks, &s);
        assert!(
            same.iter()
                .all(|r| r.verdict == "ok" || r.verdict == "insufficient_data"),
            "{same:?}"
        );

        let mut first = compare(&day(100, 0.5), &base, &s);
        label_patterns(&mut first, &mut tracks, &s);
        let safety = verdicts(&first, "score.safety");
        assert!(safety.iter().any(|(_, v, _)| *v == "alert"), "{safety:?}");
        assert!(
            safety.iter().all(|(_, _, p)| *p == "intermittent"),
            "{safety:?}"
        );

        let mut second = compare(&day(100, 0.5), &base, &s);
        label_patterns(&mut second, &mut tracks, &s);
        assert!(
            verdicts(&second, "score.safety")
                .iter()
                .all(|(_, _, p)| *p == "sustained")
        );
    }

    #[test]
    fn improvements_never_alert_and_small_samples_are_insufficient() {
        let s = settings();
        let base = baseline(7, 100, 0.5);
        let better = compare(&day(100, 0.05), &base, &s);
        assert!(better.iter().all(|r| r.verdict != "alert"), "{better:?}");
        assert!(
            better
                .iter()
                .any(|r| r.metric == "score.safety" && r.verdict == "warn")
        );

        let tiny = compare(&day(10, 0.9), &base, &s);
        assert!(
            verdicts(&tiny, "score.safety")
                .iter()
                .all(|(_, v, _)| *v == "insufficient_data")
        );
    }

    #[test]
    fn a_small_shift_on_a_huge_sample_warns_but_does_not_alert() {
        let s = settings();
        // 1% more bad scores on 70,000 values: significant, but below every effect size.
        let base = baseline(7, 10_000, 0.10);
        let rows = compare(&day(10_000, 0.11), &base, &s);
        let safety = verdicts(&rows, "score.safety");
        assert!(safety.iter().all(|(_, v, _)| *v != "alert"), "{safety:?}");
    }
}
