//! How well two sets of ratings agree: a judge's levels against people's labels, a judge against
//! itself on a second pass, the members of a jury. Pure functions over slices; each one is the
//! definition a trusted library uses, and is checked against that library on committed vectors
//! (`scripts/agreement_reference.py` -> `tests/data/agreement_reference.json`: scikit-learn's
//! `cohen_kappa_score` and `roc_auc_score`, `krippendorff.alpha`, `scipy.stats.spearmanr`).
//!
//! - [`cohen_kappa`]: Cohen's kappa, unweighted, linear or quadratic, over the given categories
//!   (scikit-learn's definition: the weights are distances between category *positions*).
//! - [`krippendorff_alpha_ordinal`]: Krippendorff's alpha with the ordinal metric, any number of
//!   raters, missing ratings allowed (the `krippendorff` package's definition).
//! - [`spearman`]: Spearman's rho, Pearson's r of average ranks (scipy's).
//! - [`roc_auc`]: the area under the ROC curve of scores against binary labels, ties counted half
//!   (the Mann-Whitney form; equal to scikit-learn's trapezoid area).
//! - [`accuracy`], [`majority_share`], [`confusion`], and [`bootstrap_interval`] for any of them.

use std::collections::BTreeMap;

use crate::analyse::stats::SplitMix64;

/// The weights of a weighted kappa: how far apart two categories are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Unweighted,
    Linear,
    Quadratic,
}

/// The categories of `a` and `b` together, ascending (scikit-learn's default `labels`).
pub fn categories(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut all: Vec<i64> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The confusion matrix of `a` (rows) against `b` (columns) over `labels`; pairs with a value
/// outside `labels` are left out, as scikit-learn does.
pub fn confusion(a: &[i64], b: &[i64], labels: &[i64]) -> Vec<Vec<u64>> {
    let index: BTreeMap<i64, usize> = labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let mut matrix = vec![vec![0u64; labels.len()]; labels.len()];
    for (x, y) in a.iter().zip(b) {
        if let (Some(&i), Some(&j)) = (index.get(x), index.get(y)) {
            matrix[i][j] += 1;
        }
    }
    matrix
}

/// Cohen's kappa of `a` and `b` over `labels` (default: the categories of both). `None` when it
/// is undefined (no pairs, or no disagreement expected by chance: one category only).
pub fn cohen_kappa(a: &[i64], b: &[i64], labels: Option<&[i64]>, weights: Weights) -> Option<f64> {
    let owned;
    let labels = match labels {
        Some(l) => l,
        None => {
            owned = categories(a, b);
            &owned
        }
    };
    let matrix = confusion(a, b, labels);
    let k = labels.len();
    let n: u64 = matrix.iter().flatten().sum();
    if n == 0 {
        return None;
    }
    let rows: Vec<f64> = matrix
        .iter()
        .map(|r| r.iter().sum::<u64>() as f64)
        .collect();
    let cols: Vec<f64> = (0..k)
        .map(|j| matrix.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let weight = |i: usize, j: usize| -> f64 {
        let d = i.abs_diff(j) as f64;
        match weights {
            Weights::Unweighted => f64::from(u8::from(i != j)),
            Weights::Linear => d,
            Weights::Quadratic => d * d,
        }
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            let w = weight(i, j);
            observed += w * matrix[i][j] as f64;
            expected += w * rows[i] * cols[j] / n as f64;
        }
    }
    (expected > 0.0).then(|| 1.0 - observed / expected)
}

/// Krippendorff's alpha, ordinal metric. `units[u][r]` is rater `r`'s value for unit `u` (`None`:
/// not rated). Units with fewer than two values are not pairable and are left out. `None` when
/// no disagreement is expected (fewer than two distinct values among the pairable ones).
pub fn krippendorff_alpha_ordinal(units: &[Vec<Option<i64>>]) -> Option<f64> {
    // The value domain: every value seen, ascending.
    let mut domain: Vec<i64> = units.iter().flatten().flatten().copied().collect();
    domain.sort_unstable();
    domain.dedup();
    let v = domain.len();
    let index: BTreeMap<i64, usize> = domain.iter().enumerate().map(|(i, x)| (*x, i)).collect();
    // The coincidence matrix of the pairable units.
    let mut o = vec![vec![0.0f64; v]; v];
    for unit in units {
        let mut counts = vec![0.0f64; v];
        for value in unit.iter().flatten() {
            counts[index[value]] += 1.0;
        }
        let m: f64 = counts.iter().sum();
        if m < 2.0 {
            continue;
        }
        for c in 0..v {
            for k in 0..v {
                let pairs = if c == k {
                    counts[c] * (counts[c] - 1.0)
                } else {
                    counts[c] * counts[k]
                };
                o[c][k] += pairs / (m - 1.0);
            }
        }
    }
    let n_v: Vec<f64> = (0..v).map(|c| o[c].iter().sum()).collect();
    let n: f64 = n_v.iter().sum();
    if n <= 1.0 {
        return None;
    }
    // Ordinal distance: the marginal mass between two values, ends counted half, squared.
    let distance = |c: usize, k: usize| -> f64 {
        let (lo, hi) = if c <= k { (c, k) } else { (k, c) };
        let between: f64 = n_v[lo..=hi].iter().sum();
        (between - (n_v[lo] + n_v[hi]) / 2.0).powi(2)
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for c in 0..v {
        for k in 0..v {
            let d = distance(c, k);
            observed += o[c][k] * d;
            let e = if c == k {
                n_v[c] * (n_v[c] - 1.0)
            } else {
                n_v[c] * n_v[k]
            } / (n - 1.0);
            expected += e * d;
        }
    }
    (expected > 0.0).then(|| 1.0 - observed / expected)
}

/// Average ranks (1-based), ties sharing the mean of their positions.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut out = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// Pearson's r; `None` when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's rho: Pearson's r of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// Area under the ROC curve of `scores` for the `positive` labels: the chance that a random
/// positive scores above a random negative, ties counted half. `None` without both classes.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let r = ranks(scores);
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = r
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Share of pairs that agree exactly.
pub fn accuracy(a: &[i64], b: &[i64]) -> Option<f64> {
    let n = a.len().min(b.len());
    (n > 0).then(|| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64)
}

/// The accuracy of always answering the most frequent reference category.
pub fn majority_share(reference: &[i64]) -> Option<f64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for x in reference {
        *counts.entry(*x).or_default() += 1;
    }
    let most = counts.values().max()?;
    Some(*most as f64 / reference.len() as f64)
}

/// A percentile bootstrap interval of `statistic` over `n` items resampled with replacement:
/// `resamples` draws of `n` indices from [`SplitMix64`] seeded with `seed` (draw `i` of item
/// position `j` is the generator's next index), the `(1 - level) / 2` and `(1 + level) / 2`
/// quantiles (linear interpolation) of the statistics that are defined. `None` when fewer than
/// half the resamples give a value.
pub fn bootstrap_interval(
    n: usize,
    resamples: usize,
    seed: u64,
    level: f64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<(f64, f64)> {
    if n == 0 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut values = Vec::with_capacity(resamples);
    let mut picks = vec![0usize; n];
    for _ in 0..resamples {
        for p in picks.iter_mut() {
            *p = rng.index(n);
        }
        if let Some(v) = statistic(&picks).filter(|v| v.is_finite()) {
            values.push(v);
        }
    }
    if values.len() * 2 < resamples {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| crate::analyse::stats::quantile_sorted(&values, p);
    Some((q((1.0 - level) / 2.0), q((1.0 + level) / 2.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/agreement_reference.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn ints(v: &serde_json::Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(ours: Option<f64>, theirs: &serde_json::Value, what: &str) {
        match theirs.as_f64() {
            Some(t) => {
                let o = ours.unwrap_or_else(|| panic!("{what}: ours is undefined, theirs {t}"));
                assert!((o - t).abs() < 1e-9, "{what}: ours {o}, theirs {t}");
            }
            None => assert!(ours.is_none(), "{what}: ours {ours:?}, theirs undefined"),
        }
    }

    #[test]
    fn kappas_match_scikit_learn() {
        let cases = reference();
        let cases = cases["kappa"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let (a, b) = (ints(&case["a"]), ints(&case["b"]));
            let labels = case.get("labels").map(ints);
            let name = case["name"].as_str().unwrap();
            for (key, weights) in [
                ("unweighted", Weights::Unweighted),
                ("linear", Weights::Linear),
                ("quadratic", Weights::Quadratic),
            ] {
                close(
                    cohen_kappa(&a, &b, labels.as_deref(), weights),
                    &case[key],
                    &format!("{name} {key}"),
                );
            }
        }
    }

    #[test]
    fn krippendorff_alpha_matches_the_krippendorff_package() {
        let cases = reference();
        let cases = cases["alpha"].as_array().unwrap();
        assert!(cases.len() >= 4);
        for case in cases {
            // The package's layout: raters x units, NaN for missing.
            let raters: Vec<Vec<Option<i64>>> = case["raters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64()).collect())
                .collect();
            let units: Vec<Vec<Option<i64>>> = (0..raters[0].len())
                .map(|u| raters.iter().map(|r| r[u]).collect())
                .collect();
            close(
                krippendorff_alpha_ordinal(&units),
                &case["ordinal"],
                case["name"].as_str().unwrap(),
            );
        }
    }

    #[test]
    fn spearman_and_roc_auc_match_scipy_and_scikit_learn() {
        let cases = reference();
        for case in cases["spearman"].as_array().unwrap() {
            close(
                spearman(&floats(&case["x"]), &floats(&case["y"])),
                &case["rho"],
                case["name"].as_str().unwrap(),
            );
        }
        for case in cases["roc_auc"].as_array().unwrap() {
            let labels: Vec<bool> = ints(&case["labels"]).iter().map(|l| *l == 1).collect();
            close(
                roc_auc(&labels, &floats(&case["scores"])),
                &case["auc"],
                case["name"].as_str().unwrap(),
            );
        }
    }

    #[test]
    fn accuracy_majority_and_confusion() {
        let (a, b) = ([1, 2, 3, 3, 1], [1, 2, 2, 3, 3]);
        assert_eq!(accuracy(&a, &b), Some(0.6));
        assert_eq!(majority_share(&a), Some(0.4));
        let labels = categories(&a, &b);
        assert_eq!(labels, [1, 2, 3]);
        assert_eq!(
            confusion(&a, &b, &labels),
            [vec![1, 0, 1], vec![0, 1, 0], vec![0, 1, 1]]
        );
        // Perfect agreement: kappa 1 whatever the weights; one category only: undefined.
        assert_eq!(cohen_kappa(&a, &a, None, Weights::Quadratic), Some(1.0));
        assert_eq!(
            cohen_kappa(&[2, 2], &[2, 2], None, Weights::Unweighted),
            None
        );
    }

    #[test]
    fn the_bootstrap_interval_brackets_the_statistic_and_is_repeatable() {
        let a: Vec<i64> = (0..200).map(|i| (i % 5) as i64).collect();
        let b: Vec<i64> = (0..200)
            .map(|i| if i % 7 == 0 { 0 } else { (i % 5) as i64 })
            .collect();
        let kappa = |idx: &[usize]| {
            let x: Vec<i64> = idx.iter().map(|&i| a[i]).collect();
            let y: Vec<i64> = idx.iter().map(|&i| b[i]).collect();
            cohen_kappa(&x, &y, None, Weights::Quadratic)
        };
        let full = cohen_kappa(&a, &b, None, Weights::Quadratic).unwrap();
        let (lo, hi) = bootstrap_interval(a.len(), 1000, 7, 0.95, kappa).unwrap();
        assert!(lo < full && full < hi, "{lo} {full} {hi}");
        assert!(hi - lo < 0.3, "{lo} {hi}");
        assert_eq!(
            bootstrap_interval(a.len(), 1000, 7, 0.95, kappa),
            Some((lo, hi))
        );
    }
}
