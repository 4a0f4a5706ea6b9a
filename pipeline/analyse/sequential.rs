//! Sequential detection across days, and what it can see: the one-sided CUSUM's decision
//! levels, set by simulation for a stated false-alert rate, and the minimum detectable effect.
//!
//! Each day a metric's mean is compared with its baseline in standard errors ([`z_of`]). Two one-sided CUSUMs run on it, one for drops and one for rises:
//! `S_t = max(0, S_{t-1} + z_t - k)` (for drops `-z_t`), slack `k` (`analyse.cusum-k`). Why a
//! CUSUM: it is the test with the shortest detection delay among those holding a given rate of
//! false alarms for a sustained shift (Lorden's optimality; Moustakides 1986), its state is one
//! number per metric and direction (kept in `state/analyse-tracks/`), and its threshold and
//! sensitivity can be simulated in microseconds. Page-Hinkley is the same statistic on raw
//! values; a Bayesian changepoint model needs priors on run length and costs more per step for
//! no gain on a single mean shift.
//!
//! The decision level `h` is not a constant: for each model-day and metric it is the level a
//! stable metric's CUSUM passes within [`HORIZON_DAYS`] days with probability at most `p`, where
//! `p` is the configured false alerts per 30 stable days of a model
//! (`analyse.false-alerts-per-30-days`) divided by the model's metrics that can alert
//! (Bonferroni). The stable days are simulated by the bootstrap from the model's own baseline:
//! `n` values (today's count) drawn with replacement; past 300 values a normal mean (the central
//! limit theorem holds, the bootstrap would only cost). The baseline is simulated too
//! ([`Scheme`]): a rolling one is the mean of the simulated days before, a pinned one a single
//! error per path, because a baseline estimated a little low makes every day look a little bad
//! for as long as it is used, and a CUSUM adds that up. The level is never below the one of
//! normal days, so a baseline with no spread (every score 1.0) cannot make it 0.
//!
//! The minimum detectable effect ([`mde`]) of a metric: the smallest sustained drop that the
//! monitor (the CUSUM, or the per-day mean test: two-sided at `alpha-alert` and at least
//! `min-effect`) catches within `d` days with probability `power` (80%), by simulation of
//! normal z with the shift, given the day's n and the baseline's variance.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::stats::{self, SplitMix64};

/// Days over which the false-alert rate is stated.
pub const HORIZON_DAYS: usize = 30;
/// Simulated stable 30-day paths per decision level.
const PATHS: usize = 2000;
/// Bootstrap days drawn per baseline.
const RESAMPLES: usize = 500;
/// Past this many values a day's z is drawn as a standard normal.
const NORMAL_PAST: usize = 300;
/// Simulated paths per detection probability in [`mde`] (a share near 80% to +-1.3 points).
const MDE_PATHS: usize = 1000;
/// Power at which the minimum detectable effect is stated.
pub const POWER: f64 = 0.8;
/// The horizons, in days, of the minimum detectable effects reported.
pub const MDE_DAYS: [usize; 3] = [1, 3, 7];

/// A day's mean against the baseline, in standard errors of the difference under "the day is
/// drawn from the baseline": `(mc - mb) / sqrt(vb/nc + vb/nb)`, the baseline's variance on both
/// sides (stable from day to day, where a small day's own variance is not: a day of 40 perfect
/// scores has none). A baseline with no spread uses the day's; neither: 0, or +-50 when the means
/// differ.
pub fn z_of(current: (f64, f64, usize), baseline: (f64, f64, usize)) -> f64 {
    let (mc, vc, nc) = current;
    let (mb, vb, nb) = baseline;
    if nc == 0 || nb == 0 || !mc.is_finite() || !mb.is_finite() {
        return 0.0;
    }
    let se = if vb > 0.0 {
        (vb / nc as f64 + vb / nb as f64).sqrt()
    } else {
        (vc / nc as f64).sqrt()
    };
    let delta = mc - mb;
    if se > 0.0 {
        (delta / se).clamp(-50.0, 50.0)
    } else if delta == 0.0 {
        0.0
    } else {
        50.0 * delta.signum()
    }
}

/// (mean, sample variance, n) of values.
pub fn moments(values: &[f64]) -> (f64, f64, usize) {
    if values.is_empty() {
        return (f64::NAN, 0.0, 0);
    }
    (stats::mean(values), stats::variance(values), values.len())
}

/// A standard normal draw (Box-Muller on two uniforms of the generator).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u = |rng: &mut SplitMix64| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// Simulated stable days: the means of `n` values drawn from the baseline, in standard errors
/// of a day's mean (`sd / sqrt(n)`) from the baseline's mean.
fn stable_days(baseline: &[f64], n: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let (mb, vb, _) = moments(baseline);
    let unit = (vb / n as f64).sqrt();
    (0..RESAMPLES)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| baseline[rng.index(baseline.len())]).sum();
            (sum / n as f64 - mb) / unit
        })
        .collect()
}

/// How a metric's baseline is formed, for the simulation of its stable days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// The windows before the day: `held` now, growing day by day to `windows` and rolling
    /// from there. Each day's z is its mean against the mean of the simulated days before it,
    /// so a baseline's error repeats for as long as it is in the window, and then leaves.
    Rolling { held: usize, windows: usize },
    /// A pinned reference holding this share of the difference's variance ([`baseline_share`]):
    /// its error is one draw per path, repeated every day.
    Fixed(f64),
}

impl Scheme {
    /// The scheme of a day of `n` values against `n_baseline`: a rolling baseline of as many
    /// windows as it holds days' worth of values (at most `windows`), or a fixed one.
    pub fn of(rolling: Option<usize>, n: usize, n_baseline: usize) -> Scheme {
        match rolling {
            Some(windows) if n > 0 => {
                let windows = windows.max(1);
                let held = (n_baseline as f64 / n as f64).round() as usize;
                Scheme::Rolling {
                    held: held.clamp(1, windows),
                    windows,
                }
            }
            _ => Scheme::Fixed(baseline_share(n, n_baseline)),
        }
    }

    fn key(self) -> i64 {
        match self {
            Scheme::Rolling { held, windows } => (held * 1000 + windows) as i64,
            Scheme::Fixed(shared) => -1 - (shared.clamp(0.0, 1.0) * 100.0).round() as i64,
        }
    }
}

/// How many days a suspect day stays out of a rolling baseline without an alert (the analyse
/// stage's `SUSPICION_WINDOWS`).
pub const SUSPECT_DAYS: usize = 3;

/// One simulated path of the monitor, day after day: each day's mean is `draw()` plus `shift`
/// (in standard errors of a day's mean, `sd / sqrt(n)`), its z against the baseline of
/// `scheme`, the CUSUM (slack `k`) of it. With `suspect_at` (a decision level), a day whose
/// CUSUM is at half of it or more stays out of a rolling baseline that holds all its windows,
/// until the CUSUM falls back under half or for at most [`SUSPECT_DAYS`], as the analyse stage
/// keeps its baselines. `watch(day, z, cusum)` sees every day and says whether to stop.
fn walk(
    k: f64,
    scheme: Scheme,
    suspect_at: Option<f64>,
    (days, shift): (usize, f64),
    rng: &mut SplitMix64,
    draw: &mut dyn FnMut(&mut SplitMix64) -> f64,
    watch: &mut dyn FnMut(usize, f64, f64) -> bool,
) {
    let mut s = 0.0f64;
    match scheme {
        Scheme::Rolling { held, windows } => {
            let mut window: std::collections::VecDeque<f64> =
                (0..held.max(1)).map(|_| draw(rng)).collect();
            let mut sum: f64 = window.iter().sum();
            let mut out: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
            let admit = |e: f64, window: &mut std::collections::VecDeque<f64>, sum: &mut f64| {
                if window.len() >= windows {
                    *sum -= window.pop_front().unwrap_or(0.0);
                }
                *sum += e;
                window.push_back(e);
            };
            for day in 0..days {
                let e = draw(rng) + shift;
                let b = window.len() as f64;
                let z = (e - sum / b) / (1.0 + 1.0 / b).sqrt();
                s = (s + z - k).max(0.0);
                if watch(day, z, s) {
                    return;
                }
                let mature = window.len() >= windows;
                match suspect_at {
                    Some(h) if mature && s >= h / 2.0 => {
                        out.push_back(e);
                        if out.len() > SUSPECT_DAYS {
                            let back = out.pop_front().unwrap_or(0.0);
                            admit(back, &mut window, &mut sum);
                        }
                    }
                    _ => {
                        while let Some(back) = out.pop_front() {
                            admit(back, &mut window, &mut sum);
                        }
                        admit(e, &mut window, &mut sum);
                    }
                }
            }
        }
        Scheme::Fixed(shared) => {
            // In a day's standard errors the baseline's error has variance n / nb.
            let shared = shared.clamp(0.0, 0.999);
            let ratio = shared / (1.0 - shared);
            let offset = ratio.sqrt() * normal(rng);
            let scale = (1.0 + ratio).sqrt();
            for day in 0..days {
                let z = (draw(rng) + shift - offset) / scale;
                s = (s + z - k).max(0.0);
                if watch(day, z, s) {
                    return;
                }
            }
        }
    }
}

/// The level one CUSUM (slack `k`) of stable days passes within [`HORIZON_DAYS`] with
/// probability at most `p`: the (1 - p) quantile of the simulated paths' maxima, the baseline
/// kept as the analyse stage keeps it (suspect days out at half of `suspect_at`).
fn level(
    k: f64,
    p: f64,
    scheme: Scheme,
    suspect_at: Option<f64>,
    rng: &mut SplitMix64,
    draw: &mut dyn FnMut(&mut SplitMix64) -> f64,
) -> f64 {
    let mut maxima: Vec<f64> = (0..PATHS)
        .map(|_| {
            let mut max = 0.0f64;
            walk(
                k,
                scheme,
                suspect_at,
                (HORIZON_DAYS, 0.0),
                rng,
                draw,
                &mut |_, _, s| {
                    max = max.max(s);
                    false
                },
            );
            max
        })
        .collect();
    maxima.sort_by(f64::total_cmp);
    let at = (((1.0 - p) * PATHS as f64).ceil() as usize).min(PATHS - 1);
    maxima[at]
}

/// The level of normal days, computed once per (k, p, scheme).
pub fn gaussian_level(k: f64, p: f64, scheme: Scheme) -> f64 {
    type Memo = Mutex<HashMap<(u64, u64, i64), f64>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let key = (k.to_bits(), p.to_bits(), scheme.key());
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(h) = memo.lock().ok().and_then(|m| m.get(&key).copied()) {
        return h;
    }
    let mut rng = SplitMix64::new(0x5EED_CA5A);
    // Twice the paths: this level is the floor of every other. The suspect days depend on the
    // level itself: one more round, from the level without them.
    let mut run = |suspect_at: Option<f64>| {
        (0..2)
            .map(|_| level(k, p, scheme, suspect_at, &mut rng, &mut normal))
            .sum::<f64>()
            / 2.0
    };
    let mut h = run(None);
    if matches!(scheme, Scheme::Rolling { .. }) {
        h = run(Some(h));
    }
    if let Ok(mut m) = memo.lock() {
        m.insert(key, h);
    }
    h
}

/// The baseline's share of the variance of a day's difference: `nc / (nc + nb)` (both sides
/// with the baseline's variance).
pub fn baseline_share(n: usize, n_baseline: usize) -> f64 {
    if n + n_baseline == 0 {
        return 0.0;
    }
    n as f64 / (n + n_baseline) as f64
}

/// The decision levels of a metric's CUSUM for drops and for rises, for a day of `n` values
/// against `baseline` (sorted or not), each passed by a stable metric within 30 days with
/// probability at most `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub down: f64,
    pub up: f64,
}

pub fn levels(baseline: &[f64], n: usize, k: f64, p: f64, scheme: Scheme, seed: u64) -> Levels {
    let floor = gaussian_level(k, p, scheme);
    let spread = moments(baseline).1;
    if n > NORMAL_PAST || baseline.len() < 2 || n == 0 || spread <= 0.0 {
        return Levels {
            down: floor,
            up: floor,
        };
    }
    let mut rng = SplitMix64::new(seed);
    let days = stable_days(baseline, n, &mut rng);
    let pick = |sign: f64| {
        let days = &days;
        move |r: &mut SplitMix64| sign * days[r.index(days.len())]
    };
    let down = level(k, p, scheme, Some(floor), &mut rng, &mut pick(-1.0));
    // Rises never make a day suspect.
    let up = level(k, p, scheme, None, &mut rng, &mut pick(1.0));
    Levels {
        down: down.max(floor),
        up: up.max(floor),
    }
}

/// The two-sided normal quantile for `alpha` (Acklam's rational approximation of the inverse
/// normal CDF, relative error < 1.2e-9).
pub fn z_two_sided(alpha: f64) -> f64 {
    inverse_normal(1.0 - alpha / 2.0)
}

pub fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inverse_normal(1.0 - p)
    }
}

/// What the monitor holds a metric to, for [`mde`] and [`detected_within`].
#[derive(Debug, Clone, Copy)]
pub struct Monitor {
    /// The standard error of a day's mean difference.
    pub se: f64,
    /// CUSUM slack and decision level, in standard errors.
    pub k: f64,
    pub h: f64,
    /// The per-day test: two-sided `alpha` and a least effect.
    pub alpha: f64,
    pub min_effect: f64,
    /// How the baseline is kept ([`Scheme::of`]).
    pub scheme: Scheme,
}

impl Monitor {
    /// The standard error of a day of `n` values against a baseline of `n_baseline`, both with
    /// the baseline's variance.
    pub fn standard_error(variance: f64, n: usize, n_baseline: usize) -> f64 {
        if n == 0 || n_baseline == 0 {
            return f64::INFINITY;
        }
        (variance / n as f64 + variance / n_baseline as f64).sqrt()
    }
}

impl Monitor {
    /// A day's standard error of its mean, `sd / sqrt(n)`, from the difference's.
    fn day_se(&self) -> f64 {
        let ratio = match self.scheme {
            Scheme::Rolling { held, .. } => 1.0 / held.max(1) as f64,
            Scheme::Fixed(shared) => {
                let shared = shared.clamp(0.0, 0.999);
                shared / (1.0 - shared)
            }
        };
        self.se / (1.0 + ratio).sqrt()
    }
}

/// The share of simulated paths in which a sustained drop of `shift` standard errors of a day's
/// mean starting today is caught within `days` days, by the CUSUM (slack `k`, level `h`) or by
/// the per-day test (a day's z past `per_day`), the baseline kept as the analyse stage keeps it.
/// The same seeded draws for every shift, so the share grows with it.
fn caught_share(
    shift: f64,
    (k, h, per_day, scheme): (f64, f64, f64, Scheme),
    days: usize,
    seed: u64,
) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let mut caught = 0;
    for _ in 0..MDE_PATHS {
        let mut seen = false;
        // Every path draws all its days, so each shift meets the same draws.
        walk(
            k,
            scheme,
            Some(h),
            (days, shift),
            &mut rng,
            &mut normal,
            &mut |_, z, s| {
                seen |= s > h || z > per_day;
                false
            },
        );
        caught += usize::from(seen);
    }
    caught as f64 / MDE_PATHS as f64
}

/// The z at which the per-day mean test alerts: two-sided at `alpha`, and at least the least
/// effect.
fn per_day_z(monitor: &Monitor) -> f64 {
    z_two_sided(monitor.alpha).max(monitor.min_effect / monitor.se)
}

/// The share of simulated paths in which a sustained drop of `delta` (in the metric's units) is
/// caught within `days` days.
pub fn detected_within(monitor: &Monitor, delta: f64, days: usize, seed: u64) -> f64 {
    if !(monitor.se.is_finite() && monitor.se > 0.0) {
        return 0.0;
    }
    caught_share(
        delta / monitor.day_se(),
        (monitor.k, monitor.h, per_day_z(monitor), monitor.scheme),
        days,
        seed,
    )
}

/// The smallest sustained drop in standard errors of a day's mean caught within `days` with
/// probability [`POWER`], to 1%; memoised on (k, h, per-day z) rounded to 0.05 and the scheme,
/// so the days and models of an analysis share the simulations.
fn mde_z(k: f64, h: f64, per_day: f64, scheme: Scheme, days: usize) -> Option<f64> {
    type Key = (i64, i64, i64, i64, usize);
    static MEMO: OnceLock<Mutex<HashMap<Key, Option<f64>>>> = OnceLock::new();
    let round = |v: f64| ((v * 20.0).round() * 5.0) as i64;
    // The per-day test's z on a 5% log grid: it moves with every day's standard error.
    let per_day_step = (per_day.clamp(1e-3, 1e6).ln() * 20.0).round() as i64;
    let key = (round(k), round(h), per_day_step, scheme.key(), days);
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = memo.lock().ok().and_then(|m| m.get(&key).copied()) {
        return found;
    }
    let back = |v: i64| v as f64 / 100.0;
    let held = (
        back(key.0),
        back(key.1),
        (per_day_step as f64 / 20.0).exp(),
        scheme,
    );
    let seed = 0x004D_4445_u64 ^ days as u64;
    let caught = |shift: f64| caught_share(shift, held, days, seed) >= POWER;
    let (mut lo, mut hi) = (0.0, 1.0);
    let mut found = None;
    while hi < 1e4 {
        if caught(hi) {
            found = Some(());
            break;
        }
        lo = hi;
        hi *= 2.0;
    }
    let result = found.map(|()| {
        while hi - lo > 0.01 * hi {
            let mid = (lo + hi) / 2.0;
            if caught(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    });
    if let Ok(mut m) = memo.lock() {
        m.insert(key, result);
    }
    result
}

/// The smallest sustained drop (in the metric's units) caught within `days` days with
/// probability [`POWER`]; `None` when the standard error is not finite.
pub fn mde(monitor: &Monitor, days: usize) -> Option<f64> {
    if !(monitor.se.is_finite() && monitor.se > 0.0) {
        return None;
    }
    mde_z(
        monitor.k,
        monitor.h,
        per_day_z(monitor),
        monitor.scheme,
        days,
    )
    .map(|z| z * monitor.day_se())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaussian_level_holds_the_stated_false_alert_rate() {
        // Page's CUSUM with k = 0.5 on N(0, 1): h about 4.3 gives a 30-day false-alarm chance
        // near 10% (ARL ~ 300); check by an independent simulation.
        let (k, p) = (0.5, 0.1);
        let h = gaussian_level(k, p, Scheme::Fixed(0.0));
        assert!(h > 3.0 && h < 6.0, "{h}");
        let mut rng = SplitMix64::new(99);
        let runs = 20_000;
        let mut alarms = 0;
        for _ in 0..runs {
            let mut s = 0.0f64;
            for _ in 0..HORIZON_DAYS {
                s = (s + normal(&mut rng) - k).max(0.0);
                if s > h {
                    alarms += 1;
                    break;
                }
            }
        }
        let rate = alarms as f64 / runs as f64;
        assert!((rate - p).abs() < 0.015, "{rate} for {p}");
    }

    #[test]
    fn a_skewed_baseline_raises_the_level_for_drops() {
        // Scores mostly 1.0 with rare 0.0: a small day's mean has a long lower tail (one 0 in
        // 20 is 1.8 standard errors down, two are 4).
        let baseline: Vec<f64> = (0..1000)
            .map(|i| if i % 100 == 0 { 0.0 } else { 1.0 })
            .collect();
        let scheme = Scheme::of(Some(7), 20, 1000);
        assert_eq!(
            scheme,
            Scheme::Rolling {
                held: 7,
                windows: 7
            }
        );
        let l = levels(&baseline, 20, 0.5, 0.02, scheme, 7);
        let floor = gaussian_level(0.5, 0.02, scheme);
        assert!(l.down > floor, "{l:?} vs {floor}");
        assert!(l.up >= floor);
        // No spread at all: the floor.
        let flat = vec![1.0; 1000];
        assert_eq!(levels(&flat, 20, 0.5, 0.02, scheme, 7).down, floor);
        // A pinned baseline estimated from few values raises the level: its error repeats every
        // day. A rolling one of a week costs much less: each day's error leaves after a week.
        let fixed = gaussian_level(0.5, 0.02, Scheme::Fixed(0.5));
        let week = gaussian_level(
            0.5,
            0.02,
            Scheme::Rolling {
                held: 7,
                windows: 7,
            },
        );
        let exact = gaussian_level(0.5, 0.02, Scheme::Fixed(0.0));
        assert!(fixed > 2.0 * exact, "{fixed} {exact}");
        assert!(week < 1.5 * exact && week > 0.75 * exact, "{week} {exact}");
    }

    #[test]
    fn the_mde_is_caught_at_the_stated_power() {
        let monitor = Monitor {
            se: 0.02,
            k: 0.5,
            h: gaussian_level(0.5, 0.02, Scheme::Fixed(0.0)),
            alpha: 0.01,
            min_effect: 0.05,
            scheme: Scheme::Fixed(0.0),
        };
        let one = mde(&monitor, 1).unwrap();
        let three = mde(&monitor, 3).unwrap();
        let seven = mde(&monitor, 7).unwrap();
        assert!(one > three && three > seven, "{one} {three} {seven}");
        // Checked with other draws than the ones it was found with.
        for (days, m) in [(1, one), (3, three), (7, seven)] {
            let rate = detected_within(&monitor, m, days, 12345);
            assert!((rate - POWER).abs() < 0.04, "{days}d: {rate}");
        }
        // One day: the per-day test (z 2.576 or min-effect) binds: 0.05 / 0.02 = 2.5 < 2.576.
        let expected = 0.02 * (z_two_sided(0.01) + inverse_normal(POWER));
        assert!(
            (one - expected).abs() < 0.03 * expected,
            "{one} vs {expected}"
        );
    }

    #[test]
    fn inverse_normal_matches_known_quantiles() {
        assert!((inverse_normal(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((inverse_normal(0.8) - 0.841_621_233_572_914_3).abs() < 1e-8);
        assert!((inverse_normal(0.005) + 2.575_829_303_548_901).abs() < 1e-8);
    }
}
