//! The sensitivity benchmark: how fast evalwatch's analyse catches a sustained drop of quality,
//! how often it cries wolf, and whether the minimum detectable drop it states holds, against the
//! per-day test at p < 0.05 (Evidently's default for a numeric column: two-sample KS against the
//! reference) and 3-sigma bands on the daily mean (NannyML's default thresholds), on the same
//! simulated series.
//!
//!     cargo run --release --example sensitivity [-- --reps 200]
//!
//! A series is one model's daily judged scores (0..1 on a 1-5 rubric: levels 0, .25, .5, .75, 1
//! with shares 2, 3, 8, 27, 60%: mean 0.85, sd 0.23, as judged chat replies look). From day 30
//! each score moves one level down with the probability that lowers the mean by `delta` (a share
//! of the traffic answered worse). evalwatch runs its analyse decisions day after day
//! (`analyse::replay`: rolling 7-day baseline with its exclusions, per-day tests, CUSUMs, default
//! settings but `bootstrap-resamples = 0`, the normal interval, for speed). Evidently's test
//! compares each day with the 7 days before it; NannyML's bands are the mean of the first 30
//! days' daily means +- 3 of their standard deviations. Seeded: the same table every run.

use evalwatch::analyse::load::DayData;
use evalwatch::analyse::stats::{self, SplitMix64};
use evalwatch::analyse::{self, drift::DriftRow};

const STABLE: usize = 30;
const CHANGED: usize = 7;
const QUIET_DAYS: usize = 100;
const LEVELS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
const SHARES: [f64; 5] = [0.02, 0.03, 0.08, 0.27, 0.60];

fn uniform(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// One day of `n` scores; each moved one level down with probability `down`.
fn day(n: usize, down: f64, rng: &mut SplitMix64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u = uniform(rng);
            let mut at = 0;
            let mut cumulative = SHARES[0];
            while u > cumulative && at < 4 {
                at += 1;
                cumulative += SHARES[at];
            }
            if at > 0 && uniform(rng) < down {
                at -= 1;
            }
            LEVELS[at]
        })
        .collect()
}

/// The probability of moving down one level that lowers the mean by `delta`.
fn down_for(delta: f64) -> f64 {
    delta / (0.25 * (1.0 - SHARES[0]))
}

fn series(n: usize, days: usize, change_from: usize, delta: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = SplitMix64::new(seed);
    (0..days)
        .map(|d| {
            let down = if d >= change_from {
                down_for(delta)
            } else {
                0.0
            };
            let mut v = day(n, down, &mut rng);
            v.sort_by(f64::total_cmp);
            v
        })
        .collect()
}

fn day_data(values: &[f64]) -> DayData {
    let mut d = DayData::default();
    d.scores.insert("quality".into(), values.to_vec());
    d.composite = values.to_vec();
    d.judge_error = vec![0.0; values.len()];
    d.requests = values.len() as u64;
    d
}

/// The days (indexes) each method alerts on, and evalwatch's stated 3-day minimum detectable
/// drop of the composite on the last stable day.
struct Verdicts {
    evalwatch: Vec<bool>,
    /// evalwatch's alerts from its CUSUM alone, and from its per-day tests alone.
    cusum: Vec<bool>,
    per_day: Vec<bool>,
    evidently: Vec<bool>,
    nannyml: Vec<bool>,
    mde_3d: Option<f64>,
}

fn judge(days: &[Vec<f64>], settings: &evalwatch::config::AnalyseSettings) -> Verdicts {
    let replayed = analyse::replay(days.iter().map(|d| day_data(d)).collect(), settings);
    let alerted = |rows: &[DriftRow], which: &dyn Fn(&str) -> bool| {
        rows.iter()
            .any(|r| r.metric.starts_with("score.") && r.verdict == "alert" && which(r.test))
    };
    let evalwatch: Vec<bool> = replayed
        .iter()
        .map(|(rows, _)| alerted(rows, &|_| true))
        .collect();
    let cusum: Vec<bool> = replayed
        .iter()
        .map(|(rows, _)| alerted(rows, &|t| t.starts_with("cusum")))
        .collect();
    let per_day: Vec<bool> = replayed
        .iter()
        .map(|(rows, _)| alerted(rows, &|t| !t.starts_with("cusum")))
        .collect();
    let mde_3d = replayed
        .get(STABLE - 1)
        .and_then(|(_, a)| a.mde.get("composite").and_then(|m| m[1]));
    let evidently = (0..days.len())
        .map(|d| {
            if d < 7 {
                return false;
            }
            let mut reference: Vec<f64> = days[d - 7..d].concat();
            reference.sort_by(f64::total_cmp);
            stats::ks_2samp_sorted(&reference, &days[d]).1 < 0.05
        })
        .collect();
    let means: Vec<f64> = days.iter().map(|d| stats::mean(d)).collect();
    let reference = &means[..STABLE.min(means.len())];
    let (centre, spread) = (stats::mean(reference), stats::variance(reference).sqrt());
    let nannyml = means
        .iter()
        .enumerate()
        .map(|(d, m)| d >= STABLE && (m - centre).abs() > 3.0 * spread)
        .collect();
    Verdicts {
        evalwatch,
        cusum,
        per_day,
        evidently,
        nannyml,
        mde_3d,
    }
}

/// Runs `work` for every rep on two threads.
fn parallel<T: Send>(reps: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                scope.spawn(move || {
                    (t..reps)
                        .step_by(threads)
                        .map(|r| (r, work(r)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, T)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|(r, _)| *r);
        all.into_iter().map(|(_, t)| t).collect()
    })
}

/// Share of series caught within 3 days of the onset, and the median delay (days, 1 = the
/// onset day; series not caught within 7 count as later).
fn detection(alerts: &[Vec<bool>]) -> (f64, Option<usize>) {
    let mut delays: Vec<usize> = alerts
        .iter()
        .map(|a| {
            (STABLE..STABLE + CHANGED)
                .find(|d| a[*d])
                .map_or(usize::MAX, |d| d - STABLE + 1)
        })
        .collect();
    let within3 = delays.iter().filter(|d| **d <= 3).count();
    delays.sort_unstable();
    let median = delays
        .get(delays.len() / 2)
        .copied()
        .filter(|d| *d != usize::MAX);
    (within3 as f64 / alerts.len() as f64, median)
}

fn main() {
    let mut reps = 200;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reps") {
        reps = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(reps);
    }
    let mut settings = evalwatch::config::load(None)
        .expect("built-in config")
        .analyse;
    settings.bootstrap_resamples = 0;
    let started = std::time::Instant::now();
    let sizes = [50, 150, 500, 1000];
    let deltas = [0.01, 0.02, 0.03, 0.05, 0.07, 0.10];

    println!(
        "## Detection: share caught within 3 days (median delay in days, 1 = the onset day), {reps} series each\n"
    );
    println!(
        "| n/day | drop | evalwatch | per-day KS p<0.05 (Evidently) | 3-sigma bands (NannyML) |"
    );
    println!("|---|---|---|---|---|");
    for &n in &sizes {
        for &delta in &deltas {
            let runs = parallel(reps, |r| {
                let days = series(
                    n,
                    STABLE + CHANGED,
                    STABLE,
                    delta,
                    1_000_003 * r as u64 + n as u64,
                );
                judge(&days, &settings)
            });
            let cell = |pick: fn(&Verdicts) -> &Vec<bool>| {
                let alerts: Vec<Vec<bool>> = runs.iter().map(|v| pick(v).clone()).collect();
                let (share, median) = detection(&alerts);
                format!(
                    "{:.0}% ({})",
                    100.0 * share,
                    median.map_or("-".to_string(), |m| m.to_string())
                )
            };
            println!(
                "| {n} | {delta:.2} | {} | {} | {} |",
                cell(|v| &v.evalwatch),
                cell(|v| &v.evidently),
                cell(|v| &v.nannyml)
            );
        }
    }

    let quiet = reps / 4;
    println!(
        "\n## False alarms per 100 stable model-days: alarms (onsets) / days alerted (days 31-100 of {quiet} stable series of 100 days)\n"
    );
    println!(
        "| n/day | evalwatch | its CUSUM | its per-day tests | per-day KS p<0.05 (Evidently) | 3-sigma bands (NannyML) |"
    );
    println!("|---|---|---|---|---|---|");
    for &n in &sizes {
        let runs = parallel(quiet, |r| {
            let days = series(
                n,
                QUIET_DAYS,
                usize::MAX,
                0.0,
                7_000_001 * r as u64 + n as u64,
            );
            judge(&days, &settings)
        });
        // Alert days, and alarms (an alert day after a day without one).
        let rate = |pick: fn(&Verdicts) -> &Vec<bool>| {
            let (days_alerted, onsets, days) = runs.iter().fold((0, 0, 0), |(a, o, d), v| {
                let all = pick(v);
                let onsets = (STABLE..all.len())
                    .filter(|i| all[*i] && !all[*i - 3..*i].iter().any(|x| *x))
                    .count();
                let days = &all[STABLE..];
                (
                    a + days.iter().filter(|x| **x).count(),
                    o + onsets,
                    d + days.len(),
                )
            });
            format!(
                "{:.2} / {:.2}",
                100.0 * onsets as f64 / days as f64,
                100.0 * days_alerted as f64 / days as f64
            )
        };
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            rate(|v| &v.evalwatch),
            rate(|v| &v.cusum),
            rate(|v| &v.per_day),
            rate(|v| &v.evidently),
            rate(|v| &v.nannyml)
        );
    }

    println!("\n## The stated minimum detectable drop against the simulated detection rate\n");
    println!(
        "| n/day | stated 3-day MDE (median over series) | caught within 3 days at that drop | 95% margin of the simulation |"
    );
    println!("|---|---|---|---|");
    for &n in &sizes {
        let stated: Vec<f64> = parallel(reps.min(40), |r| {
            judge(
                &series(n, STABLE, usize::MAX, 0.0, 9_000_011 * r as u64 + n as u64),
                &settings,
            )
            .mde_3d
        })
        .into_iter()
        .flatten()
        .collect();
        let mut sorted = stated;
        sorted.sort_by(f64::total_cmp);
        let Some(mde) = sorted.get(sorted.len() / 2).copied() else {
            continue;
        };
        let runs = parallel(reps, |r| {
            let days = series(
                n,
                STABLE + CHANGED,
                STABLE,
                mde,
                5_000_011 * r as u64 + n as u64,
            );
            judge(&days, &settings)
        });
        let alerts: Vec<Vec<bool>> = runs.iter().map(|v| v.evalwatch.clone()).collect();
        let (share, _) = detection(&alerts);
        let margin = 1.96 * (0.8 * 0.2 / reps as f64).sqrt();
        println!(
            "| {n} | {mde:.4} | {:.0}% (stated 80%) | +-{:.0} points |",
            100.0 * share,
            100.0 * margin
        );
    }
    eprintln!("{:.0} s", started.elapsed().as_secs_f64());
}
