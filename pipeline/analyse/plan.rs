//! `evalwatch plan`: how many judgments a model needs a day for the monitor to catch a given
//! sustained drop within a given number of days, and what they cost with the configured judge.
//! It joins the judge budget to what the monitor can see.
//!
//! Reads: `scores/` of the configured rubric and judge and `captures/` for the window: per
//! model the metric's variance, how many were judged a day, the judge's recorded cost per
//! judgment, the mean prompt and reply sizes (for a cost estimate where none was recorded).
//! Writes: nothing. Never does: call the judge.
//!
//! The minimum detectable drop at `n` judged a day is [`super::sequential::mde`] for a rolling
//! baseline of `baseline-days` windows of `n` each (its level the Gaussian one of the model's
//! metric count, its per-day test `alpha-alert` and `min-effect`); the needed `n` is the smallest
//! whose drop is at most `--detect`, found by bisection (the drop falls as `n` grows). Below
//! `sequential-min-effect` no `n` is enough: the CUSUM is built not to add up smaller drops.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::drift;
use super::load::{self, Data, LoadError};
use super::sequential;
use crate::config::{AnalyseSettings, DateRange, JudgeSettings};
use crate::judge::protocol;
use crate::rubric::Rubric;
use crate::warehouse::Warehouse;

/// The most judgments a day `plan` considers.
const MOST_PER_DAY: u64 = 1_000_000;

/// What to plan for.
#[derive(Debug, Clone)]
pub struct PlanJob {
    pub rubric: Rubric,
    pub judge: JudgeSettings,
    /// The days whose scores give each model's variance and volume.
    pub window: DateRange,
    pub settings: AnalyseSettings,
    /// The sustained drop to catch (the metric's units, 0..1), and within how many days.
    pub detect: f64,
    pub within_days: usize,
    /// `composite` or a dimension of the rubric.
    pub metric: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("`{metric}` is not `composite` nor a dimension of rubric {rubric} ({dimensions})")]
    Metric {
        metric: String,
        rubric: String,
        dimensions: String,
    },
    #[error("--within must be 1 to 30 days, not {0}")]
    Within(usize),
    #[error("--detect must be a drop in (0, 1) of the 0..1 scale, not {0}")]
    Detect(f64),
}

/// One model's plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelPlan {
    pub model: String,
    /// Days of the window with judgments, and the mean judged a day on them.
    pub days: usize,
    pub judged_per_day: f64,
    /// The metric's standard deviation over the window's judgments.
    pub sd: f64,
    /// The smallest drop the monitor catches within `within_days` at today's volume.
    pub detectable_now: Option<f64>,
    /// Judgments a day needed to catch `detect` within `within_days` (80% power); `None` when no
    /// volume up to a million a day is enough.
    pub needed_per_day: Option<u64>,
    pub cost_per_judgment_usd: Option<f64>,
    pub cost_per_day_usd: Option<f64>,
    pub cost_per_30_days_usd: Option<f64>,
    /// Why no figure, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanSummary {
    pub detect: f64,
    pub within_days: usize,
    pub metric: String,
    pub rubric: String,
    pub judge: String,
    pub window: String,
    /// Where the cost per judgment comes from: `recorded` (the judge's reported usage on the
    /// window's scores), `estimated` (its prices and the captures' sizes), `free` (offline), or
    /// `unknown` (no prices).
    pub cost_source: String,
    pub power: f64,
    pub models: Vec<ModelPlan>,
}

/// The smallest sustained drop caught within `days` at `n` judged a day, for a metric of
/// `variance` monitored among `can_alert` metrics.
pub fn detectable_at(
    settings: &AnalyseSettings,
    variance: f64,
    n: u64,
    can_alert: usize,
    days: usize,
) -> Option<f64> {
    let n = n as usize;
    let nb = n * settings.baseline_windows();
    let monitor = drift::monitor(settings, variance, (n, nb), None, can_alert);
    sequential::mde(&monitor, days)
}

/// The fewest judgments a day whose detectable drop within `days` is at most `detect`.
pub fn needed_per_day(
    settings: &AnalyseSettings,
    variance: f64,
    detect: f64,
    can_alert: usize,
    days: usize,
) -> Option<u64> {
    let ok =
        |n: u64| detectable_at(settings, variance, n, can_alert, days).is_some_and(|m| m <= detect);
    if !ok(MOST_PER_DAY) {
        return None;
    }
    let (mut lo, mut hi) = (1u64, MOST_PER_DAY);
    if ok(lo) {
        return Some(lo);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Plans every model with judgments in the window.
pub async fn plan(job: PlanJob, warehouse: &Warehouse) -> Result<PlanSummary, PlanError> {
    if !(1..=sequential::HORIZON_DAYS).contains(&job.within_days) {
        return Err(PlanError::Within(job.within_days));
    }
    if !(job.detect > 0.0 && job.detect < 1.0) {
        return Err(PlanError::Detect(job.detect));
    }
    let names: Vec<String> = job
        .rubric
        .dimensions
        .iter()
        .map(|d| d.name.clone())
        .collect();
    if job.metric != "composite" && !names.contains(&job.metric) {
        return Err(PlanError::Metric {
            metric: job.metric.clone(),
            rubric: job.rubric.key(),
            dimensions: names.join(", "),
        });
    }
    let judge = crate::judge::id_of(&job.judge);
    let days: BTreeSet<_> = super::window_days(job.window).collect();
    let mut data = Data::new();
    load::load_scores(warehouse, &job.rubric, &judge, &days, false, &mut data).await?;
    load::load_captures(warehouse, &days, &mut data).await?;

    let mut by_model: BTreeMap<&String, Vec<&load::DayData>> = BTreeMap::new();
    for ((model, _), day) in &data {
        by_model.entry(model).or_default().push(day);
    }
    // The metrics whose CUSUM can alert: the dimensions and the composite.
    let can_alert = names.len() + 1;
    let prompting = protocol::Prompting::new(&job.rubric);
    let mut sources = BTreeSet::new();
    let mut models = Vec::new();
    for (model, days) in by_model {
        let values: Vec<f64> = days
            .iter()
            .flat_map(|d| {
                if job.metric == "composite" {
                    d.composite.clone()
                } else {
                    d.scores.get(&job.metric).cloned().unwrap_or_default()
                }
            })
            .collect();
        let judged_days = days.iter().filter(|d| !d.composite.is_empty()).count();
        if values.len() < 2 || judged_days == 0 {
            continue;
        }
        let (_, variance, _) = sequential::moments(&values);
        let judged_per_day = values.len() as f64 / judged_days as f64;
        let mean = |f: fn(&load::DayData) -> &Vec<f64>| {
            let all: Vec<f64> = days.iter().flat_map(|d| f(d).iter().copied()).collect();
            (!all.is_empty()).then(|| all.iter().sum::<f64>() / all.len() as f64)
        };
        let spent: f64 = days.iter().map(|d| d.judge_cost_usd).sum();
        let judged: usize = days.iter().map(|d| d.composite.len()).sum();
        let (cost, source) = if spent > 0.0 && judged > 0 {
            (Some(spent / judged as f64), "recorded")
        } else if job.judge.kind == crate::config::JudgeKind::Offline {
            (Some(0.0), "free")
        } else if let Some(prices) = job.judge.prices {
            let prompt = "x".repeat(mean(|d| &d.prompt_chars).unwrap_or(0.0) as usize);
            let response = "x".repeat(mean(|d| &d.response_chars).unwrap_or(0.0) as usize);
            let input =
                prompting.estimate_input_tokens(&protocol::user_text(&prompt, &response, None));
            (
                Some(prices.cost(input, protocol::estimate_output_tokens(&job.rubric))),
                "estimated",
            )
        } else {
            (None, "unknown")
        };
        sources.insert(source);
        let needed = needed_per_day(
            &job.settings,
            variance,
            job.detect,
            can_alert,
            job.within_days,
        );
        let note = needed.is_none().then(|| {
            if job.detect < job.settings.sequential_min_effect {
                format!(
                    "below `analyse.sequential-min-effect` ({}): the CUSUM is built not to add up \
                     smaller drops",
                    job.settings.sequential_min_effect
                )
            } else {
                format!("more than {MOST_PER_DAY} judgments a day")
            }
        });
        let per_day = match (needed, cost) {
            (Some(n), Some(c)) => Some(n as f64 * c),
            _ => None,
        };
        models.push(ModelPlan {
            model: model.clone(),
            days: judged_days,
            judged_per_day,
            sd: variance.sqrt(),
            detectable_now: detectable_at(
                &job.settings,
                variance,
                judged_per_day.round().max(1.0) as u64,
                can_alert,
                job.within_days,
            ),
            needed_per_day: needed,
            cost_per_judgment_usd: cost,
            cost_per_day_usd: per_day,
            cost_per_30_days_usd: per_day.map(|c| 30.0 * c),
            note,
        });
    }
    Ok(PlanSummary {
        detect: job.detect,
        within_days: job.within_days,
        metric: job.metric,
        rubric: job.rubric.key(),
        judge,
        window: job.window.to_string(),
        cost_source: sources.into_iter().collect::<Vec<_>>().join(", "),
        power: sequential::POWER,
        models,
    })
}

/// What a dry run's plan lets the monitor see for one model: at the planned judgments a day,
/// the smallest sustained drop of the composite caught within 1, 3 and 7 days.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlannedSensitivity {
    pub model: String,
    pub judged_per_day: f64,
    pub within_1d: Option<f64>,
    pub within_3d: Option<f64>,
    pub within_7d: Option<f64>,
    /// The judgments whose spread it rests on (the composites of `history`).
    pub spread_from: usize,
}

/// For `score --dry-run`: per model of its plan, at the plan's judgments a day (the sampled
/// captures of its days), the drops the monitor would see, from the spread of the model's
/// composite in the judgments of the two weeks before the plan and of its own days (when judged
/// before). A model with no earlier judgments is left out: there is no spread to go on.
pub async fn planned_sensitivity(
    warehouse: &Warehouse,
    rubric: &Rubric,
    settings: &AnalyseSettings,
    dry_run: &crate::score::ScoreSummary,
) -> Result<Vec<PlannedSensitivity>, PlanError> {
    let (Some(first), Some(last)) = (
        dry_run.plan.iter().map(|p| p.date).min(),
        dry_run.plan.iter().map(|p| p.date).max(),
    ) else {
        return Ok(Vec::new());
    };
    // Per model: captures sampled, and the days they fall on.
    let mut planned: BTreeMap<&String, (u64, BTreeSet<chrono::NaiveDate>)> = BTreeMap::new();
    for p in &dry_run.plan {
        let entry = planned.entry(&p.model).or_default();
        entry.0 += p.sampled;
        entry.1.insert(p.date);
    }
    let history = DateRange {
        since: first - chrono::Days::new(14),
        until: last,
    };
    let days: BTreeSet<_> = super::window_days(history).collect();
    let mut data = Data::new();
    load::load_scores(warehouse, rubric, &dry_run.judge, &days, false, &mut data).await?;
    let can_alert = rubric.dimensions.len() + 1;
    let mut out = Vec::new();
    for (model, (sampled, on)) in planned {
        let per_day = sampled as f64 / on.len().max(1) as f64;
        let values: Vec<f64> = data
            .iter()
            .filter(|((m, _), _)| m == model)
            .flat_map(|(_, d)| d.composite.iter().copied())
            .collect();
        if values.len() < 2 || per_day < 1.0 {
            continue;
        }
        let (_, variance, _) = sequential::moments(&values);
        let n = per_day.round() as u64;
        let at = |days| detectable_at(settings, variance, n, can_alert, days);
        out.push(PlannedSensitivity {
            model: model.clone(),
            judged_per_day: per_day,
            within_1d: at(1),
            within_3d: at(3),
            within_7d: at(7),
            spread_from: values.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_judgments_see_smaller_drops_and_the_plan_meets_its_target() {
        let settings = crate::config::load(None).unwrap().analyse;
        // A composite with sd 0.2 (variance 0.04), four metrics that can alert.
        let at = |n| detectable_at(&settings, 0.04, n, 4, 3).unwrap();
        assert!(
            at(50) > at(150) && at(150) > at(1000),
            "{} {} {}",
            at(50),
            at(150),
            at(1000)
        );
        let n = needed_per_day(&settings, 0.04, 0.03, 4, 3).unwrap();
        assert!(
            at(n) <= 0.03 && at(n - 1) > 0.03,
            "{n}: {} {}",
            at(n),
            at(n - 1)
        );
        // Below the CUSUM's least effect nothing is enough.
        assert_eq!(needed_per_day(&settings, 0.04, 0.005, 4, 3), None);
    }
}
