//! Statistics on embeddings (the `embeddings` table's unit-length vectors): how far a window's
//! prompts or replies moved from the baseline's, and which topics the baseline's prompts form.
//!
//! - [`centroid_cosine`]: 1 - cosine of the two sides' mean vectors (Arize's centroid distance).
//! - [`mmd_test`]: the unbiased squared maximum mean discrepancy with an RBF kernel whose width
//!   is the median pairwise distance of the pooled sample (Gretton et al. 2012), and its
//!   permutation p-value. With `P` permutations the smallest p a count gives is 1/(P+1), too
//!   coarse for Benjamini-Hochberg over a day's tests; when fewer than 5 permutations reach the
//!   observed value, p is the normal tail of the permutation distribution instead.
//! - [`classifier_auc`]: Evidently's domain classifier: an L2-regularised logistic regression
//!   (C = 1, intercept not penalised, as scikit-learn's default) separating baseline from window,
//!   fitted by Newton-CG; the ROC-AUC of its out-of-fold decision values over 5 folds (item `i`
//!   of each side in fold `i mod 5`).
//! - [`kmeans`] (k-means++ seeding, Lloyd's iterations, the best of several seeds) and
//!   [`silhouette`] (Euclidean), which picks k; [`Topics`] assigns a vector to its nearest
//!   centroid, or calls it novel when it is farther from every centroid than the baseline's
//!   99th percentile.
//!
//! `scripts/embedding_stats_reference.py` checks these against scikit-learn on committed vectors
//! (`tests/data/embedding_stats_reference.json`).

use super::stats::{self, SplitMix64};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sq_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The mean vector.
pub fn centroid(vectors: &[&[f32]]) -> Vec<f64> {
    let dims = vectors.first().map_or(0, |v| v.len());
    let mut sum = vec![0.0f64; dims];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v.iter()) {
            *s += f64::from(*x);
        }
    }
    let n = vectors.len().max(1) as f64;
    sum.iter_mut().for_each(|s| *s /= n);
    sum
}

/// 1 - cosine similarity of the two sides' centroids (0: same direction).
pub fn centroid_cosine(baseline: &[&[f32]], current: &[&[f32]]) -> f64 {
    let (a, b) = (centroid(baseline), centroid(current));
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let denominator = norm(&a) * norm(&b);
    if denominator == 0.0 {
        return 0.0;
    }
    1.0 - a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / denominator
}

/// Squared distances of every pair of `points`, row-major (n x n).
fn sq_distances(points: &[&[f32]]) -> Vec<f32> {
    let n = points.len();
    let norms: Vec<f32> = points.iter().map(|p| dot(p, p)).collect();
    let mut out = vec![0.0f32; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let d = (norms[i] + norms[j] - 2.0 * dot(points[i], points[j])).max(0.0);
            out[i * n + j] = d;
            out[j * n + i] = d;
        }
    }
    out
}

/// The median of the squared distances over the pairs i < j.
fn median_sq_distance(d: &[f32], n: usize) -> f64 {
    let mut upper: Vec<f32> = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        upper.extend_from_slice(&d[i * n + i + 1..(i + 1) * n]);
    }
    if upper.is_empty() {
        return 0.0;
    }
    upper.sort_unstable_by(f32::total_cmp);
    let m = upper.len();
    if m % 2 == 1 {
        f64::from(upper[m / 2])
    } else {
        (f64::from(upper[m / 2 - 1]) + f64::from(upper[m / 2])) / 2.0
    }
}

/// The MMD test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mmd {
    /// Unbiased squared MMD.
    pub mmd2: f64,
    pub p_value: f64,
    /// The RBF kernel's `gamma` in exp(-gamma * |x - y|^2): 1 / (2 * median squared distance).
    pub gamma: f64,
}

/// The unbiased squared MMD of the first `m` of the pooled kernel matrix's items against the
/// rest, with `side[i]` saying which side item `i` is on (true: the first).
fn mmd2_of(kernel: &[f32], n: usize, side: &[bool]) -> f64 {
    let (mut xx, mut yy, mut xy) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let row = &kernel[i * n..(i + 1) * n];
        let (mut rxx, mut ryy, mut rxy) = (0.0f32, 0.0f32, 0.0f32);
        for j in (i + 1)..n {
            let k = row[j];
            match (side[i], side[j]) {
                (true, true) => rxx += k,
                (false, false) => ryy += k,
                _ => rxy += k,
            }
        }
        xx += f64::from(rxx);
        yy += f64::from(ryy);
        xy += f64::from(rxy);
    }
    let m = side.iter().filter(|s| **s).count() as f64;
    let k = n as f64 - m;
    // Off-diagonal pairs counted once: each within-side sum over i != j is twice that.
    2.0 * xx / (m * (m - 1.0)) + 2.0 * yy / (k * (k - 1.0)) - 2.0 * xy / (m * k)
}

/// The MMD two-sample test of `x` against `y` (each at least 2 vectors).
pub fn mmd_test(x: &[&[f32]], y: &[&[f32]], permutations: usize, seed: u64) -> Mmd {
    let pooled: Vec<&[f32]> = x.iter().chain(y).copied().collect();
    let n = pooled.len();
    let d = sq_distances(&pooled);
    let median = median_sq_distance(&d, n);
    let gamma = if median > 0.0 { 0.5 / median } else { 1.0 };
    let kernel: Vec<f32> = d.iter().map(|v| (-(gamma as f32) * v).exp()).collect();
    let mut side: Vec<bool> = (0..n).map(|i| i < x.len()).collect();
    let observed = mmd2_of(&kernel, n, &side);
    let mut rng = SplitMix64::new(seed);
    let mut null = Vec::with_capacity(permutations);
    for _ in 0..permutations {
        // Fisher-Yates over the labels.
        for i in (1..n).rev() {
            let j = rng.index(i + 1);
            side.swap(i, j);
        }
        null.push(mmd2_of(&kernel, n, &side));
    }
    let reached = null.iter().filter(|v| **v >= observed).count();
    let p_value = if reached >= 5 || null.len() < 2 {
        (reached as f64 + 1.0) / (null.len() as f64 + 1.0)
    } else {
        let (mean, sd) = (stats::mean(&null), stats::variance(&null).sqrt());
        if sd > 0.0 {
            stats::normal_sf((observed - mean) / sd)
        } else {
            1.0 / (null.len() as f64 + 1.0)
        }
    };
    Mmd {
        mmd2: observed,
        p_value,
        gamma,
    }
}

/// ROC-AUC of `scores` for `labels` (true: positive), ties counted half (Mann-Whitney).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// A logistic regression: weights and intercept.
#[derive(Debug, Clone)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl Logistic {
    pub fn decision(&self, x: &[f32]) -> f64 {
        self.intercept
            + self
                .weights
                .iter()
                .zip(x)
                .map(|(w, v)| w * f64::from(*v))
                .sum::<f64>()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Fits 1/2 |w|^2 + C * sum log(1 + exp(-y (w.x + b))) (y in {-1, +1}; b not penalised) by
/// Newton's method with conjugate-gradient steps and a backtracking line search.
pub fn fit_logistic(x: &[&[f32]], y: &[bool], c: f64) -> Logistic {
    let d = x.first().map_or(0, |v| v.len());
    let sign: Vec<f64> = y.iter().map(|l| if *l { 1.0 } else { -1.0 }).collect();
    // Parameters: d weights, then the intercept.
    let mut theta = vec![0.0f64; d + 1];
    let margins = |theta: &[f64]| -> Vec<f64> {
        x.iter()
            .map(|v| {
                theta[d]
                    + theta[..d]
                        .iter()
                        .zip(v.iter())
                        .map(|(w, a)| w * f64::from(*a))
                        .sum::<f64>()
            })
            .collect()
    };
    let objective = |theta: &[f64], m: &[f64]| -> f64 {
        let reg = 0.5 * theta[..d].iter().map(|w| w * w).sum::<f64>();
        let loss: f64 = m
            .iter()
            .zip(&sign)
            .map(|(m, s)| {
                let z = -s * m;
                if z > 30.0 { z } else { z.exp().ln_1p() }
            })
            .sum();
        reg + c * loss
    };
    let mut m = margins(&theta);
    let mut f = objective(&theta, &m);
    for _ in 0..50 {
        // Gradient and the Hessian's diagonal weights.
        let mut g = vec![0.0f64; d + 1];
        g[..d].copy_from_slice(&theta[..d]);
        let mut weight = vec![0.0f64; x.len()];
        for (i, v) in x.iter().enumerate() {
            let p = sigmoid(m[i]);
            let r = c * (p - if y[i] { 1.0 } else { 0.0 });
            for (gj, a) in g[..d].iter_mut().zip(v.iter()) {
                *gj += r * f64::from(*a);
            }
            g[d] += r;
            weight[i] = c * p * (1.0 - p);
        }
        let g_norm = g.iter().map(|v| v.abs()).fold(0.0, f64::max);
        if g_norm < 1e-6 {
            break;
        }
        let hessian_times = |v: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0f64; d + 1];
            out[..d].copy_from_slice(&v[..d]);
            for (i, row) in x.iter().enumerate() {
                let xv = v[d]
                    + row
                        .iter()
                        .zip(&v[..d])
                        .map(|(a, b)| f64::from(*a) * b)
                        .sum::<f64>();
                let s = weight[i] * xv;
                for (o, a) in out[..d].iter_mut().zip(row.iter()) {
                    *o += s * f64::from(*a);
                }
                out[d] += s;
            }
            // A small ridge on the intercept keeps the system definite.
            out[d] += 1e-10 * v[d];
            out
        };
        // Conjugate gradients on H p = -g.
        let mut p = vec![0.0f64; d + 1];
        let mut r: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut q = r.clone();
        let mut rr: f64 = r.iter().map(|v| v * v).sum();
        let tolerance = (0.1f64).min(g_norm.sqrt()) * rr.sqrt();
        for _ in 0..100 {
            if rr.sqrt() <= tolerance {
                break;
            }
            let hq = hessian_times(&q);
            let qhq: f64 = q.iter().zip(&hq).map(|(a, b)| a * b).sum();
            if qhq <= 0.0 {
                break;
            }
            let alpha = rr / qhq;
            for j in 0..=d {
                p[j] += alpha * q[j];
                r[j] -= alpha * hq[j];
            }
            let next: f64 = r.iter().map(|v| v * v).sum();
            let beta = next / rr;
            rr = next;
            for j in 0..=d {
                q[j] = r[j] + beta * q[j];
            }
        }
        // Backtracking (Armijo).
        let slope: f64 = g.iter().zip(&p).map(|(a, b)| a * b).sum();
        let mut step = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let candidate: Vec<f64> = theta.iter().zip(&p).map(|(t, s)| t + step * s).collect();
            let cm = margins(&candidate);
            let cf = objective(&candidate, &cm);
            if cf <= f + 1e-4 * step * slope {
                theta = candidate;
                m = cm;
                moved = (f - cf).abs() > 1e-12 * f.abs().max(1.0);
                f = cf;
                break;
            }
            step /= 2.0;
        }
        if !moved {
            break;
        }
    }
    Logistic {
        intercept: theta[d],
        weights: theta[..d].to_vec(),
    }
}

/// The fold of each item: the `i`-th item of each side in fold `i mod folds`.
pub fn folds_of(labels: &[bool], folds: usize) -> Vec<usize> {
    let (mut a, mut b) = (0usize, 0usize);
    labels
        .iter()
        .map(|l| {
            let counter = if *l { &mut a } else { &mut b };
            let fold = *counter % folds;
            *counter += 1;
            fold
        })
        .collect()
}

/// Cross-validated ROC-AUC of a logistic regression telling `current` (positive) from
/// `baseline`: 0.5 when they cannot be told apart, 1 when always.
pub fn classifier_auc(baseline: &[&[f32]], current: &[&[f32]], folds: usize) -> f64 {
    let x: Vec<&[f32]> = baseline.iter().chain(current).copied().collect();
    let labels: Vec<bool> = (0..x.len()).map(|i| i >= baseline.len()).collect();
    let fold = folds_of(&labels, folds);
    let mut scores = vec![0.0; x.len()];
    for k in 0..folds {
        let train: Vec<usize> = (0..x.len()).filter(|i| fold[*i] != k).collect();
        let test: Vec<usize> = (0..x.len()).filter(|i| fold[*i] == k).collect();
        if test.is_empty() {
            continue;
        }
        let tx: Vec<&[f32]> = train.iter().map(|i| x[*i]).collect();
        let ty: Vec<bool> = train.iter().map(|i| labels[*i]).collect();
        let model = fit_logistic(&tx, &ty, 1.0);
        for i in test {
            scores[i] = model.decision(x[i]);
        }
    }
    roc_auc(&scores, &labels)
}

/// A k-means clustering.
#[derive(Debug, Clone)]
pub struct KMeans {
    pub centroids: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
}

fn nearest(centroids: &[Vec<f32>], v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, centroid) in centroids.iter().enumerate() {
        let d = sq_distance(centroid, v);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

fn kmeans_once(points: &[&[f32]], k: usize, rng: &mut SplitMix64) -> KMeans {
    let n = points.len();
    // k-means++: each next centre drawn with probability proportional to D^2.
    let mut centroids: Vec<Vec<f32>> = vec![points[rng.index(n)].to_vec()];
    let mut closest: Vec<f32> = points
        .iter()
        .map(|p| sq_distance(p, &centroids[0]))
        .collect();
    while centroids.len() < k {
        let total: f64 = closest.iter().map(|d| f64::from(*d)).sum();
        let mut target = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut pick = n - 1;
        for (i, d) in closest.iter().enumerate() {
            target -= f64::from(*d);
            if target <= 0.0 {
                pick = i;
                break;
            }
        }
        centroids.push(points[pick].to_vec());
        for (c, p) in closest.iter_mut().zip(points) {
            *c = c.min(sq_distance(p, &centroids[centroids.len() - 1]));
        }
    }
    let dims = points[0].len();
    let mut labels = vec![usize::MAX; n];
    for _ in 0..300 {
        let mut changed = false;
        let mut distances = vec![0.0f32; n];
        for (i, p) in points.iter().enumerate() {
            let (c, d) = nearest(&centroids, p);
            distances[i] = d;
            if labels[i] != c {
                labels[i] = c;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![vec![0.0f64; dims]; k];
        let mut counts = vec![0usize; k];
        for (p, l) in points.iter().zip(&labels) {
            counts[*l] += 1;
            for (s, v) in sums[*l].iter_mut().zip(p.iter()) {
                *s += f64::from(*v);
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // An empty cluster takes the point farthest from its centre.
                let far = (0..n)
                    .max_by(|a, b| distances[*a].total_cmp(&distances[*b]))
                    .unwrap_or(0);
                distances[far] = 0.0;
                centroids[c] = points[far].to_vec();
            } else {
                centroids[c] = sums[c]
                    .iter()
                    .map(|s| (s / counts[c] as f64) as f32)
                    .collect();
            }
        }
    }
    let inertia = points
        .iter()
        .map(|p| f64::from(nearest(&centroids, p).1))
        .sum();
    let labels = points.iter().map(|p| nearest(&centroids, p).0).collect();
    KMeans {
        centroids,
        labels,
        inertia,
    }
}

/// k-means of `points` into `k` clusters: the lowest inertia of `inits` seedings.
pub fn kmeans(points: &[&[f32]], k: usize, seed: u64, inits: usize) -> KMeans {
    let mut rng = SplitMix64::new(seed);
    (0..inits.max(1))
        .map(|_| kmeans_once(points, k.clamp(1, points.len().max(1)), &mut rng))
        .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
        .unwrap_or(KMeans {
            centroids: Vec::new(),
            labels: Vec::new(),
            inertia: 0.0,
        })
}

/// The mean silhouette (Euclidean distances) of a clustering; 0 for a point alone in its
/// cluster, as scikit-learn counts it.
pub fn silhouette(points: &[&[f32]], labels: &[usize]) -> f64 {
    let n = points.len();
    let k = labels.iter().max().map_or(0, |m| m + 1);
    if n < 2 || k < 2 {
        return 0.0;
    }
    let d = sq_distances(points);
    let sizes: Vec<usize> = (0..k)
        .map(|c| labels.iter().filter(|l| **l == c).count())
        .collect();
    let mut total = 0.0;
    for i in 0..n {
        let mut sums = vec![0.0f64; k];
        for j in 0..n {
            if i != j {
                sums[labels[j]] += f64::from(d[i * n + j]).sqrt();
            }
        }
        let own = labels[i];
        if sizes[own] <= 1 {
            continue;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|c| *c != own && sizes[*c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let s = if a.max(b) > 0.0 {
            (b - a) / a.max(b)
        } else {
            0.0
        };
        total += s;
    }
    total / n as f64
}

/// Topics of a baseline's prompts: k-means centroids, and how far from them a prompt may lie
/// before it is novel.
#[derive(Debug, Clone)]
pub struct Topics {
    pub centroids: Vec<Vec<f32>>,
    /// The 99th percentile of the baseline's distances to their nearest centroid.
    pub novel_radius: f32,
    /// The silhouette of the chosen clustering.
    pub silhouette: f64,
}

/// Seed of every k-means: the same topics for the same baseline on every run.
const SEED: u64 = 20_261_130;
/// The most topics the silhouette may choose.
pub const MAX_TOPICS: usize = 12;

impl Topics {
    /// Topics of `baseline` (at least 40 vectors): `k` of them, or the k in 2..=12 (at most one
    /// per 20 vectors) with the best silhouette.
    pub fn fit(baseline: &[&[f32]], k: Option<usize>) -> Option<Topics> {
        if baseline.len() < 40 {
            return None;
        }
        let fitted = match k {
            Some(k) => kmeans(baseline, k, SEED, 3),
            None => {
                let most = MAX_TOPICS.min(baseline.len() / 20).max(2);
                (2..=most)
                    .map(|k| {
                        let fit = kmeans(baseline, k, SEED, 3);
                        let score = silhouette(baseline, &fit.labels);
                        (fit, score)
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(fit, _)| fit)?
            }
        };
        let silhouette = silhouette(baseline, &fitted.labels);
        let mut distances: Vec<f64> = baseline
            .iter()
            .map(|p| f64::from(nearest(&fitted.centroids, p).1.sqrt()))
            .collect();
        distances.sort_unstable_by(f64::total_cmp);
        let novel_radius = stats::quantile_sorted(&distances, 0.99) as f32;
        Some(Topics {
            centroids: fitted.centroids,
            novel_radius,
            silhouette,
        })
    }

    /// The nearest topic of `v`.
    pub fn nearest(&self, v: &[f32]) -> usize {
        nearest(&self.centroids, v).0
    }

    /// The topic of `v`, or `None` when it is farther from every centroid than the radius.
    pub fn assign(&self, v: &[f32]) -> Option<usize> {
        let (c, d) = nearest(&self.centroids, v);
        (d.sqrt() <= self.novel_radius).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// Points around `centre` in 8 dimensions, seeded.
    fn cloud(centre: &[f32], n: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                unit(
                    centre
                        .iter()
                        .map(|c| {
                            c + spread * ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                        })
                        .collect(),
                )
            })
            .collect()
    }

    fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
        v.iter().map(|x| x.as_slice()).collect()
    }

    #[test]
    fn the_same_distribution_is_not_told_apart_and_a_moved_one_is() {
        let a = [1.0, 0.2, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0];
        let b = [0.2, 1.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0];
        let base = cloud(&a, 120, 0.8, 1);
        let same = cloud(&a, 120, 0.8, 2);
        let moved = cloud(&b, 120, 0.8, 3);
        let stable = mmd_test(&refs(&base), &refs(&same), 200, 7);
        assert!(stable.p_value > 0.01, "{stable:?}");
        let shifted = mmd_test(&refs(&base), &refs(&moved), 200, 7);
        assert!(shifted.p_value < 1e-4, "{shifted:?}");
        assert!(shifted.mmd2 > stable.mmd2);
        assert!(centroid_cosine(&refs(&base), &refs(&moved)) > 0.1);
        assert!(centroid_cosine(&refs(&base), &refs(&same)) < 0.01);
        let auc_same = classifier_auc(&refs(&base), &refs(&same), 5);
        let auc_moved = classifier_auc(&refs(&base), &refs(&moved), 5);
        assert!((0.3..0.7).contains(&auc_same), "{auc_same}");
        assert!(auc_moved > 0.95, "{auc_moved}");
    }

    #[test]
    fn kmeans_finds_separated_clusters_and_the_silhouette_picks_their_number() {
        let centres = [
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        let points: Vec<Vec<f32>> = centres
            .iter()
            .enumerate()
            .flat_map(|(i, c)| cloud(c, 40, 0.3, i as u64 + 10))
            .collect();
        let topics = Topics::fit(&refs(&points), None).unwrap();
        assert_eq!(topics.centroids.len(), 3);
        assert!(topics.silhouette > 0.5, "{}", topics.silhouette);
        // Each cloud's points share a topic, 1% of them past the radius; a point elsewhere
        // is novel.
        for (i, p) in points.iter().enumerate() {
            assert_eq!(topics.nearest(p), topics.nearest(&points[i / 40 * 40]));
        }
        let novel = points.iter().filter(|p| topics.assign(p).is_none()).count();
        assert!(novel <= 2, "{novel}");
        let elsewhere = unit(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(topics.assign(&elsewhere), None);
    }

    #[test]
    fn roc_auc_counts_ties_half() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]),
            1.0
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert_eq!(folds_of(&[true, false, true, true], 2), vec![0, 0, 1, 0]);
    }

    /// The reference's vectors and figures (scripts/embedding_stats_reference.py).
    fn reference() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/data/embedding_stats_reference.json"
        ))
        .unwrap()
    }

    fn vectors(value: &serde_json::Value) -> Vec<Vec<f32>> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect()
    }

    fn close(ours: f64, theirs: f64, tolerance: f64, what: &str) {
        assert!(
            (ours - theirs).abs() <= tolerance,
            "{what}: ours {ours}, scikit-learn {theirs}"
        );
    }

    #[test]
    fn the_statistics_agree_with_scikit_learn_on_real_embeddings() {
        let r = reference();
        let (a, b) = (vectors(&r["a"]), vectors(&r["b"]));
        let (a, b) = (refs(&a), refs(&b));
        let half = a.len() / 2;
        close(
            centroid_cosine(&a, &b),
            r["centroid_cosine"].as_f64().unwrap(),
            1e-5,
            "centroid distance",
        );
        close(
            centroid_cosine(&a[..half], &a[half..]),
            r["centroid_cosine_same"].as_f64().unwrap(),
            1e-5,
            "centroid distance, same topic",
        );
        let shifted = mmd_test(&a, &b, 200, 1);
        close(shifted.gamma, r["gamma"].as_f64().unwrap(), 1e-4, "gamma");
        close(shifted.mmd2, r["mmd2"].as_f64().unwrap(), 1e-5, "MMD^2");
        assert!(shifted.p_value < 0.001, "{shifted:?}");
        let same = mmd_test(&a[..half], &a[half..], 200, 1);
        close(
            same.mmd2,
            r["mmd2_same"].as_f64().unwrap(),
            1e-5,
            "MMD^2, same topic",
        );
        assert!(same.p_value > 0.05, "{same:?}");
        close(
            classifier_auc(&a, &b, 5),
            r["auc"].as_f64().unwrap(),
            0.01,
            "classifier AUC",
        );
        close(
            classifier_auc(&a[..half], &a[half..], 5),
            r["auc_same"].as_f64().unwrap(),
            0.02,
            "classifier AUC, same topic",
        );
        let pooled: Vec<&[f32]> = a.iter().chain(&b).copied().collect();
        for fit in r["kmeans"].as_array().unwrap() {
            let k = fit["k"].as_u64().unwrap() as usize;
            let labels: Vec<usize> = fit["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_u64().unwrap() as usize)
                .collect();
            close(
                silhouette(&pooled, &labels),
                fit["silhouette"].as_f64().unwrap(),
                1e-4,
                &format!("silhouette, k = {k}"),
            );
            let ours = kmeans(&pooled, k, SEED, 3);
            let theirs = fit["inertia"].as_f64().unwrap();
            assert!(
                ours.inertia <= theirs * 1.02,
                "k = {k}: inertia ours {}, scikit-learn {theirs}",
                ours.inertia
            );
        }
    }
}
