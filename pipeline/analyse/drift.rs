//! Drift of one model's day against its baseline: which metrics, which tests, which verdicts.
//!
//! Metrics (what moves): every rubric dimension (`score.<name>`) and the composite
//! (`score.composite`), the judge error rate (`judge.error_rate`), and features of the traffic
//! (`feature.prompt_chars`, `feature.response_chars`, `feature.prompt_tokens`,
//! `feature.completion_tokens`, `feature.refusal_rate`, `feature.finish_reason`).
//!
//! With embeddings (the `embed` stage; [`super::embedding`] computes them into an [`Extra`]):
//! `topic.shares` (the window's prompts over the baseline's k-means topics, topics expected
//! fewer than 5 times pooled into `other`, novel prompts apart; a category metric),
//! `topic.novel_share` (per prompt, 1 when farther from every topic than the baseline's 99th
//! percentile; a rate that goes bad upward), and `embedding.prompt` / `embedding.reply` with the
//! tests `mmd` (the significance test, its p-value in the BH adjustment), `centroid_cosine` and
//! `classifier_auc`.
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
//! - `mmd` and `centroid_cosine`: `warn` when the MMD's p_adj < `alpha-warn`, never `alert`.
//! - `classifier_auc`: `alert` when the MMD's p_adj < `alpha-alert` and the AUC is at least
//!   `[embed] auc-alert` (0.65); `warn` when p_adj < `alpha-warn` and the AUC is at least
//!   `auc-warn` (0.55, Evidently's default). The AUC says how far apart the sides are, so a huge
//!   sample does not alert on a difference no one would notice.
//! - A metric with a bad direction that moved the good way (quality went up) never alerts.
//!
//! - `cusum_down` / `cusum_up` (every metric with values): one-sided CUSUMs across days of the
//!   day's mean difference from the baseline in standard errors ([`super::sequential`]; slack
//!   `cusum-k`, widened by `sequential-min-effect`; capped at the level plus the slack). `statistic` is the
//!   CUSUM, `threshold` its decision level, simulated from the model's own baseline for
//!   `false-alerts-per-30-days` over the model's score metrics (or `cusum-h` when set). Past the
//!   level: `alert` for a score metric's drop, `warn` for its rise and for every other metric
//!   (judge errors and refusals are rare events, tested by their chi-square).
//!
//! Patterns, per metric over the model's daily series: a day whose metric has an `alert` is a
//! breach. `sustained` when the day before was a breach too, or when the CUSUM in the bad
//! direction passes its level having been at half of it or more the day before (so one very bad
//! day alone is not sustained); `intermittent` for an isolated breach. A feature's CUSUM past its
//! level marks the day `sustained` without a breach. `none` otherwise.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load::DayData;
use super::sequential;
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
    } else if name == "judge.error_rate"
        || name == "feature.refusal_rate"
        || name == "topic.novel_share"
    {
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
    /// CUSUM rows: the day's standardised difference from the baseline ([`sequential::z_of`]),
    /// and the slack it was run with (not written: `statistic` holds the CUSUM).
    pub day_z: Option<(f64, f64)>,
}

/// What a day's embeddings add to its comparison ([`super::embedding::extra`]): empty without
/// embeddings.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Topic counts (`topic-1`, ..., `novel`) of the window and of the baseline.
    pub topics: Option<(BTreeMap<String, u64>, BTreeMap<String, u64>)>,
    /// Per prompt, 1 when novel (sorted): the window's and the baseline's.
    pub novel: Option<(Vec<f64>, Vec<f64>)>,
    /// `embedding.prompt` and `embedding.reply`.
    pub embedding: Vec<EmbeddingDrift>,
}

/// How far a window's embedded prompts or replies are from the baseline's.
#[derive(Debug, Clone)]
pub struct EmbeddingDrift {
    pub metric: &'static str,
    pub n_current: u64,
    pub n_baseline: u64,
    /// Centroid distance, MMD test, classifier AUC; `None` with fewer than `min-count` vectors
    /// on a side.
    pub result: Option<(f64, super::embedding::Mmd, f64)>,
}

fn metrics<'a>(current: &'a DayData, baseline: &'a DayData, extra: &'a Extra) -> Vec<Metric<'a>> {
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
    if let Some((c, b)) = &extra.topics {
        out.push(Metric {
            name: "topic.shares".into(),
            current: Values::Categories(c),
            baseline: Values::Categories(b),
        });
    }
    if let Some((c, b)) = &extra.novel {
        out.push(Metric {
            name: "topic.novel_share".into(),
            current: Values::Rate(c),
            baseline: Values::Rate(b),
        });
    }
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
pub fn compare(
    current: &DayData,
    baseline: &DayData,
    extra: &Extra,
    settings: &AnalyseSettings,
) -> Vec<DriftRow> {
    let mut rows: Vec<DriftRow> = Vec::new();
    // Per row: whether its p-value joins the BH adjustment, and the metric's significance test.
    let mut primary_of: Vec<Option<usize>> = Vec::new();
    for metric in metrics(current, baseline, extra) {
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
            day_z: None,
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

    for e in &extra.embedding {
        let first = rows.len();
        let enough = e.n_current >= settings.min_count && e.n_baseline >= settings.min_count;
        for test in ["mmd", "centroid_cosine", "classifier_auc"] {
            let mut r = DriftRow {
                metric: e.metric.to_string(),
                test,
                statistic: None,
                p_value: None,
                p_adjusted: None,
                threshold: None,
                n_current: e.n_current,
                n_baseline: e.n_baseline,
                current_mean: None,
                baseline_mean: None,
                ci_low: None,
                ci_high: None,
                verdict: "insufficient_data",
                pattern: "none",
                day_z: None,
            };
            if let (true, Some((centroid, mmd, auc))) = (enough, e.result) {
                r.verdict = "ok";
                match test {
                    "mmd" => {
                        r.statistic = Some(mmd.mmd2);
                        r.p_value = Some(mmd.p_value);
                        r.threshold = Some(settings.alpha_alert);
                    }
                    "centroid_cosine" => r.statistic = Some(centroid),
                    _ => {
                        r.statistic = Some(auc);
                        r.threshold = Some(settings.embedding.auc.1);
                    }
                }
            }
            rows.push(r);
            primary_of.push(Some(first));
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
            // Embedding drift: the MMD test says whether the sides differ; the classifier's
            // AUC how well they can be told apart (the effect size that may alert).
            "mmd" | "centroid_cosine" if significant => "warn",
            "mmd" | "centroid_cosine" => "ok",
            "classifier_auc" => {
                let auc = r.statistic.unwrap_or(0.5);
                let (warn, alert) = settings.embedding.auc;
                if primary < settings.alpha_alert && auc >= alert {
                    "alert"
                } else if significant && auc >= warn {
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
    cusum_rows(current, baseline, extra, settings, &mut rows);
    rows
}

/// The CUSUM rows of a day, `cusum_down` and `cusum_up` per metric with values: the day's z and
/// the decision level for each direction; [`label_patterns`] runs the CUSUM and gives the
/// verdict. A metric's false-alert share is the model's rate over its metrics that can alert.
fn cusum_rows(
    current: &DayData,
    baseline: &DayData,
    extra: &Extra,
    settings: &AnalyseSettings,
    rows: &mut Vec<DriftRow>,
) {
    let all = metrics(current, baseline, extra);
    let can_alert = all.iter().filter(|m| sequential_alerts(&m.name)).count();
    let p = settings.false_alerts_per_30_days / can_alert.max(1) as f64;
    for metric in all {
        let (cur, base) = match (metric.current, metric.baseline) {
            (Values::Continuous(c) | Values::Rate(c), Values::Continuous(b) | Values::Rate(b)) => {
                (c, b)
            }
            _ => continue,
        };
        let (nc, nb) = (cur.len() as u64, base.len() as u64);
        let enough = nc >= settings.min_count && nb >= settings.min_count;
        let (c, b) = (sequential::moments(cur), sequential::moments(base));
        let k = slack(settings, b.1, cur.len(), base.len());
        let levels = if enough {
            let seed = crate::util::sha256_hex(metric.name.as_bytes())
                .bytes()
                .fold(nc ^ (nb << 24), |h, x| h.rotate_left(5) ^ u64::from(x));
            let scheme = scheme(settings, cur.len(), base.len());
            Some(settings.cusum_h.map_or_else(
                || sequential::levels(base, cur.len(), k, p, scheme, seed),
                |h| sequential::Levels { down: h, up: h },
            ))
        } else {
            None
        };
        for (test, level) in [
            ("cusum_down", levels.map(|l| l.down)),
            ("cusum_up", levels.map(|l| l.up)),
        ] {
            rows.push(DriftRow {
                metric: metric.name.clone(),
                test,
                statistic: None,
                p_value: None,
                p_adjusted: None,
                threshold: level,
                n_current: nc,
                n_baseline: nb,
                current_mean: enough.then_some(c.0),
                baseline_mean: enough.then_some(b.0),
                ci_low: None,
                ci_high: None,
                verdict: if enough { "ok" } else { "insufficient_data" },
                pattern: "none",
                day_z: enough.then(|| (sequential::z_of(c, b), k)),
            });
        }
    }
}

/// How a day of `n` values and its baseline of `n_baseline` are simulated
/// ([`sequential::Scheme::of`]): rolling over the configured windows, or pinned.
pub fn scheme(settings: &AnalyseSettings, n: usize, n_baseline: usize) -> sequential::Scheme {
    sequential::Scheme::of(settings.rolling_windows(), n, n_baseline)
}

/// What the monitor holds a metric of `variance` to on a day of `n` values against `n_baseline`:
/// the slack and scheme of the day, the per-day test's settings, and the CUSUM level `h` (the
/// day's `cusum_down` row's when known, else `cusum-h`, else the normal days' level for a model
/// of `can_alert` score metrics). What the minimum detectable drop is computed for.
pub fn monitor(
    settings: &AnalyseSettings,
    variance: f64,
    (n, n_baseline): (usize, usize),
    h: Option<f64>,
    can_alert: usize,
) -> sequential::Monitor {
    let k = slack(settings, variance, n, n_baseline);
    let scheme = scheme(settings, n, n_baseline);
    let h = h.or(settings.cusum_h).unwrap_or_else(|| {
        sequential::gaussian_level(
            k,
            settings.false_alerts_per_30_days / can_alert.max(1) as f64,
            scheme,
        )
    });
    sequential::Monitor {
        se: sequential::Monitor::standard_error(variance, n, n_baseline),
        k,
        h,
        alpha: settings.alpha_alert,
        min_effect: settings.min_effect,
        scheme,
    }
}

/// Whether a metric's CUSUM alerts (in its bad direction): the scores and the composite.
pub fn sequential_alerts(metric: &str) -> bool {
    metric.starts_with("score.")
}

/// The CUSUM's slack for a day, in standard errors: `cusum-k`, or more where a shift of
/// `sequential-min-effect` is smaller than `cusum-k` standard errors would be (a huge day's
/// standard error is tiny: a drop of no practical size must not accumulate).
pub fn slack(
    settings: &AnalyseSettings,
    baseline_variance: f64,
    n: usize,
    n_baseline: usize,
) -> f64 {
    let se = sequential::Monitor::standard_error(baseline_variance, n, n_baseline);
    let floor = if se > 0.0 && se.is_finite() {
        settings.sequential_min_effect / se
    } else {
        0.0
    };
    // On a grid (0.05 up to 2, 0.25 above), so days, metrics and models share their simulated
    // decision levels and detectable drops.
    let k = settings.cusum_k.max(floor);
    if k <= 2.0 {
        (k * 20.0).round() / 20.0
    } else {
        (k * 4.0).round() / 4.0
    }
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

/// The state of a metric's CUSUMs (drops and rises, in standard errors) and breach history
/// along a model's days.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    #[serde(default)]
    pub down: f64,
    #[serde(default)]
    pub up: f64,
    #[serde(default)]
    pub breached_yesterday: bool,
}

/// What a day was, for the baseline of the days after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayStatus {
    /// A metric that can alert alerted.
    pub alerted: bool,
    /// A metric's CUSUM in its bad direction is at half its decision level or more.
    pub suspect: bool,
}

/// Runs the CUSUMs of one day (in day order) and labels its rows with patterns, updating each
/// metric's track. The `cusum_down` / `cusum_up` rows get the CUSUM as their statistic and
/// alert past their level in the metric's bad direction (the other direction, and features,
/// only warn).
pub fn label_patterns(rows: &mut [DriftRow], tracks: &mut BTreeMap<String, Track>) -> DayStatus {
    let mut status = DayStatus::default();
    // Each metric once (its CUSUM rows come after the day's other rows).
    let mut names: Vec<String> = Vec::new();
    for r in rows.iter() {
        if !names.contains(&r.metric) {
            names.push(r.metric.clone());
        }
    }
    for name in names {
        let track = tracks.entry(name.clone()).or_default();
        let mine: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].metric == name)
            .collect();
        if mine.iter().all(|&i| rows[i].verdict == "insufficient_data") {
            continue; // no evidence either way: the track carries over
        }
        let bad = bad_of(&name);
        // Only quality alerts by CUSUM: rates of rare events (judge errors, refusals) are far
        // from normal days, and have their chi-square test.
        let sequential = sequential_alerts(&name);
        // The CUSUMs: (before, after, level) in the bad direction (drops for features).
        let mut fired_bad = false;
        for &i in &mine {
            let (Some((z, k)), Some(h)) = (rows[i].day_z, rows[i].threshold) else {
                continue;
            };
            let (state, moved, bad_here) = match rows[i].test {
                "cusum_down" => (&mut track.down, -z, bad != Bad::Up),
                "cusum_up" => (&mut track.up, z, bad == Bad::Up),
                _ => continue,
            };
            let before = *state;
            // Capped one slack above the level: a false alarm ends on the first ordinary day
            // after it, a lasting drop keeps it there.
            *state = (before + moved - k).clamp(0.0, h + k);
            let r = &mut rows[i];
            r.statistic = Some(*state);
            if *state > h {
                r.verdict = if bad_here && sequential {
                    "alert"
                } else {
                    "warn"
                };
            }
            if bad_here {
                // Past the level with half of it there the day before: more than one day's
                // evidence, so one very bad day alone is not "sustained".
                fired_bad |= before >= h / 2.0 && *state > h;
                status.suspect |= sequential && *state >= h / 2.0;
            }
        }
        let breach = mine.iter().any(|&i| rows[i].verdict == "alert");
        status.alerted |= breach;
        let pattern = if breach {
            if track.breached_yesterday || fired_bad {
                "sustained"
            } else {
                "intermittent"
            }
        } else if fired_bad {
            "sustained"
        } else {
            "none"
        };
        for &i in &mine {
            rows[i].pattern = pattern;
        }
        track.breached_yesterday = breach;
    }
    status
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
        let mut same = compare(&day(100, 0.1), &base, &Extra::default(), &s);
        label_patterns(&mut same, &mut tracks);
        assert!(
            same.iter()
                .all(|r| r.verdict == "ok" || r.verdict == "insufficient_data"),
            "{same:?}"
        );

        let mut first = compare(&day(100, 0.5), &base, &Extra::default(), &s);
        label_patterns(&mut first, &mut tracks);
        let safety = verdicts(&first, "score.safety");
        assert!(safety.iter().any(|(_, v, _)| *v == "alert"), "{safety:?}");
        assert!(
            safety.iter().all(|(_, _, p)| *p == "intermittent"),
            "{safety:?}"
        );

        let mut second = compare(&day(100, 0.5), &base, &Extra::default(), &s);
        label_patterns(&mut second, &mut tracks);
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
        let better = compare(&day(100, 0.05), &base, &Extra::default(), &s);
        assert!(better.iter().all(|r| r.verdict != "alert"), "{better:?}");
        assert!(
            better
                .iter()
                .any(|r| r.metric == "score.safety" && r.verdict == "warn")
        );

        let tiny = compare(&day(10, 0.9), &base, &Extra::default(), &s);
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
        let rows = compare(&day(10_000, 0.11), &base, &Extra::default(), &s);
        let safety = verdicts(&rows, "score.safety");
        assert!(safety.iter().all(|(_, v, _)| *v != "alert"), "{safety:?}");
    }
}
