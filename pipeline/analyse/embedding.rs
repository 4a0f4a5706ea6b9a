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
//!   centroid, or calls it novel when it is farther from it than 99% of the held-out baseline
//!   prompts nearest that centroid are.
//!
//! `scripts/embedding_stats_reference.py` checks these against scikit-learn on committed vectors
//! (`tests/data/embedding_stats_reference.json`).

use std::collections::BTreeMap;

use super::drift::{EmbeddingDrift, Extra};
use super::load::{DayData, Embedded, lowest};
use super::stats::{self, SplitMix64};
use crate::embed::settings::EmbeddingAnalysis;
use candle_core::{Device, Tensor};

/// Errors of the matrix products (candle on CPU; they only fail on shapes, which are built
/// here).
pub type MathResult<T> = candle_core::Result<T>;

fn sq_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The rows as an n x d matrix. The products run in candle (its `gemm`), which is optimised
/// in every build profile.
fn matrix(rows: &[&[f32]]) -> MathResult<Tensor> {
    let d = rows.first().map_or(0, |r| r.len());
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), d), &Device::Cpu)
}

fn column(values: &[f32]) -> MathResult<Tensor> {
    Tensor::from_slice(values, (values.len(), 1), &Device::Cpu)
}

fn flat(t: &Tensor) -> MathResult<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
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
fn sq_distances(points: &[&[f32]]) -> MathResult<Vec<f32>> {
    let n = points.len();
    let x = matrix(points)?;
    let gram = flat(&x.matmul(&x.t()?)?)?;
    let norms: Vec<f32> = (0..n).map(|i| gram[i * n + i]).collect();
    Ok(gram
        .iter()
        .enumerate()
        .map(|(ij, g)| {
            let (i, j) = (ij / n, ij % n);
            if i == j {
                0.0
            } else {
                (norms[i] + norms[j] - 2.0 * g).max(0.0)
            }
        })
        .collect())
}

/// The median of the squared distances over the pairs i < j.
fn median_sq_distance(d: &[f32], n: usize) -> f64 {
    let mut upper: Vec<f32> = Vec::with_capacity(n * n.saturating_sub(1) / 2);
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

/// The unbiased squared MMD of every labelling in `sides` (n x P, 1 for the first side, column
/// per labelling), from the pooled kernel matrix: with `a` a labelling, the within-first sum is
/// a'Ka, the within-second (1-a)'K(1-a), the cross a'K(1-a), each less its diagonal.
fn mmd2_of(kernel: &Tensor, sides: &[Vec<f32>]) -> MathResult<Vec<f64>> {
    let n = kernel.dims()[0];
    let p = sides.len();
    let mut columns = vec![0.0f32; n * p];
    for (j, side) in sides.iter().enumerate() {
        for (i, s) in side.iter().enumerate() {
            columns[i * p + j] = *s;
        }
    }
    let a = Tensor::from_vec(columns, (n, p), &Device::Cpu)?;
    let ka = flat(&kernel.matmul(&a)?)?;
    let row_sums = flat(&kernel.sum(1)?)?;
    let mut out = Vec::with_capacity(p);
    for (j, side) in sides.iter().enumerate() {
        let (mut xx, mut xy, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let (s, ka) = (f64::from(side[i]), f64::from(ka[i * p + j]));
            let kb = f64::from(row_sums[i]) - ka;
            xx += s * ka;
            xy += s * kb;
            yy += (1.0 - s) * kb;
        }
        let m = side.iter().filter(|s| **s > 0.5).count() as f64;
        let k = n as f64 - m;
        // The kernel's diagonal is exp(0) = 1: m of it in xx, k in yy.
        out.push((xx - m) / (m * (m - 1.0)) + (yy - k) / (k * (k - 1.0)) - 2.0 * xy / (m * k));
    }
    Ok(out)
}

/// The MMD two-sample test of `x` against `y` (each at least 2 vectors).
pub fn mmd_test(x: &[&[f32]], y: &[&[f32]], permutations: usize, seed: u64) -> MathResult<Mmd> {
    let pooled: Vec<&[f32]> = x.iter().chain(y).copied().collect();
    let n = pooled.len();
    let d = sq_distances(&pooled)?;
    let median = median_sq_distance(&d, n);
    let gamma = if median > 0.0 { 0.5 / median } else { 1.0 };
    let kernel: Vec<f32> = d.iter().map(|v| (-(gamma as f32) * v).exp()).collect();
    let kernel = Tensor::from_vec(kernel, (n, n), &Device::Cpu)?;
    let mut side: Vec<f32> = (0..n).map(|i| f32::from(u8::from(i < x.len()))).collect();
    let mut labellings = vec![side.clone()];
    let mut rng = SplitMix64::new(seed);
    for _ in 0..permutations {
        // Fisher-Yates over the labels.
        for i in (1..n).rev() {
            let j = rng.index(i + 1);
            side.swap(i, j);
        }
        labellings.push(side.clone());
    }
    let values = mmd2_of(&kernel, &labellings)?;
    let (observed, null) = (values[0], &values[1..]);
    let reached = null.iter().filter(|v| **v >= observed).count();
    let p_value = if reached >= 5 || null.len() < 2 {
        (reached as f64 + 1.0) / (null.len() as f64 + 1.0)
    } else {
        let (mean, sd) = (stats::mean(null), stats::variance(null).sqrt());
        if sd > 0.0 {
            stats::normal_sf((observed - mean) / sd)
        } else {
            1.0 / (null.len() as f64 + 1.0)
        }
    };
    Ok(Mmd {
        mmd2: observed,
        p_value,
        gamma,
    })
}

/// A logistic regression: weights and intercept.
#[derive(Debug, Clone)]
pub struct Logistic {
    pub weights: Vec<f32>,
    pub intercept: f32,
}

impl Logistic {
    /// The decision values (w.x + b) of the rows of `x`.
    pub fn decisions(&self, x: &Tensor) -> MathResult<Vec<f32>> {
        let w = column(&self.weights)?;
        Ok(flat(&x.matmul(&w)?)?
            .into_iter()
            .map(|v| v + self.intercept)
            .collect())
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

/// Fits 1/2 |w|^2 + C * sum log(1 + exp(-y (w.x + b))) (y in {-1, +1}; b not penalised) on the
/// rows of `x` by Newton's method with conjugate-gradient steps and a backtracking line search.
pub fn fit_logistic(x: &Tensor, y: &[bool], c: f64) -> MathResult<Logistic> {
    let d = x.dims()[1];
    let xt = x.t()?.contiguous()?;
    let target: Vec<f64> = y.iter().map(|l| if *l { 1.0 } else { 0.0 }).collect();
    // X v + b, and X' u.
    let times = |w: &[f64], b: f64| -> MathResult<Vec<f64>> {
        let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
        Ok(flat(&x.matmul(&column(&w)?)?)?
            .into_iter()
            .map(|v| f64::from(v) + b)
            .collect())
    };
    let times_t = |u: &[f64]| -> MathResult<Vec<f64>> {
        let u: Vec<f32> = u.iter().map(|v| *v as f32).collect();
        Ok(flat(&xt.matmul(&column(&u)?)?)?
            .into_iter()
            .map(f64::from)
            .collect())
    };
    let objective = |w: &[f64], m: &[f64]| -> f64 {
        let reg = 0.5 * w.iter().map(|v| v * v).sum::<f64>();
        let loss: f64 = m
            .iter()
            .zip(&target)
            .map(|(m, t)| {
                let z = if *t > 0.5 { -m } else { *m };
                if z > 30.0 { z } else { z.exp().ln_1p() }
            })
            .sum();
        reg + c * loss
    };
    let (mut w, mut b) = (vec![0.0f64; d], 0.0f64);
    let mut m = times(&w, b)?;
    let mut f = objective(&w, &m);
    let mut first_norm = None;
    for _ in 0..30 {
        let p: Vec<f64> = m.iter().map(|v| sigmoid(*v)).collect();
        let r: Vec<f64> = p.iter().zip(&target).map(|(p, t)| c * (p - t)).collect();
        let mut g_w = times_t(&r)?;
        for (g, wj) in g_w.iter_mut().zip(&w) {
            *g += wj;
        }
        let g_b: f64 = r.iter().sum();
        let g_norm = g_w.iter().map(|v| v.abs()).fold(g_b.abs(), f64::max);
        let start = *first_norm.get_or_insert(g_norm);
        if g_norm <= 1e-5 * start.max(1.0) {
            break;
        }
        let weight: Vec<f64> = p.iter().map(|p| c * p * (1.0 - p)).collect();
        // H (v, vb) = (v + X' D (X v + vb), sum D (X v + vb)); a tiny ridge on the intercept.
        let hessian_times = |v: &[f64], vb: f64| -> MathResult<(Vec<f64>, f64)> {
            let xv = times(v, vb)?;
            let u: Vec<f64> = xv.iter().zip(&weight).map(|(a, w)| a * w).collect();
            let mut out = times_t(&u)?;
            for (o, vj) in out.iter_mut().zip(v) {
                *o += vj;
            }
            Ok((out, u.iter().sum::<f64>() + 1e-10 * vb))
        };
        // Conjugate gradients on H step = -g.
        let (mut s_w, mut s_b) = (vec![0.0f64; d], 0.0f64);
        let (mut r_w, mut r_b): (Vec<f64>, f64) = (g_w.iter().map(|v| -v).collect(), -g_b);
        let (mut q_w, mut q_b) = (r_w.clone(), r_b);
        let mut rr: f64 = r_w.iter().map(|v| v * v).sum::<f64>() + r_b * r_b;
        let tolerance = 0.1f64.min(g_norm.sqrt()) * rr.sqrt();
        for _ in 0..50 {
            if rr.sqrt() <= tolerance {
                break;
            }
            let (hq_w, hq_b) = hessian_times(&q_w, q_b)?;
            let qhq: f64 = q_w.iter().zip(&hq_w).map(|(a, b)| a * b).sum::<f64>() + q_b * hq_b;
            if qhq <= 0.0 {
                break;
            }
            let alpha = rr / qhq;
            for j in 0..d {
                s_w[j] += alpha * q_w[j];
                r_w[j] -= alpha * hq_w[j];
            }
            s_b += alpha * q_b;
            r_b -= alpha * hq_b;
            let next: f64 = r_w.iter().map(|v| v * v).sum::<f64>() + r_b * r_b;
            let beta = next / rr;
            rr = next;
            for j in 0..d {
                q_w[j] = r_w[j] + beta * q_w[j];
            }
            q_b = r_b + beta * q_b;
        }
        // Backtracking (Armijo).
        let slope: f64 = g_w.iter().zip(&s_w).map(|(a, b)| a * b).sum::<f64>() + g_b * s_b;
        let mut step = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let cw: Vec<f64> = w.iter().zip(&s_w).map(|(t, s)| t + step * s).collect();
            let cb = b + step * s_b;
            let cm = times(&cw, cb)?;
            let cf = objective(&cw, &cm);
            if cf <= f + 1e-4 * step * slope {
                moved = (f - cf).abs() > 1e-9 * f.abs().max(1.0);
                (w, b, m, f) = (cw, cb, cm, cf);
                break;
            }
            step /= 2.0;
        }
        if !moved {
            break;
        }
    }
    Ok(Logistic {
        weights: w.iter().map(|v| *v as f32).collect(),
        intercept: b as f32,
    })
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
pub fn classifier_auc(baseline: &[&[f32]], current: &[&[f32]], folds: usize) -> MathResult<f64> {
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
        let model = fit_logistic(&matrix(&tx)?, &ty, 1.0)?;
        let held: Vec<&[f32]> = test.iter().map(|i| x[*i]).collect();
        for (i, v) in test.iter().zip(model.decisions(&matrix(&held)?)?) {
            scores[*i] = f64::from(v);
        }
    }
    Ok(crate::agreement::roc_auc(&labels, &scores).unwrap_or(0.5))
}

/// A k-means clustering.
#[derive(Debug, Clone)]
pub struct KMeans {
    pub centroids: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
}

/// Points (as a matrix, with their squared norms) and what k-means needs of them.
struct Points<'a> {
    rows: &'a [&'a [f32]],
    x: Tensor,
    norms: Vec<f32>,
}

impl<'a> Points<'a> {
    fn new(rows: &'a [&'a [f32]]) -> MathResult<Points<'a>> {
        Ok(Points {
            rows,
            x: matrix(rows)?,
            norms: rows.iter().map(|r| r.iter().map(|v| v * v).sum()).collect(),
        })
    }

    /// Each point's nearest centroid and squared distance to it.
    fn nearest(&self, centroids: &[Vec<f32>]) -> MathResult<Vec<(usize, f32)>> {
        let k = centroids.len();
        let refs: Vec<&[f32]> = centroids.iter().map(|c| c.as_slice()).collect();
        let c = matrix(&refs)?;
        let cross = flat(&self.x.matmul(&c.t()?)?)?;
        let c_norms: Vec<f32> = centroids
            .iter()
            .map(|c| c.iter().map(|v| v * v).sum())
            .collect();
        Ok((0..self.rows.len())
            .map(|i| {
                (0..k)
                    .map(|j| {
                        (
                            j,
                            (self.norms[i] + c_norms[j] - 2.0 * cross[i * k + j]).max(0.0),
                        )
                    })
                    .fold(
                        (0, f32::INFINITY),
                        |best, d| if d.1 < best.1 { d } else { best },
                    )
            })
            .collect())
    }

    /// The means of the points per label (k x d), with the counts.
    fn means(&self, labels: &[usize], k: usize) -> MathResult<(Vec<Vec<f32>>, Vec<usize>)> {
        let n = self.rows.len();
        let mut counts = vec![0usize; k];
        let mut onehot = vec![0.0f32; k * n];
        for (i, l) in labels.iter().enumerate() {
            onehot[l * n + i] = 1.0;
            counts[*l] += 1;
        }
        let sums = Tensor::from_vec(onehot, (k, n), &Device::Cpu)?.matmul(&self.x)?;
        let sums: Vec<Vec<f32>> = sums.to_vec2::<f32>()?;
        Ok((
            sums.into_iter()
                .zip(&counts)
                .map(|(row, c)| row.into_iter().map(|v| v / (*c).max(1) as f32).collect())
                .collect(),
            counts,
        ))
    }
}

fn kmeans_once(points: &Points, k: usize, rng: &mut SplitMix64) -> MathResult<KMeans> {
    let rows = points.rows;
    let n = rows.len();
    // k-means++: each next centre drawn with probability proportional to D^2.
    let mut centroids: Vec<Vec<f32>> = vec![rows[rng.index(n)].to_vec()];
    let mut closest: Vec<f32> = rows.iter().map(|p| sq_distance(p, &centroids[0])).collect();
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
        centroids.push(rows[pick].to_vec());
        let newest = &centroids[centroids.len() - 1];
        for (c, p) in closest.iter_mut().zip(rows) {
            *c = c.min(sq_distance(p, newest));
        }
    }
    let mut labels = vec![usize::MAX; n];
    let mut nearest = points.nearest(&centroids)?;
    for _ in 0..300 {
        let mut changed = false;
        for (label, (c, _)) in labels.iter_mut().zip(&nearest) {
            if *label != *c {
                *label = *c;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let (means, counts) = points.means(&labels, k)?;
        for (c, mean) in means.into_iter().enumerate() {
            if counts[c] == 0 {
                // An empty cluster takes the point farthest from its centre.
                let far = (0..n)
                    .max_by(|a, b| nearest[*a].1.total_cmp(&nearest[*b].1))
                    .unwrap_or(0);
                nearest[far].1 = 0.0;
                centroids[c] = rows[far].to_vec();
            } else {
                centroids[c] = mean;
            }
        }
        nearest = points.nearest(&centroids)?;
    }
    Ok(KMeans {
        inertia: nearest.iter().map(|(_, d)| f64::from(*d)).sum(),
        labels: nearest.iter().map(|(c, _)| *c).collect(),
        centroids,
    })
}

/// k-means of `points` into `k` clusters: the lowest inertia of `inits` seedings.
pub fn kmeans(points: &[&[f32]], k: usize, seed: u64, inits: usize) -> MathResult<KMeans> {
    let prepared = Points::new(points)?;
    let mut rng = SplitMix64::new(seed);
    let mut best: Option<KMeans> = None;
    for _ in 0..inits.max(1) {
        let fit = kmeans_once(&prepared, k.clamp(1, points.len().max(1)), &mut rng)?;
        if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
            best = Some(fit);
        }
    }
    Ok(best.unwrap_or(KMeans {
        centroids: Vec::new(),
        labels: Vec::new(),
        inertia: 0.0,
    }))
}

/// The mean silhouette (Euclidean distances) of a clustering, from the squared distances of
/// every pair (n x n); 0 for a point alone in its cluster, as scikit-learn counts it.
fn silhouette_of(d: &[f32], labels: &[usize]) -> f64 {
    let n = labels.len();
    let k = labels.iter().max().map_or(0, |m| m + 1);
    if n < 2 || k < 2 {
        return 0.0;
    }
    let sizes: Vec<usize> = (0..k)
        .map(|c| labels.iter().filter(|l| **l == c).count())
        .collect();
    let mut total = 0.0;
    let mut sums = vec![0.0f64; k];
    for i in 0..n {
        sums.iter_mut().for_each(|s| *s = 0.0);
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
        if a.max(b) > 0.0 {
            total += (b - a) / a.max(b);
        }
    }
    total / n as f64
}

/// The mean silhouette (Euclidean distances) of a clustering.
pub fn silhouette(points: &[&[f32]], labels: &[usize]) -> MathResult<f64> {
    Ok(silhouette_of(&sq_distances(points)?, labels))
}

/// Topics of a baseline's prompts: k-means centroids, and how far from them a prompt may lie
/// before it is novel.
#[derive(Debug, Clone)]
pub struct Topics {
    pub centroids: Vec<Vec<f32>>,
    /// Per topic, the 99th percentile of the held-out baseline prompts' distances to its
    /// centroid, among those nearest it (the overall one where fewer than 20 are).
    pub novel_radius: Vec<f32>,
    /// The silhouette of the chosen clustering.
    pub silhouette: f64,
    /// The request ids of the prompts the centroids were fitted on or the radii set by: left
    /// out of the baseline's topic counts, which would otherwise sit closer to the centroids
    /// and inside the radii more often than any later prompt does.
    pub fitted: std::collections::HashSet<std::sync::Arc<str>>,
}

/// Seed of every k-means: the same topics for the same baseline on every run.
const SEED: u64 = 20_261_130;
/// The most topics the silhouette may choose.
pub const MAX_TOPICS: usize = 10;
/// The most points the silhouette is computed on (the lowest keys of the fitted half).
const SILHOUETTE_POINTS: usize = 300;

impl Topics {
    /// Topics of a baseline's prompts: of `items` (the lowest `max_vectors`), the third whose
    /// request ids hash to 0 mod 3 fits the centroids, the third at 1 sets the novelty radii,
    /// and the rest (with every prompt past `max_vectors`) is the baseline the windows are
    /// compared with, measured like them. `k` topics, or the k in 2..=10 (at most one per 20
    /// fitted prompts) with the best silhouette. `None` with fewer than 40 prompts to fit or
    /// 20 to set the radii.
    pub fn fit(
        items: &[Embedded],
        k: Option<usize>,
        max_vectors: usize,
    ) -> MathResult<Option<Topics>> {
        let sample = lowest(items, max_vectors);
        let fit: Vec<&Embedded> = sample.iter().filter(|e| e.key % 3 == 0).copied().collect();
        let held: Vec<&Embedded> = sample.iter().filter(|e| e.key % 3 == 1).copied().collect();
        if fit.len() < 40 || held.len() < 20 {
            return Ok(None);
        }
        let points: Vec<&[f32]> = fit.iter().map(|e| &*e.vector).collect();
        let fitted = match k {
            Some(k) => kmeans(&points, k, SEED, 3)?,
            None => {
                let few = &points[..points.len().min(SILHOUETTE_POINTS)];
                let d = sq_distances(few)?;
                let most = MAX_TOPICS.min(points.len() / 20).max(2);
                let mut best: Option<(KMeans, f64)> = None;
                for k in 2..=most {
                    let fit = kmeans(&points, k, SEED, 3)?;
                    let score = silhouette_of(&d, &fit.labels[..few.len()]);
                    if best.as_ref().is_none_or(|(_, s)| score > *s) {
                        best = Some((fit, score));
                    }
                }
                match best {
                    Some((fit, _)) => fit,
                    None => return Ok(None),
                }
            }
        };
        let few = &points[..points.len().min(SILHOUETTE_POINTS)];
        let silhouette = silhouette_of(&sq_distances(few)?, &fitted.labels[..few.len()]);
        let mut overall: Vec<f64> = Vec::with_capacity(held.len());
        let mut per_topic: Vec<Vec<f64>> = vec![Vec::new(); fitted.centroids.len()];
        for e in &held {
            let (c, d) = nearest(&fitted.centroids, &e.vector);
            overall.push(f64::from(d.sqrt()));
            per_topic[c].push(f64::from(d.sqrt()));
        }
        let percentile = |mut v: Vec<f64>| {
            v.sort_unstable_by(f64::total_cmp);
            stats::quantile_sorted(&v, 0.99) as f32
        };
        let everywhere = percentile(overall);
        let novel_radius = per_topic
            .into_iter()
            .map(|d| {
                if d.len() >= 20 {
                    percentile(d)
                } else {
                    everywhere
                }
            })
            .collect();
        Ok(Some(Topics {
            centroids: fitted.centroids,
            novel_radius,
            silhouette,
            fitted: fit
                .iter()
                .chain(&held)
                .map(|e| e.request_id.clone())
                .collect(),
        }))
    }

    /// The distance of `v` to its nearest centroid.
    pub fn distance(&self, v: &[f32]) -> f32 {
        nearest(&self.centroids, v).1.sqrt()
    }

    /// The nearest topic of `v`.
    pub fn nearest(&self, v: &[f32]) -> usize {
        nearest(&self.centroids, v).0
    }

    /// The topic of `v`, or `None` when it is farther from every centroid than the radius.
    pub fn assign(&self, v: &[f32]) -> Option<usize> {
        let (c, d) = nearest(&self.centroids, v);
        (d.sqrt() <= self.novel_radius[c]).then_some(c)
    }
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

/// The name of topic `i` (0-based) in `topic.shares` and the `topics` table: `topic-1`, ...
pub fn topic_name(i: usize) -> String {
    format!("topic-{}", i + 1)
}

/// What `topic.shares` calls the prompts no topic holds.
pub const NOVEL: &str = "novel";

fn vectors_of<'a>(items: &[&'a Embedded]) -> Vec<&'a [f32]> {
    items.iter().map(|e| &*e.vector).collect()
}

/// The topics of a baseline's prompts ([`Topics::fit`]); `None` with too few prompts or with
/// embeddings off.
pub fn topics_of(prompts: &[Embedded], settings: &EmbeddingAnalysis) -> Option<Topics> {
    if !settings.enabled {
        return None;
    }
    Topics::fit(prompts, settings.topics, settings.max_vectors).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "analyse: the baseline's topics could not be fitted");
        None
    })
}

/// Counts per topic name (every topic, even at 0, then `novel`) and the sorted 0/1 novelty of
/// `items`.
fn topic_counts(topics: &Topics, items: &[Embedded]) -> (BTreeMap<String, u64>, Vec<f64>) {
    let items = items
        .iter()
        .filter(|e| !topics.fitted.contains(&e.request_id));
    let mut counts: BTreeMap<String, u64> = (0..topics.centroids.len())
        .map(|i| (topic_name(i), 0))
        .collect();
    counts.insert(NOVEL.to_string(), 0);
    let mut novel = Vec::new();
    for item in items {
        let name = match topics.assign(&item.vector) {
            Some(t) => {
                novel.push(0.0);
                topic_name(t)
            }
            None => {
                novel.push(1.0);
                NOVEL.to_string()
            }
        };
        *counts.entry(name).or_default() += 1;
    }
    novel.sort_unstable_by(f64::total_cmp);
    (counts, novel)
}

/// What `topic.shares` calls the topics pooled because too few of the window's prompts were
/// expected in each.
pub const OTHER: &str = "other";

/// Pools the topics where fewer than 5 of the window's prompts are expected (its size times the
/// baseline's share) into [`OTHER`]: the chi-square test is not to be trusted on smaller
/// expected counts. `novel` stays apart.
fn pool_small(current: &mut BTreeMap<String, u64>, baseline: &mut BTreeMap<String, u64>) {
    let n_current: u64 = current.values().sum();
    let n_baseline: u64 = baseline.values().sum::<u64>().max(1);
    let small: Vec<String> = baseline
        .iter()
        .filter(|(name, count)| {
            name.as_str() != NOVEL && (**count * n_current) as f64 / (n_baseline as f64) < 5.0
        })
        .map(|(name, _)| name.clone())
        .collect();
    if small.len() < 2 {
        return;
    }
    for side in [current, baseline] {
        let pooled: u64 = small.iter().filter_map(|name| side.remove(name)).sum();
        side.insert(OTHER.to_string(), pooled);
    }
}

/// What a window's embeddings add to its comparison with the baseline: topic counts and
/// novelty (when the baseline has topics), and the drift of prompts and replies (when both
/// sides have embeddings). `seed` fixes the MMD's permutations.
pub fn extra(
    current: &DayData,
    baseline: &DayData,
    topics: Option<&Topics>,
    settings: &EmbeddingAnalysis,
    min_count: u64,
    seed: u64,
) -> Extra {
    let mut out = Extra::default();
    if !settings.enabled {
        return out;
    }
    if let Some(topics) = topics
        && !current.prompt_vectors.is_empty()
    {
        let (mut c, c_novel) = topic_counts(topics, &current.prompt_vectors);
        let (mut b, b_novel) = topic_counts(topics, &baseline.prompt_vectors);
        pool_small(&mut c, &mut b);
        out.topics = Some((c, b));
        out.novel = Some((c_novel, b_novel));
    }
    for (metric, c, b) in [
        (
            "embedding.prompt",
            &current.prompt_vectors,
            &baseline.prompt_vectors,
        ),
        (
            "embedding.reply",
            &current.reply_vectors,
            &baseline.reply_vectors,
        ),
    ] {
        if c.is_empty() && b.is_empty() {
            continue;
        }
        let (c, b) = (
            lowest(c, settings.max_vectors),
            lowest(b, settings.max_vectors),
        );
        let enough = c.len() as u64 >= min_count && b.len() as u64 >= min_count;
        let result = if enough {
            let (c, b) = (vectors_of(&c), vectors_of(&b));
            let tests = || -> MathResult<(f64, Mmd, f64)> {
                Ok((
                    centroid_cosine(&b, &c),
                    mmd_test(&b, &c, settings.permutations, seed)?,
                    classifier_auc(&b, &c, 5)?,
                ))
            };
            tests()
                .inspect_err(
                    |e| tracing::warn!(metric, error = %e, "analyse: embedding drift failed"),
                )
                .ok()
        } else {
            None
        };
        out.embedding.push(EmbeddingDrift {
            metric,
            n_current: c.len() as u64,
            n_baseline: b.len() as u64,
            result,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
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
        let stable = mmd_test(&refs(&base), &refs(&same), 200, 7).unwrap();
        assert!(stable.p_value > 0.01, "{stable:?}");
        let shifted = mmd_test(&refs(&base), &refs(&moved), 200, 7).unwrap();
        assert!(shifted.p_value < 1e-4, "{shifted:?}");
        assert!(shifted.mmd2 > stable.mmd2);
        assert!(centroid_cosine(&refs(&base), &refs(&moved)) > 0.1);
        assert!(centroid_cosine(&refs(&base), &refs(&same)) < 0.01);
        let auc_same = classifier_auc(&refs(&base), &refs(&same), 5).unwrap();
        let auc_moved = classifier_auc(&refs(&base), &refs(&moved), 5).unwrap();
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
            .flat_map(|(i, c)| cloud(c, 60, 0.3, i as u64 + 10))
            .collect();
        let items: Vec<Embedded> = points
            .iter()
            .enumerate()
            .map(|(i, p)| Embedded {
                key: crate::util::request_key(&i.to_string()),
                request_id: std::sync::Arc::from(i.to_string()),
                vector: std::sync::Arc::from(p.as_slice()),
            })
            .collect();
        let topics = Topics::fit(&items, None, 500).unwrap().unwrap();
        assert_eq!(topics.centroids.len(), 3);
        assert!(topics.silhouette > 0.5, "{}", topics.silhouette);
        // Fitted on a third, the radii set by a third: two thirds kept out of the counts.
        assert!(
            (100..140).contains(&topics.fitted.len()),
            "{}",
            topics.fitted.len()
        );
        // Each cloud's points share a topic, some past the radii (a 99th percentile of 20
        // points per topic is coarse: the baseline's own share of novel prompts, measured on
        // prompts neither fitting nor setting them, is what a window is compared with); a
        // point elsewhere is novel.
        for (i, p) in points.iter().enumerate() {
            assert_eq!(topics.nearest(p), topics.nearest(&points[i / 60 * 60]));
        }
        let novel = points.iter().filter(|p| topics.assign(p).is_none()).count();
        assert!(novel <= 18, "{novel}");
        let elsewhere = unit(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(topics.assign(&elsewhere), None);
    }

    #[test]
    fn each_side_is_dealt_over_the_folds_in_turn() {
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
        let shifted = mmd_test(&a, &b, 200, 1).unwrap();
        close(shifted.gamma, r["gamma"].as_f64().unwrap(), 1e-4, "gamma");
        close(shifted.mmd2, r["mmd2"].as_f64().unwrap(), 1e-5, "MMD^2");
        assert!(shifted.p_value < 0.001, "{shifted:?}");
        let same = mmd_test(&a[..half], &a[half..], 200, 1).unwrap();
        close(
            same.mmd2,
            r["mmd2_same"].as_f64().unwrap(),
            1e-5,
            "MMD^2, same topic",
        );
        assert!(same.p_value > 0.05, "{same:?}");
        close(
            classifier_auc(&a, &b, 5).unwrap(),
            r["auc"].as_f64().unwrap(),
            0.01,
            "classifier AUC",
        );
        close(
            classifier_auc(&a[..half], &a[half..], 5).unwrap(),
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
                silhouette(&pooled, &labels).unwrap(),
                fit["silhouette"].as_f64().unwrap(),
                1e-4,
                &format!("silhouette, k = {k}"),
            );
            let ours = kmeans(&pooled, k, SEED, 3).unwrap();
            let theirs = fit["inertia"].as_f64().unwrap();
            assert!(
                ours.inertia <= theirs * 1.02,
                "k = {k}: inertia ours {}, scikit-learn {theirs}",
                ours.inertia
            );
        }
    }
}
