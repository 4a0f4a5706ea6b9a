//! The drift statistics, each with its definition. Pure functions on slices; no polars.
//!
//! Checked against scipy on fixed vectors (`tests/data/stats_reference.json`, made by
//! `scripts/stats_reference.py`): agreement to 1e-9 everywhere the method is exact.
//!
//! - **Bins** ([`edges`]): from the baseline only. Its distinct values when there are at most 10
//!   (rubric levels, small counts), else its deciles (numpy's linear quantiles), duplicates
//!   dropped. A value falls in the first bin whose upper edge is >= it; above the last edge, the
//!   last bin.
//! - **PSI** ([`psi`]): sum over bins of (c - b) ln(c / b) on proportions, an empty bin counted
//!   as 1e-4 (no renormalisation).
//! - **Jensen-Shannon distance** ([`js_distance`]): sqrt of the JS divergence in base 2 of the
//!   binned proportions (scipy `jensenshannon(p, q, base=2)`), in [0, 1].
//! - **Kolmogorov-Smirnov** ([`ks_2samp`]): D = sup |F_b - F_c| (scipy `ks_2samp`'s statistic); the
//!   p-value is the Kolmogorov limiting distribution at (sqrt(en) + 0.12 + 0.11/sqrt(en)) D,
//!   en = n_b n_c / (n_b + n_c) (Stephens' small-sample factor). scipy's `ks_2samp` uses exact or
//!   finite-n distributions instead; on the reference vectors the two p-values differ by < 0.02.
//! - **Wasserstein-1** ([`wasserstein1`]): the integral of |F_b - F_c| over the raw values (scipy
//!   `wasserstein_distance`).
//! - **Chi-square** ([`chi2_contingency`]): Pearson's test of a contingency table, with Yates'
//!   correction when it has one degree of freedom (scipy `chi2_contingency` defaults); all-zero
//!   rows and columns are dropped first.
//! - **Mean difference** ([`bootstrap_mean_delta`]): mean(current) - mean(baseline) with a
//!   percentile bootstrap interval: per resample, baseline then current indices drawn as
//!   `((splitmix64 >> 11) * n) >> 53` from a fixed seed; the bounds are linear-interpolated
//!   quantiles of the resampled differences.
//! - **Benjamini-Hochberg** ([`benjamini_hochberg`]): adjusted p-values (scipy
//!   `false_discovery_control(method="bh")`).

/// Proportion used for an empty bin in PSI.
pub const PSI_EPSILON: f64 = 1e-4;

/// Bins at most this many.
pub const MAX_BINS: usize = 10;

/// numpy's default (`linear`) quantile of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let fraction = position - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * fraction
}

/// The `q` quantile of `values` weighted by `weights` (the smallest value whose cumulative
/// weight reaches `q` of the total); equal weights when they sum to nothing. `None` when empty.
pub fn weighted_quantile(values: &[f64], weights: &[f64], q: f64) -> Option<f64> {
    let mut pairs: Vec<(f64, f64)> = values
        .iter()
        .zip(weights.iter().chain(std::iter::repeat(&1.0)))
        .filter(|(v, _)| !v.is_nan())
        .map(|(v, w)| (*v, if w.is_finite() && *w > 0.0 { *w } else { 0.0 }))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut total: f64 = pairs.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        pairs.iter_mut().for_each(|p| p.1 = 1.0);
        total = pairs.len() as f64;
    }
    let target = q * total;
    let mut cumulative = 0.0;
    for (value, weight) in &pairs {
        cumulative += weight;
        if cumulative >= target {
            return Some(*value);
        }
    }
    pairs.last().map(|p| p.0)
}

/// The values without NaN, ascending.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Bin edges from the baseline (see the module docs).
pub fn edges(baseline: &[f64]) -> Vec<f64> {
    edges_sorted(&sorted(baseline))
}

/// [`edges`] of a baseline already sorted (ascending, no NaN).
pub fn edges_sorted(sorted: &[f64]) -> Vec<f64> {
    let mut distinct: Vec<f64> = Vec::with_capacity(MAX_BINS + 1);
    for &v in sorted {
        if distinct.last() != Some(&v) {
            distinct.push(v);
            if distinct.len() > MAX_BINS {
                break;
            }
        }
    }
    if distinct.len() <= MAX_BINS {
        distinct.pop();
        return distinct;
    }
    let mut edges: Vec<f64> = (1..MAX_BINS)
        .map(|i| quantile_sorted(sorted, i as f64 / MAX_BINS as f64))
        .collect();
    edges.dedup();
    edges
}

/// [`proportions`] of values already sorted: a binary search per edge instead of one per value.
pub fn proportions_sorted(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let n = sorted.len();
    if n == 0 {
        return vec![0.0; edges.len() + 1];
    }
    let mut out = Vec::with_capacity(edges.len() + 1);
    let mut below = 0usize;
    for e in edges {
        // Values in bins up to this one: those <= the edge.
        let upto = sorted.partition_point(|v| v <= e);
        out.push((upto - below) as f64 / n as f64);
        below = upto;
    }
    out.push((n - below) as f64 / n as f64);
    out
}

/// The share of `values` in each bin of `edges` (`edges.len() + 1` bins).
pub fn proportions(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0u64; edges.len() + 1];
    let mut total = 0u64;
    for v in values.iter().filter(|v| !v.is_nan()) {
        // The first edge >= v (numpy searchsorted, side="left").
        let bin = edges.partition_point(|e| e < v);
        counts[bin] += 1;
        total += 1;
    }
    counts
        .into_iter()
        .map(|c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// Population stability index of binned proportions.
pub fn psi(baseline: &[f64], current: &[f64]) -> f64 {
    baseline
        .iter()
        .zip(current)
        .map(|(&b, &c)| {
            let b = if b == 0.0 { PSI_EPSILON } else { b };
            let c = if c == 0.0 { PSI_EPSILON } else { c };
            (c - b) * (c / b).ln()
        })
        .sum()
}

/// Jensen-Shannon distance (base 2) of two distributions over the same bins.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if sp == 0.0 || sq == 0.0 {
        return f64::NAN;
    }
    let rel = |a: f64, b: f64| {
        if a == 0.0 { 0.0 } else { a * (a / b).ln() }
    };
    let mut divergence = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        divergence += rel(a, m) + rel(b, m);
    }
    (divergence / 2.0 / std::f64::consts::LN_2).max(0.0).sqrt()
}

/// The Kolmogorov distribution's survival function Q(y) = 2 sum (-1)^(k-1) exp(-2 k^2 y^2)
/// (scipy `special.kolmogorov`).
pub fn kolmogorov_sf(y: f64) -> f64 {
    if y <= 0.0 {
        return 1.0;
    }
    if y < 1.0 {
        // The Jacobi theta form converges fast for small y: 1 - sqrt(2 pi)/y sum exp(-(2k-1)^2 pi^2 / (8 y^2)).
        let pi2 = std::f64::consts::PI * std::f64::consts::PI;
        let mut cdf = 0.0;
        for k in 1..=20 {
            let j = (2 * k - 1) as f64;
            let term = (-j * j * pi2 / (8.0 * y * y)).exp();
            cdf += term;
            if term < 1e-300 {
                break;
            }
        }
        return (1.0 - (2.0 * std::f64::consts::PI).sqrt() / y * cdf).clamp(0.0, 1.0);
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * y * y).exp();
        sum += if (k as u64) % 2 == 1 { term } else { -term };
        if term < 1e-300 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Two-sample Kolmogorov-Smirnov: (D, p).
pub fn ks_2samp(baseline: &[f64], current: &[f64]) -> (f64, f64) {
    ks_2samp_sorted(&sorted(baseline), &sorted(current))
}

/// [`ks_2samp`] of samples already sorted (ascending, no NaN).
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    let en = n1 * n2 / (n1 + n2);
    let z = (en.sqrt() + 0.12 + 0.11 / en.sqrt()) * d;
    (d, kolmogorov_sf(z))
}

/// Wasserstein-1 distance between two samples.
pub fn wasserstein1(baseline: &[f64], current: &[f64]) -> f64 {
    wasserstein1_sorted(&sorted(baseline), &sorted(current))
}

/// Two sorted slices merged into one sorted vector.
pub fn merge_sorted(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    // Branch-free: which side a value comes from is a coin toss on real data.
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let take_a = x <= y;
        out.push(if take_a { x } else { y });
        i += usize::from(take_a);
        j += usize::from(!take_a);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Many sorted slices merged into one sorted vector, pairwise (each value copied log2(k) times).
pub fn merge_many(parts: &[&[f64]]) -> Vec<f64> {
    let mut level: Vec<Vec<f64>> = parts
        .chunks(2)
        .map(|pair| match pair {
            [a, b] => merge_sorted(a, b),
            [a] => a.to_vec(),
            _ => Vec::new(),
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => merge_sorted(a, b),
                [a] => a.clone(),
                _ => Vec::new(),
            })
            .collect();
    }
    level.pop().unwrap_or_default()
}

/// [`wasserstein1`] of samples already sorted (ascending, no NaN): one walk over the distinct
/// values of both, summing |F_b - F_c| times the gap to the next value.
pub fn wasserstein1_sorted(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut x = a[0].min(b[0]);
    let mut total = 0.0;
    loop {
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&p), Some(&q)) => p.min(q),
            (Some(&p), None) => p,
            (None, Some(&q)) => q,
            (None, None) => break,
        };
        total += (i as f64 / n1 - j as f64 / n2).abs() * (next - x);
        x = next;
    }
    total
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised upper incomplete gamma function Q(a, x).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series for P, then Q = 1 - P.
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        (1.0 - sum * front).clamp(0.0, 1.0)
    } else {
        // Continued fraction (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-17 {
                break;
            }
        }
        (front * h).clamp(0.0, 1.0)
    }
}

/// The chi-square distribution's survival function.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    gamma_q(dof / 2.0, x / 2.0)
}

/// Pearson's chi-square test of a contingency table (rows x columns of counts): (statistic, p,
/// degrees of freedom). `None` when fewer than two non-empty rows or columns remain.
pub fn chi2_contingency(table: &[Vec<f64>]) -> Option<(f64, f64, usize)> {
    let keep_rows: Vec<&Vec<f64>> = table
        .iter()
        .filter(|r| r.iter().sum::<f64>() > 0.0)
        .collect();
    let width = keep_rows.first().map_or(0, |r| r.len());
    let keep_cols: Vec<usize> = (0..width)
        .filter(|&j| keep_rows.iter().map(|r| r[j]).sum::<f64>() > 0.0)
        .collect();
    if keep_rows.len() < 2 || keep_cols.len() < 2 {
        return None;
    }
    let observed: Vec<Vec<f64>> = keep_rows
        .iter()
        .map(|r| keep_cols.iter().map(|&j| r[j]).collect())
        .collect();
    let total: f64 = observed.iter().flatten().sum();
    let row_sums: Vec<f64> = observed.iter().map(|r| r.iter().sum()).collect();
    let col_sums: Vec<f64> = (0..keep_cols.len())
        .map(|j| observed.iter().map(|r| r[j]).sum())
        .collect();
    let dof = (observed.len() - 1) * (keep_cols.len() - 1);
    let mut statistic = 0.0;
    for (i, row) in observed.iter().enumerate() {
        for (j, &o) in row.iter().enumerate() {
            let e = row_sums[i] * col_sums[j] / total;
            let o = if dof == 1 {
                // Yates: move the observation toward the expectation by 0.5, not past it.
                let diff = e - o;
                o + diff.signum() * diff.abs().min(0.5)
            } else {
                o
            };
            statistic += (o - e) * (o - e) / e;
        }
    }
    Some((statistic, chi2_sf(statistic, dof as f64), dof))
}

/// The splitmix64 generator (state advanced by the golden gamma, then mixed).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in 0..n: `((x >> 11) * n) >> 53`.
    pub fn index(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample variance (n - 1 in the denominator); 0 for fewer than two values.
pub fn variance(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64
}

/// The standard normal survival function, 1 - Φ(z) (via erfc, relative error < 1.2e-7).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// [`bootstrap_mean_delta`] plus a two-sided p-value: twice the smaller share of resampled
/// differences at or beyond 0 on either side (the inverted percentile interval), at least one
/// resample's worth.
pub fn bootstrap_mean_delta_p(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> (f64, f64, f64, f64) {
    let (delta, deltas) = bootstrap_deltas(baseline, current, resamples, seed);
    if deltas.is_empty() {
        return (delta, f64::NAN, f64::NAN, f64::NAN);
    }
    let alpha = (1.0 - level) / 2.0;
    let n = deltas.len() as f64;
    let below = deltas.iter().filter(|d| **d <= 0.0).count() as f64;
    let above = deltas.iter().filter(|d| **d >= 0.0).count() as f64;
    let p = (2.0 * below.min(above) / n).clamp(1.0 / n, 1.0);
    (
        delta,
        quantile_sorted(&deltas, alpha),
        quantile_sorted(&deltas, 1.0 - alpha),
        p,
    )
}

/// The observed difference and the sorted resampled differences.
fn bootstrap_deltas(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    seed: u64,
) -> (f64, Vec<f64>) {
    let delta = mean(current) - mean(baseline);
    if baseline.is_empty() || current.is_empty() || resamples == 0 {
        return (delta, Vec::new());
    }
    let mut rng = SplitMix64::new(seed);
    let mut deltas = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut sb = 0.0;
        for _ in 0..baseline.len() {
            sb += baseline[rng.index(baseline.len())];
        }
        let mut sc = 0.0;
        for _ in 0..current.len() {
            sc += current[rng.index(current.len())];
        }
        deltas.push(sc / current.len() as f64 - sb / baseline.len() as f64);
    }
    deltas.sort_by(f64::total_cmp);
    (delta, deltas)
}

/// mean(current) - mean(baseline) and its percentile bootstrap interval at `level`.
pub fn bootstrap_mean_delta(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> (f64, f64, f64) {
    let (delta, lo, hi, _) = bootstrap_mean_delta_p(baseline, current, resamples, seed, level);
    (delta, lo, hi)
}

// ---------------------------------------------------------------------------------------------
// Paired statistics (`compare`): checked against `tests/data/paired_reference.json`
// (`scripts/paired_reference.py`).

/// Average ranks (1-based) of `values`, ties sharing the mean of their positions, and the sizes
/// of the tie groups.
fn ranks_with_ties(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        ties.push(j - i + 1);
        i = j + 1;
    }
    (ranks, ties)
}

/// The sum of the ranks of the positive differences (zeros dropped, ranks of |d| averaged over
/// ties).
fn signed_rank_sums(diffs: &[f64]) -> (f64, f64, Vec<usize>) {
    let nonzero: Vec<f64> = diffs.iter().copied().filter(|d| *d != 0.0).collect();
    let (ranks, ties) = ranks_with_ties(&nonzero.iter().map(|d| d.abs()).collect::<Vec<_>>());
    let plus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    let minus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(d, _)| **d < 0.0)
        .map(|(_, r)| r)
        .sum();
    (plus, minus, ties)
}

/// Wilcoxon signed-rank test of paired differences, two-sided, as `scipy.stats.wilcoxon` does
/// by default: zeros are dropped; with at most 50 differences and neither ties nor zeros, the
/// exact null distribution; with at most 13 and ties or zeros, every sign flip (an exact
/// permutation test); otherwise the normal approximation with the tie correction and no
/// continuity correction. Returns (min(W+, W-), p). NaN p without a non-zero difference.
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> (f64, f64) {
    let diffs: Vec<f64> = diffs.iter().copied().filter(|d| !d.is_nan()).collect();
    let (plus, minus, ties) = signed_rank_sums(&diffs);
    let statistic = plus.min(minus);
    let n = ties.iter().sum::<usize>();
    if n == 0 {
        return (statistic, f64::NAN);
    }
    let has_ties = ties.iter().any(|t| *t > 1);
    let has_zeros = n < diffs.len();
    if diffs.len() <= 50 && !has_ties && !has_zeros {
        // Exact: the number of subsets of 1..=n per rank sum.
        let max = n * (n + 1) / 2;
        let mut counts = vec![0.0f64; max + 1];
        counts[0] = 1.0;
        for r in 1..=n {
            for s in (r..=max).rev() {
                counts[s] += counts[s - r];
            }
        }
        let total: f64 = counts.iter().sum();
        let cdf = |x: f64| counts[..=(x.ceil() as usize).min(max)].iter().sum::<f64>() / total;
        let sf = |x: f64| counts[(x.floor() as usize).min(max)..].iter().sum::<f64>() / total;
        let p = (2.0 * sf(plus).min(cdf(plus))).clamp(0.0, 1.0);
        return (statistic, p);
    }
    if diffs.len() <= 13 {
        // Every assignment of signs to the differences, the statistic W+ of each.
        let m = diffs.len();
        let mut below = 0usize;
        let mut above = 0usize;
        let total = 1usize << m;
        let eps = 1e-12 * plus.abs().max(1.0);
        let mut flipped = diffs.clone();
        for mask in 0..total {
            for (i, d) in diffs.iter().enumerate() {
                flipped[i] = if mask >> i & 1 == 1 { -d } else { *d };
            }
            let (w, _, _) = signed_rank_sums(&flipped);
            if w <= plus + eps {
                below += 1;
            }
            if w >= plus - eps {
                above += 1;
            }
        }
        let p = (2.0 * below.min(above) as f64 / total as f64).min(1.0);
        return (statistic, p);
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let tie_correction: f64 = ties.iter().map(|&t| (t * t * t - t) as f64).sum();
    let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_correction / 2.0) / 24.0).sqrt();
    let z = (plus - mean) / se;
    (statistic, (2.0 * normal_sf(z.abs())).min(1.0))
}

/// The Wilson score interval of `k` successes in `n` trials at 95% (`k` may be fractional: a
/// win rate counting ties as half a win).
pub fn wilson_interval(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let z = 1.959_963_984_540_054;
    let p = k / n;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The mean of paired differences and its percentile bootstrap interval at `level`: per
/// resample, `diffs.len()` indices drawn with [`SplitMix64::index`] from `seed`; quantiles
/// linearly interpolated (numpy's default).
pub fn paired_bootstrap(diffs: &[f64], resamples: usize, seed: u64, level: f64) -> (f64, f64, f64) {
    let observed = mean(diffs);
    if diffs.is_empty() || resamples == 0 {
        return (observed, f64::NAN, f64::NAN);
    }
    let mut rng = SplitMix64::new(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let total: f64 = (0..diffs.len())
                .map(|_| diffs[rng.index(diffs.len())])
                .sum();
            total / diffs.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (
        observed,
        quantile_sorted(&means, alpha),
        quantile_sorted(&means, 1.0 - alpha),
    )
}

/// Benjamini-Hochberg adjusted p-values, in the input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        let value = (p_values[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(value);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn reference() -> Value {
        let text = include_str!("../../tests/data/stats_reference.json");
        serde_json::from_str(text).unwrap()
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn close(name: &str, ours: f64, theirs: f64, tolerance: f64) {
        assert!(
            (ours - theirs).abs() <= tolerance,
            "{name}: ours {ours:.15}, scipy {theirs:.15}"
        );
    }

    #[test]
    fn paired_statistics_agree_with_their_references() {
        let text = include_str!("../../tests/data/paired_reference.json");
        let r: Value = serde_json::from_str(text).unwrap();
        for case in r["wilcoxon"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (statistic, p) = wilcoxon_signed_rank(&floats(&case["diffs"]));
            close(name, statistic, case["statistic"].as_f64().unwrap(), 1e-9);
            // The normal tail goes through erfc (fractional error < 1.2e-7).
            close(name, p, case["p_value"].as_f64().unwrap(), 1e-7);
        }
        for case in r["bootstrap"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (m, lo, hi) = paired_bootstrap(
                &floats(&case["diffs"]),
                case["resamples"].as_u64().unwrap() as usize,
                case["seed"].as_u64().unwrap(),
                0.95,
            );
            close(name, m, case["mean"].as_f64().unwrap(), 1e-12);
            close(name, lo, case["ci_low"].as_f64().unwrap(), 1e-12);
            close(name, hi, case["ci_high"].as_f64().unwrap(), 1e-12);
        }
        for case in r["wilson"].as_array().unwrap() {
            let (k, n) = (case["k"].as_f64().unwrap(), case["n"].as_f64().unwrap());
            let (lo, hi) = wilson_interval(k, n);
            close("wilson low", lo, case["low"].as_f64().unwrap(), 1e-12);
            close("wilson high", hi, case["high"].as_f64().unwrap(), 1e-12);
        }
    }

    #[test]
    fn agrees_with_scipy_on_the_reference_vectors() {
        let r = reference();
        for case in r["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let base = floats(&case["baseline"]);
            let cur = floats(&case["current"]);
            let e = edges(&base);
            let want = floats(&case["edges"]);
            assert_eq!(e.len(), want.len(), "{name}: edges");
            for (a, b) in e.iter().zip(&want) {
                close(name, *a, *b, 1e-9);
            }
            let (pb, pc) = (proportions(&base, &e), proportions(&cur, &e));
            for (a, b) in pb.iter().zip(floats(&case["p_baseline"])) {
                close(name, *a, b, 1e-12);
            }
            for (a, b) in pc.iter().zip(floats(&case["p_current"])) {
                close(name, *a, b, 1e-12);
            }
            close(
                &format!("{name} psi"),
                psi(&pb, &pc),
                case["psi"].as_f64().unwrap(),
                1e-9,
            );
            close(
                &format!("{name} js"),
                js_distance(&pb, &pc),
                case["js"].as_f64().unwrap(),
                1e-9,
            );
            let (d, p) = ks_2samp(&base, &cur);
            close(
                &format!("{name} ks d"),
                d,
                case["ks_d"].as_f64().unwrap(),
                1e-12,
            );
            close(
                &format!("{name} ks p"),
                p,
                case["ks_p"].as_f64().unwrap(),
                1e-9,
            );
            close(
                &format!("{name} ks p vs ks_2samp"),
                p,
                case["ks_p_scipy_ks_2samp"].as_f64().unwrap(),
                0.02,
            );
            close(
                &format!("{name} wasserstein"),
                wasserstein1(&base, &cur),
                case["wasserstein"].as_f64().unwrap(),
                1e-9,
            );
            let (delta, lo, hi) = bootstrap_mean_delta(
                &base,
                &cur,
                case["bootstrap_resamples"].as_u64().unwrap() as usize,
                case["bootstrap_seed"].as_u64().unwrap(),
                0.95,
            );
            close(
                &format!("{name} delta"),
                delta,
                case["mean_delta"].as_f64().unwrap(),
                1e-9,
            );
            close(
                &format!("{name} ci low"),
                lo,
                case["ci_low"].as_f64().unwrap(),
                1e-9,
            );
            close(
                &format!("{name} ci high"),
                hi,
                case["ci_high"].as_f64().unwrap(),
                1e-9,
            );
        }
        for t in r["chi2"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let table: Vec<Vec<f64>> = t["table"].as_array().unwrap().iter().map(floats).collect();
            let (stat, p, dof) = chi2_contingency(&table).unwrap();
            close(name, stat, t["statistic"].as_f64().unwrap(), 1e-9);
            close(name, p, t["p_value"].as_f64().unwrap(), 1e-9);
            assert_eq!(dof as u64, t["dof"].as_u64().unwrap());
        }
        let adjusted = benjamini_hochberg(&floats(&r["bh"]["p"]));
        for (a, b) in adjusted.iter().zip(floats(&r["bh"]["adjusted"])) {
            close("bh", *a, b, 1e-12);
        }
        for k in r["kolmogorov"].as_array().unwrap() {
            let y = k["y"].as_f64().unwrap();
            close(
                &format!("kolmogorov({y})"),
                kolmogorov_sf(y),
                k["q"].as_f64().unwrap(),
                1e-12,
            );
        }
        for g in r["chi2_sf"].as_array().unwrap() {
            let (x, k) = (g["x"].as_f64().unwrap(), g["k"].as_f64().unwrap());
            let want = g["sf"].as_f64().unwrap();
            let ours = chi2_sf(x, k);
            assert!(
                (ours - want).abs() <= 1e-12 + 1e-9 * want,
                "chi2.sf({x}, {k}): ours {ours:e}, scipy {want:e}"
            );
        }
    }

    #[test]
    fn sorted_variants_agree_with_the_plain_ones() {
        let a: Vec<f64> = (0..500)
            .map(|i| ((i * 7919) % 1000) as f64 / 10.0)
            .collect();
        let b: Vec<f64> = (0..300)
            .map(|i| ((i * 104729) % 1200) as f64 / 10.0)
            .collect();
        let (sa, sb) = (sorted(&a), sorted(&b));
        assert_eq!(edges(&a), edges_sorted(&sa));
        let e = edges(&a);
        assert_eq!(proportions(&b, &e), proportions_sorted(&sb, &e));
        assert_eq!(ks_2samp(&a, &b), ks_2samp_sorted(&sa, &sb));
        assert_eq!(wasserstein1(&a, &b), wasserstein1_sorted(&sa, &sb));
        assert_eq!(
            merge_sorted(&sa, &sb),
            sorted(&[a.clone(), b.clone()].concat())
        );
        let sc = sorted(&[1.5, -2.0, 99.0]);
        assert_eq!(
            merge_many(&[&sa, &sb, &sc]),
            sorted(&[a, b, sc.clone()].concat())
        );
    }

    #[test]
    fn identical_samples_show_no_drift() {
        let a: Vec<f64> = (0..200).map(|i| (i % 17) as f64).collect();
        let e = edges(&a);
        let p = proportions(&a, &e);
        assert!(psi(&p, &p).abs() < 1e-15);
        assert!(js_distance(&p, &p) < 1e-7);
        assert_eq!(ks_2samp(&a, &a).0, 0.0);
        assert!(ks_2samp(&a, &a).1 > 0.999);
        assert_eq!(wasserstein1(&a, &a), 0.0);
    }

    #[test]
    fn weighted_quantiles_follow_the_weights() {
        // Three intervals: 100 ms for 1 request, 200 ms for 8, 900 ms for 1.
        let (v, w) = ([900.0, 100.0, 200.0], [1.0, 1.0, 8.0]);
        assert_eq!(weighted_quantile(&v, &w, 0.5), Some(200.0));
        assert_eq!(weighted_quantile(&v, &w, 0.05), Some(100.0));
        assert_eq!(weighted_quantile(&v, &w, 0.99), Some(900.0));
        // No weight at all: equal weights.
        assert_eq!(weighted_quantile(&v, &[0.0; 3], 0.5), Some(200.0));
        assert_eq!(weighted_quantile(&[], &[], 0.5), None);
    }
}
