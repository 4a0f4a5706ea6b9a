//! The report stage: one self-contained page per run (`reports/<run-id>/index.html`: inline CSS
//! and SVG, no network, readable at 1280 px and on a phone), a short `summary.md` for a ticket or
//! a chat message, and `summary.json` for machines.
//!
//! Reads: `aggregates/` (the window and the 30 days before it, for the trends), `drift/` (the
//! window), `topics/` (the window: what users asked), `scores/` and `captures/` (the
//! worst-scoring replies of the window), `quarantine/`
//! (counts), the run's manifest when there is one.
//! Writes: `reports/<run-id>/{index.html,summary.md,summary.json}` in the warehouse.
//! Never does: show a prompt or reply without redacting e-mail addresses, phone, card and
//! account numbers and IP addresses ([`redact`]).

pub mod html;
pub use crate::redact;

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::analyse::{Periods, part_name};
use crate::config::{AlarmRule, DateRange};
use crate::rubric::{CompositeRule, Rubric};
use crate::schema;
use crate::table::{PartKey, read_key};
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
}

/// Days of history the trend charts show before the window.
pub const TREND_DAYS: u64 = 30;

/// Worst-scoring replies shown per model.
pub const WORST: usize = 5;

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportJob {
    pub run_id: String,
    pub rubric: Rubric,
    pub judge: String,
    pub window: DateRange,
    pub window_days: u32,
    pub config_hash: String,
    pub config_origin: String,
    /// Threshold lines: the alarm rules.
    pub alarms: Vec<AlarmRule>,
    /// Whether a telemetry source is configured (the page says so when not).
    pub telemetry: bool,
    /// The run's stages so far: (stage, seconds, status).
    pub stages: Vec<(String, f64, String)>,
    /// Model -> its team (`[cost.models.<m>] team`).
    pub teams: BTreeMap<String, String>,
}

impl ReportJob {
    pub fn from_config(
        config: &crate::config::Config,
        rubric: Rubric,
        window: DateRange,
        run_id: &str,
    ) -> ReportJob {
        ReportJob {
            run_id: run_id.to_string(),
            rubric,
            judge: crate::judge::id_of(&config.judge),
            window,
            window_days: config.analyse.window_days,
            config_hash: config.hash.clone(),
            config_origin: config.origin.clone(),
            alarms: config.publish.alarms.clone(),
            telemetry: config.telemetry.source != crate::config::TelemetrySource::None,
            stages: Vec::new(),
            teams: config.cost.teams.clone(),
        }
    }
}

/// One aggregates row: column -> value (nulls absent).
pub type Row = BTreeMap<String, f64>;

/// One drift row worth showing (not `ok`).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub date: NaiveDate,
    pub metric: String,
    /// The tests that agreed on this metric that window, the deciding one first.
    pub test: String,
    pub statistic: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub current_mean: Option<f64>,
    pub baseline_mean: Option<f64>,
    pub verdict: String,
    pub pattern: String,
}

/// How well the judge agreed with people on one dimension, when it was last calibrated.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub n: u64,
    pub kappa_quadratic: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub calibrated_at: String,
}

/// The calibration of `judge` for `rubric` (same hash), per dimension; empty when there is none.
pub async fn calibration(
    warehouse: &Warehouse,
    rubric: &Rubric,
    judge: &str,
) -> Result<BTreeMap<String, Calibration>, ReportError> {
    use schema::calibration as c;
    let key = format!(
        "{}/rubric={}/{}",
        c::TABLE,
        rubric.key(),
        crate::score::current::part_name(judge)
    );
    let columns = [
        (c::RUBRIC_HASH, DataType::String),
        (c::JUDGE, DataType::String),
        (c::DIMENSION, DataType::String),
        (c::N, DataType::Float64),
        (c::KAPPA_QUADRATIC, DataType::Float64),
        (c::KAPPA_QUADRATIC_LOW, DataType::Float64),
        (c::KAPPA_QUADRATIC_HIGH, DataType::Float64),
        (c::CALIBRATED_AT, DataType::Int64),
    ];
    let mut out = BTreeMap::new();
    let Some(df) = read_key(warehouse, &key, &columns).await? else {
        return Ok(out);
    };
    for i in 0..df.height() {
        if text(&df, c::RUBRIC_HASH, i) != rubric.hash() || text(&df, c::JUDGE, i) != judge {
            continue;
        }
        let at = df
            .column(c::CALIBRATED_AT)
            .ok()
            .and_then(|col| col.i64().ok().and_then(|v| v.get(i)))
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| t.date_naive().to_string())
            .unwrap_or_default();
        out.insert(
            text(&df, c::DIMENSION, i),
            Calibration {
                n: number(&df, c::N, i).unwrap_or(0.0) as u64,
                kappa_quadratic: number(&df, c::KAPPA_QUADRATIC, i),
                low: number(&df, c::KAPPA_QUADRATIC_LOW, i),
                high: number(&df, c::KAPPA_QUADRATIC_HIGH, i),
                calibrated_at: at,
            },
        );
    }
    Ok(out)
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kappa_quadratic, self.low, self.high) {
            (Some(k), Some(l), Some(h)) => write!(
                f,
                "quadratic kappa {k:.2} [{l:.2}, {h:.2}], n={}, {}",
                self.n, self.calibrated_at
            ),
            (Some(k), _, _) => write!(
                f,
                "quadratic kappa {k:.2}, n={}, {}",
                self.n, self.calibrated_at
            ),
            _ => write!(f, "kappa undefined, n={}, {}", self.n, self.calibrated_at),
        }
    }
}

/// A window in which a metric's mean crossed an alarm threshold (`[[publish.alarms]]`): what
/// the CloudWatch alarm on it sees, shown even where drift saw nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Breach {
    pub date: NaiveDate,
    pub metric: String,
    pub value: f64,
    pub comparison: String,
    pub threshold: f64,
    pub severity: String,
}

/// Every calendar day of the windows starting in `window`.
fn days_of(periods: Periods, window: DateRange) -> Vec<NaiveDate> {
    periods
        .starts_in(window)
        .flat_map(|s| {
            let d = periods.days(s);
            d.since.iter_days().take_while(move |x| *x <= d.until)
        })
        .collect()
}

/// A capture on which a jury's members were two levels or more apart.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub date: NaiveDate,
    pub request_id: String,
    pub dimension: String,
    /// Member judge id -> level.
    pub members: BTreeMap<String, i64>,
}

/// Disagreeing captures shown per model.
pub const DISAGREEMENTS: usize = 5;

/// The first [`DISAGREEMENTS`] captures of `model` in the window whose jury members were two
/// levels or more apart, from the jury rows' `member_levels`.
async fn disagreements(
    warehouse: &Warehouse,
    job: &ReportJob,
    model: &str,
    days: &[NaiveDate],
) -> Result<Vec<Disagreement>, ReportError> {
    let mut out = Vec::new();
    if !job.judge.starts_with("jury:") {
        return Ok(out);
    }
    let columns = [
        (schema::scores::REQUEST_ID, DataType::String),
        (schema::scores::DIMENSION, DataType::String),
        (schema::scores::JUDGE, DataType::String),
        (schema::scores::MEMBER_LEVELS, DataType::String),
    ];
    let escaped = crate::util::partition_value(model);
    for &day in days {
        let prefix = format!(
            "scores/rubric={}/model={escaped}/date={day}/",
            job.rubric.key()
        );
        let keys = warehouse.list(&prefix).await?;
        for key in crate::score::current::current_parts(warehouse, &keys, &job.judge).await? {
            let Some(df) = read_key(warehouse, &key, &columns).await? else {
                continue;
            };
            for i in 0..df.height() {
                if out.len() >= DISAGREEMENTS {
                    return Ok(out);
                }
                if text(&df, schema::scores::JUDGE, i) != job.judge {
                    continue;
                }
                let Ok(members) = serde_json::from_str::<BTreeMap<String, i64>>(&text(
                    &df,
                    schema::scores::MEMBER_LEVELS,
                    i,
                )) else {
                    continue;
                };
                let (low, high) = (members.values().min(), members.values().max());
                if let (Some(low), Some(high)) = (low, high)
                    && high - low >= 2
                {
                    out.push(Disagreement {
                        date: day,
                        request_id: text(&df, schema::scores::REQUEST_ID, i),
                        dimension: text(&df, schema::scores::DIMENSION, i),
                        members,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The aggregates column an alarm rule's metric is read from, and the rule's operator.
fn alarm_column(rule: &crate::config::AlarmRule) -> Option<String> {
    let name = match rule.metric.as_str() {
        "composite_quality_score" => "composite",
        m => m.strip_suffix("_score")?,
    };
    Some(schema::dimension_mean(name))
}

fn breaches(rule: &crate::config::AlarmRule, value: f64) -> bool {
    match rule.comparison.as_str() {
        "LessThanThreshold" => value < rule.threshold,
        "LessThanOrEqualToThreshold" => value <= rule.threshold,
        "GreaterThanThreshold" => value > rule.threshold,
        _ => value >= rule.threshold,
    }
}

/// A reply that scored badly, redacted.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub date: NaiveDate,
    pub request_id: String,
    pub composite: f64,
    /// Dimension -> score.
    pub scores: BTreeMap<String, f64>,
    pub prompt: String,
    pub response: String,
}

/// Everything the page shows about one model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelReport {
    pub model: String,
    /// `alert`, `warn` or `ok`: the worst verdict of the window.
    pub status: String,
    /// Window start -> aggregates row, for the trend range.
    #[serde(skip)]
    pub trend: BTreeMap<NaiveDate, Row>,
    /// The window's totals and means.
    pub window: Row,
    /// Drift events of the window: one per (window, metric), the agreeing tests together.
    pub findings: Vec<Finding>,
    /// Alarm thresholds the window's means crossed.
    pub breaches: Vec<Breach>,
    /// A jury's captures whose members were two levels or more apart (the first few).
    pub disagreements: Vec<Disagreement>,
    pub worst: Vec<Example>,
    /// What the monitor could see on the window's last day: the smallest sustained drop of
    /// the composite caught within 1, 3 and 7 days with 80% power at its number judged.
    pub detectable: Option<Detectable>,
    /// What users asked on the window's last day with topics (the `topics` table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsPanel>,
}

/// The "What users asked" panel of a model: its prompts' topics on one window, with their
/// share over the windows of the same epoch (topic names mean the same within one).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopicsPanel {
    pub date: NaiveDate,
    pub epoch: NaiveDate,
    /// By share, largest first, the novel prompts last.
    pub topics: Vec<TopicLine>,
}

/// One topic of the panel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopicLine {
    pub topic: String,
    pub prompts: u64,
    pub share: f64,
    pub baseline_share: f64,
    pub composite_mean: Option<f64>,
    pub judge_error_rate: Option<f64>,
    pub cost_share: Option<f64>,
    pub top_terms: String,
    pub examples: Vec<String>,
    /// (window, share) over the window's days of the same epoch.
    pub trend: Vec<(NaiveDate, f64)>,
}

/// The topics panels of the window's models: the last window with topics, and the trend of
/// each topic's share over the windows of its epoch.
async fn topics_panels(
    warehouse: &Warehouse,
    periods: Periods,
    window: DateRange,
    suffix: &str,
) -> Result<BTreeMap<String, TopicsPanel>, ReportError> {
    let columns = [
        (schema::topics::MODEL, DataType::String),
        (schema::topics::EPOCH, DataType::Date),
        (schema::topics::TOPIC, DataType::String),
        (schema::topics::PROMPTS, DataType::Float64),
        (schema::topics::SHARE, DataType::Float64),
        (schema::topics::BASELINE_SHARE, DataType::Float64),
        (schema::topics::COMPOSITE_MEAN, DataType::Float64),
        (schema::topics::JUDGE_ERROR_RATE, DataType::Float64),
        (schema::topics::COST_SHARE, DataType::Float64),
        (schema::topics::TOP_TERMS, DataType::String),
        (schema::topics::EXAMPLES, DataType::String),
    ];
    // Per model: window start -> (epoch, lines).
    let mut by_model: BTreeMap<String, BTreeMap<NaiveDate, (NaiveDate, Vec<TopicLine>)>> =
        BTreeMap::new();
    for start in periods.starts_in(window) {
        let key = format!("{}/date={start}/{suffix}", schema::topics::TABLE);
        let Some(df) = read_key(warehouse, &key, &columns).await? else {
            continue;
        };
        let epochs = df
            .column(schema::topics::EPOCH)
            .and_then(|c| c.cast(&DataType::Int32))
            .map_err(|e| crate::table::PartError::Read {
                key: key.clone(),
                message: e.to_string(),
            })?;
        let epochs = epochs.i32().map_err(|e| crate::table::PartError::Read {
            key: key.clone(),
            message: e.to_string(),
        })?;
        for i in 0..df.height() {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
                + chrono::Duration::days(i64::from(epochs.get(i).unwrap_or(0)));
            let line = TopicLine {
                topic: text(&df, schema::topics::TOPIC, i),
                prompts: number(&df, schema::topics::PROMPTS, i).unwrap_or(0.0) as u64,
                share: number(&df, schema::topics::SHARE, i).unwrap_or(0.0),
                baseline_share: number(&df, schema::topics::BASELINE_SHARE, i).unwrap_or(0.0),
                composite_mean: number(&df, schema::topics::COMPOSITE_MEAN, i),
                judge_error_rate: number(&df, schema::topics::JUDGE_ERROR_RATE, i),
                cost_share: number(&df, schema::topics::COST_SHARE, i),
                top_terms: text(&df, schema::topics::TOP_TERMS, i),
                examples: serde_json::from_str(&text(&df, schema::topics::EXAMPLES, i))
                    .unwrap_or_default(),
                trend: Vec::new(),
            };
            by_model
                .entry(text(&df, schema::topics::MODEL, i))
                .or_default()
                .entry(start)
                .or_insert_with(|| (epoch, Vec::new()))
                .1
                .push(line);
        }
    }
    Ok(by_model
        .into_iter()
        .filter_map(|(model, windows)| {
            let (date, (epoch, mut lines)) =
                windows.iter().next_back().map(|(d, v)| (*d, v.clone()))?;
            for line in &mut lines {
                line.trend = windows
                    .iter()
                    .filter(|(_, (e, _))| *e == epoch)
                    .filter_map(|(d, (_, ls))| {
                        ls.iter()
                            .find(|l| l.topic == line.topic)
                            .map(|l| (*d, l.share))
                    })
                    .collect();
            }
            lines.retain(|l| l.prompts > 0 || l.baseline_share > 0.0);
            lines.sort_by(|a, b| {
                (a.topic == crate::analyse::embedding::NOVEL)
                    .cmp(&(b.topic == crate::analyse::embedding::NOVEL))
                    .then(b.share.total_cmp(&a.share))
            });
            Some((
                model,
                TopicsPanel {
                    date,
                    epoch,
                    topics: lines,
                },
            ))
        })
        .collect())
}

/// The minimum detectable drops of a model's composite on one window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Detectable {
    pub date: NaiveDate,
    pub judged: f64,
    pub within_1d: Option<f64>,
    pub within_3d: Option<f64>,
    pub within_7d: Option<f64>,
}

impl Detectable {
    /// "at 150 judged a day this monitor sees drops of the composite >= 0.040 within 3 days,
    /// >= 0.070 in one day, >= 0.030 within 7 days (80% power)".
    pub fn sentence(&self, window_days: u32) -> String {
        let per = if window_days == 1 {
            "a day".to_string()
        } else {
            format!("per {window_days}-day window")
        };
        let at = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!(">= {v:.3}"));
        let unit = if window_days == 1 { "days" } else { "windows" };
        format!(
            "at {:.0} judged {per} this monitor sees a sustained drop of the composite {} \
             within 3 {unit}, {} in one, {} within 7 (80% power; {})",
            self.judged,
            at(self.within_3d),
            at(self.within_1d),
            at(self.within_7d),
            self.date
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportSummary {
    pub run_id: String,
    pub window: String,
    pub rubric: String,
    pub rubric_hash: String,
    pub judge: String,
    pub config_hash: String,
    pub evalwatch_version: String,
    pub generated_at: String,
    pub models: Vec<ModelReport>,
    pub alerts: u64,
    pub warnings: u64,
    pub quarantined: u64,
    pub judge_errors: u64,
    /// The judge's latest calibration against people's labels for this exact rubric hash and
    /// judge, per dimension (`evalwatch calibrate`); empty: not calibrated.
    pub calibration: BTreeMap<String, Calibration>,
    /// Judgments waiting in Bedrock batch jobs (their scores come with the collecting run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_waiting: Option<crate::score::batch::Waiting>,
    /// Cost, judge cost and quality per team (`[cost.models.<m>] team`), when teams are set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamLine>,
    /// Where the files went.
    pub index: String,
    pub summary_md: String,
}

/// One team's models over the window: their totals, and quality per dollar.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeamLine {
    pub team: String,
    pub models: Vec<String>,
    pub requests: f64,
    pub judged: f64,
    pub cost_usd: Option<f64>,
    pub judge_cost_usd: Option<f64>,
    /// The models' composite means weighted by their judged captures.
    pub composite_mean: Option<f64>,
    /// Per 1,000 requests (the endpoint's invocations where telemetry has them).
    pub cost_per_1k_requests: Option<f64>,
    pub quality_per_dollar: Option<f64>,
}

/// The window's models grouped by team; models without one are left out.
fn team_lines(models: &[ModelReport], teams: &BTreeMap<String, String>) -> Vec<TeamLine> {
    let mut by_team: BTreeMap<&str, Vec<&ModelReport>> = BTreeMap::new();
    for m in models {
        if let Some(team) = teams.get(&m.model) {
            by_team.entry(team).or_default().push(m);
        }
    }
    by_team
        .into_iter()
        .map(|(team, members)| {
            let get = |m: &ModelReport, k: &str| m.window.get(k).copied();
            let sum = |k: &str| -> Option<f64> {
                let values: Vec<f64> = members.iter().filter_map(|m| get(m, k)).collect();
                (!values.is_empty()).then(|| values.iter().sum())
            };
            let requests = sum(schema::aggregates::REQUESTS).unwrap_or(0.0);
            let judged = sum(schema::aggregates::JUDGED).unwrap_or(0.0);
            let weighted: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|m| {
                    Some((
                        get(m, schema::aggregates::COMPOSITE_MEAN)?,
                        get(m, schema::aggregates::JUDGED)?,
                    ))
                })
                .collect();
            let weight: f64 = weighted.iter().map(|(_, w)| w).sum();
            let composite_mean =
                (weight > 0.0).then(|| weighted.iter().map(|(v, w)| v * w).sum::<f64>() / weight);
            let for_cost: f64 = members
                .iter()
                .map(|m| {
                    get(m, schema::aggregates::INVOCATIONS)
                        .or_else(|| get(m, schema::aggregates::REQUESTS))
                        .unwrap_or(0.0)
                })
                .sum();
            let cost_usd = sum(schema::aggregates::COST_USD);
            let cost_per_1k = cost_usd
                .filter(|_| for_cost > 0.0)
                .map(|c| c / (for_cost / 1000.0));
            TeamLine {
                team: team.to_string(),
                models: members.iter().map(|m| m.model.clone()).collect(),
                requests,
                judged,
                cost_usd,
                judge_cost_usd: sum(schema::aggregates::JUDGE_COST_USD),
                composite_mean,
                cost_per_1k_requests: cost_per_1k,
                quality_per_dollar: match (composite_mean, cost_per_1k) {
                    (Some(q), Some(c)) if c > 0.0 => Some(q / c),
                    _ => None,
                },
            }
        })
        .collect()
}

/// The f64 value of row `i` of `column` (any numeric type), `None` when null or absent.
fn number(df: &DataFrame, column: &str, i: usize) -> Option<f64> {
    df.column(column)
        .ok()?
        .cast(&DataType::Float64)
        .ok()?
        .f64()
        .ok()?
        .get(i)
        .filter(|v| v.is_finite())
}

fn text(df: &DataFrame, column: &str, i: usize) -> String {
    df.column(column)
        .ok()
        .and_then(|c| c.str().ok()?.get(i).map(str::to_string))
        .unwrap_or_default()
}

/// Runs the stage.
pub async fn report(job: ReportJob, warehouse: &Warehouse) -> Result<ReportSummary, ReportError> {
    let periods = Periods {
        len: job.window_days,
    };
    let window = periods.cover(job.window);
    let name = part_name(&job.rubric, &job.judge, job.window_days);
    let suffix = format!("part-{}.parquet", &name[..16]);
    let trend_since = window
        .since
        .checked_sub_days(Days::new(TREND_DAYS))
        .unwrap_or(window.since);

    // Aggregates of the trend range and the window.
    let mut columns: Vec<String> = [
        schema::aggregates::REQUESTS,
        schema::aggregates::JUDGED,
        schema::aggregates::JUDGE_ERRORS,
        schema::aggregates::SKIPPED_BUDGET,
        schema::aggregates::COMPOSITE_MEAN,
        schema::aggregates::COMPOSITE_PASS_RATE,
        schema::aggregates::COMPOSITE_MDE_1D,
        schema::aggregates::COMPOSITE_MDE_3D,
        schema::aggregates::COMPOSITE_MDE_7D,
        schema::aggregates::LATENCY_P50_MS,
        schema::aggregates::LATENCY_P99_MS,
        schema::aggregates::REFUSAL_RATE,
        schema::aggregates::JUDGE_COST_USD,
        schema::aggregates::INVOCATIONS,
        schema::aggregates::ERRORS_5XX,
        schema::aggregates::GPU_UTIL_MEAN,
        schema::aggregates::GPU_UTIL_P95,
        schema::aggregates::GPU_UTIL_AT_REQUESTS,
        schema::aggregates::GPU_MEM_MEAN,
        schema::aggregates::GPUS_ALLOCATED,
        schema::aggregates::COST_USD,
        schema::aggregates::COST_PER_1K_REQUESTS,
        schema::aggregates::COST_PER_1M_TOKENS,
        schema::aggregates::QUALITY_PER_DOLLAR,
        schema::aggregates::ALERTS,
        schema::aggregates::WARNINGS,
        schema::aggregates::JURY_DISAGREEMENTS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in &job.rubric.dimensions {
        columns.push(schema::dimension_mean(&d.name));
        columns.push(schema::dimension_jury_alpha(&d.name));
    }
    let mut wanted: Vec<(&str, DataType)> = vec![(schema::aggregates::MODEL, DataType::String)];
    wanted.extend(columns.iter().map(|c| (c.as_str(), DataType::Float64)));
    let mut models: BTreeMap<String, ModelReport> = BTreeMap::new();
    for start in periods.starts_in(DateRange {
        since: trend_since,
        until: window.until,
    }) {
        let key = format!("aggregates/date={start}/{suffix}");
        let Some(df) = read_key(warehouse, &key, &wanted).await? else {
            continue;
        };
        for i in 0..df.height() {
            let model = text(&df, schema::aggregates::MODEL, i);
            let row: Row = columns
                .iter()
                .filter_map(|c| number(&df, c, i).map(|v| (c.clone(), v)))
                .collect();
            let entry = models.entry(model.clone()).or_insert_with(|| ModelReport {
                model,
                ..ModelReport::default()
            });
            entry.trend.insert(start, row);
        }
    }
    // The window's own figures: sums of counts and costs, request-weighted means.
    for m in models.values_mut() {
        m.window = window_totals(&m.trend, window, &job.rubric);
        m.detectable = m
            .trend
            .iter()
            .rev()
            .find(|(d, r)| {
                window.contains(**d) && r.contains_key(schema::aggregates::COMPOSITE_MDE_3D)
            })
            .map(|(d, r)| Detectable {
                date: *d,
                judged: r.get(schema::aggregates::JUDGED).copied().unwrap_or(0.0),
                within_1d: r.get(schema::aggregates::COMPOSITE_MDE_1D).copied(),
                within_3d: r.get(schema::aggregates::COMPOSITE_MDE_3D).copied(),
                within_7d: r.get(schema::aggregates::COMPOSITE_MDE_7D).copied(),
            });
    }
    models.retain(|_, m| !m.window.is_empty());

    // Drift findings of the window.
    let drift_columns: Vec<(&str, DataType)> = vec![
        (schema::drift::MODEL, DataType::String),
        (schema::drift::METRIC, DataType::String),
        (schema::drift::TEST, DataType::String),
        (schema::drift::STATISTIC, DataType::Float64),
        (schema::drift::P_ADJUSTED, DataType::Float64),
        (schema::drift::CURRENT_MEAN, DataType::Float64),
        (schema::drift::BASELINE_MEAN, DataType::Float64),
        (schema::drift::VERDICT, DataType::String),
        (schema::drift::PATTERN, DataType::String),
    ];
    for start in periods.starts_in(window) {
        let key = format!("drift/date={start}/{suffix}");
        let Some(df) = read_key(warehouse, &key, &drift_columns).await? else {
            continue;
        };
        for i in 0..df.height() {
            let verdict = text(&df, schema::drift::VERDICT, i);
            if verdict != "alert" && verdict != "warn" {
                continue;
            }
            let Some(m) = models.get_mut(&text(&df, schema::drift::MODEL, i)) else {
                continue;
            };
            m.findings.push(Finding {
                date: start,
                metric: text(&df, schema::drift::METRIC, i),
                test: text(&df, schema::drift::TEST, i),
                statistic: number(&df, schema::drift::STATISTIC, i),
                p_adjusted: number(&df, schema::drift::P_ADJUSTED, i),
                current_mean: number(&df, schema::drift::CURRENT_MEAN, i),
                baseline_mean: number(&df, schema::drift::BASELINE_MEAN, i),
                verdict,
                pattern: text(&df, schema::drift::PATTERN, i),
            });
        }
    }
    for m in models.values_mut() {
        m.findings = events(std::mem::take(&mut m.findings));
        for (date, row) in m.trend.range(window.since..=window.until) {
            for rule in &job.alarms {
                let Some(value) = alarm_column(rule).and_then(|c| row.get(&c).copied()) else {
                    continue;
                };
                if breaches(rule, value) {
                    m.breaches.push(Breach {
                        date: *date,
                        metric: rule.metric.clone(),
                        value,
                        comparison: rule.comparison.clone(),
                        threshold: rule.threshold,
                        severity: rule.severity.clone(),
                    });
                }
            }
        }
        // The worst of drift and alarms: a critical alarm threshold crossed is an alert too.
        let alert = m.findings.iter().any(|f| f.verdict == "alert")
            || m.breaches.iter().any(|b| b.severity == "critical");
        let warn = m.findings.iter().any(|f| f.verdict == "warn") || !m.breaches.is_empty();
        m.status = if alert {
            "alert"
        } else if warn {
            "warn"
        } else {
            "ok"
        }
        .into();
    }

    // The worst-scoring replies of the window.
    let names: Vec<String> = models.keys().cloned().collect();
    for model in names {
        let worst = worst_replies(warehouse, &job, &model, periods, window).await?;
        let disagreements =
            disagreements(warehouse, &job, &model, &days_of(periods, window)).await?;
        if let Some(m) = models.get_mut(&model) {
            m.worst = worst;
            m.disagreements = disagreements;
        }
    }

    // What users asked.
    for (model, panel) in topics_panels(warehouse, periods, window, &suffix).await? {
        if let Some(m) = models.get_mut(&model) {
            m.topics = Some(panel);
        }
    }

    // Quarantined lines of the window's days.
    let mut quarantined = 0u64;
    let keys = warehouse.list("quarantine/").await?;
    for key in keys {
        let Some(p) = PartKey::parse(&key) else {
            continue;
        };
        let in_window = p.date().is_some_and(|d| {
            periods
                .starts_in(window)
                .any(|s| periods.days(s).contains(d))
        });
        if !in_window {
            continue;
        }
        if let Some(df) = read_key(
            warehouse,
            &key,
            &[(schema::quarantine::ERROR, DataType::String)],
        )
        .await?
        {
            quarantined += df.height() as u64;
        }
    }

    let models: Vec<ModelReport> = models.into_values().collect();
    let count = |key: &str| -> u64 {
        models
            .iter()
            .map(|m| m.window.get(key).copied().unwrap_or(0.0) as u64)
            .sum()
    };
    let folder = format!("reports/{}", job.run_id);
    let mut summary = ReportSummary {
        run_id: job.run_id.clone(),
        window: DateRange {
            since: window.since,
            until: periods.days(window.until).until,
        }
        .to_string(),
        rubric: job.rubric.key(),
        rubric_hash: job.rubric.hash(),
        judge: job.judge.clone(),
        config_hash: job.config_hash.clone(),
        evalwatch_version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: Utc::now().to_rfc3339(),
        alerts: count(schema::aggregates::ALERTS),
        warnings: count(schema::aggregates::WARNINGS),
        judge_errors: count(schema::aggregates::JUDGE_ERRORS),
        calibration: calibration(warehouse, &job.rubric, &job.judge).await?,
        batch_waiting: crate::score::batch::waiting(warehouse, &job.judge).await?,
        quarantined,
        teams: team_lines(&models, &job.teams),
        models,
        index: warehouse.uri(&format!("{folder}/index.html")),
        summary_md: warehouse.uri(&format!("{folder}/summary.md")),
    };
    let page = html::page(&job, &summary);
    let markdown = html::markdown(&job, &summary);
    warehouse
        .put(&format!("{folder}/index.html"), page.into_bytes())
        .await?;
    warehouse
        .put(&format!("{folder}/summary.md"), markdown.into_bytes())
        .await?;
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    warehouse
        .put(&format!("{folder}/summary.json"), json)
        .await?;
    summary.models.iter_mut().for_each(|m| m.worst.clear());
    Ok(summary)
}

/// Sums (counts, costs) and request-weighted means over the window's rows of `trend`.
fn window_totals(trend: &BTreeMap<NaiveDate, Row>, window: DateRange, rubric: &Rubric) -> Row {
    let rows: Vec<&Row> = trend
        .iter()
        .filter(|(d, _)| window.contains(**d))
        .map(|(_, r)| r)
        .collect();
    let mut out = Row::new();
    if rows.is_empty() {
        return out;
    }
    for key in [
        schema::aggregates::REQUESTS,
        schema::aggregates::JUDGED,
        schema::aggregates::JUDGE_ERRORS,
        schema::aggregates::SKIPPED_BUDGET,
        schema::aggregates::JUDGE_COST_USD,
        schema::aggregates::INVOCATIONS,
        schema::aggregates::ERRORS_5XX,
        schema::aggregates::COST_USD,
        schema::aggregates::ALERTS,
        schema::aggregates::WARNINGS,
        schema::aggregates::JURY_DISAGREEMENTS,
    ] {
        let values: Vec<f64> = rows.iter().filter_map(|r| r.get(key)).copied().collect();
        if !values.is_empty() {
            out.insert(key.to_string(), values.iter().sum());
        }
    }
    let mut means: Vec<String> = [
        schema::aggregates::COMPOSITE_MEAN,
        schema::aggregates::LATENCY_P50_MS,
        schema::aggregates::LATENCY_P99_MS,
        schema::aggregates::REFUSAL_RATE,
        schema::aggregates::GPU_UTIL_MEAN,
        schema::aggregates::GPU_UTIL_P95,
        schema::aggregates::GPU_MEM_MEAN,
        schema::aggregates::COST_PER_1K_REQUESTS,
        schema::aggregates::QUALITY_PER_DOLLAR,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    means.extend(
        rubric
            .dimensions
            .iter()
            .map(|d| schema::dimension_mean(&d.name)),
    );
    means.extend(
        rubric
            .dimensions
            .iter()
            .map(|d| schema::dimension_jury_alpha(&d.name)),
    );
    for key in means {
        let (mut sum, mut weight) = (0.0, 0.0);
        for r in &rows {
            if let Some(v) = r.get(&key) {
                let w = r
                    .get(schema::aggregates::JUDGED)
                    .copied()
                    .unwrap_or(1.0)
                    .max(1.0);
                sum += v * w;
                weight += w;
            }
        }
        if weight > 0.0 {
            out.insert(key, sum / weight);
        }
    }
    out
}

/// Test rows grouped into events, one per (window, metric): the worst verdict, the tests that
/// agreed (the deciding one first, its statistic shown), alerts first.
fn events(mut rows: Vec<Finding>) -> Vec<Finding> {
    rows.sort_by(|a, b| {
        (a.date, &a.metric, a.verdict != "alert", &a.test).cmp(&(
            b.date,
            &b.metric,
            b.verdict != "alert",
            &b.test,
        ))
    });
    let mut out: Vec<Finding> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(last) if last.date == row.date && last.metric == row.metric => {
                last.test = format!("{}, {}", last.test, row.test);
            }
            _ => out.push(row),
        }
    }
    out.sort_by(|a, b| {
        (a.verdict != "alert", a.date, &a.metric).cmp(&(b.verdict != "alert", b.date, &b.metric))
    });
    out
}

/// The [`WORST`] captures of `model` with the lowest composite in the window, redacted.
async fn worst_replies(
    warehouse: &Warehouse,
    job: &ReportJob,
    model: &str,
    periods: Periods,
    window: DateRange,
) -> Result<Vec<Example>, ReportError> {
    let escaped = crate::util::partition_value(model);
    let mut scored: Vec<(f64, NaiveDate, String, BTreeMap<String, f64>)> = Vec::new();
    let score_columns = [
        (schema::scores::REQUEST_ID, DataType::String),
        (schema::scores::DIMENSION, DataType::String),
        (schema::scores::SCORE, DataType::Float64),
        (schema::scores::STATUS, DataType::String),
        (schema::scores::JUDGE, DataType::String),
    ];
    for day in days_of(periods, window) {
        let prefix = format!(
            "scores/rubric={}/model={escaped}/date={day}/",
            job.rubric.key()
        );
        let keys = warehouse.list(&prefix).await?;
        for key in crate::score::current::current_parts(warehouse, &keys, &job.judge).await? {
            let Some(df) = read_key(warehouse, &key, &score_columns).await? else {
                continue;
            };
            let mut per: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
            for i in 0..df.height() {
                if text(&df, schema::scores::JUDGE, i) != job.judge
                    || text(&df, schema::scores::STATUS, i) != schema::status::OK
                {
                    continue;
                }
                if let Some(score) = number(&df, schema::scores::SCORE, i) {
                    per.entry(text(&df, schema::scores::REQUEST_ID, i))
                        .or_default()
                        .insert(text(&df, schema::scores::DIMENSION, i), score);
                }
            }
            for (id, scores) in per {
                if scores.len() != job.rubric.dimensions.len() {
                    continue;
                }
                let composite = match job.rubric.composite {
                    CompositeRule::WeightedMean => job
                        .rubric
                        .dimensions
                        .iter()
                        .map(|d| d.weight * scores.get(&d.name).copied().unwrap_or(0.0))
                        .sum(),
                    CompositeRule::Min => scores.values().copied().fold(f64::INFINITY, f64::min),
                };
                scored.push((composite, day, id, scores));
            }
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    scored.truncate(WORST);
    // Their texts, from the captures of the same days.
    let mut out = Vec::new();
    let capture_columns = [
        (schema::captures::REQUEST_ID, DataType::String),
        (schema::captures::PROMPT, DataType::String),
        (schema::captures::RESPONSE, DataType::String),
    ];
    let mut texts: HashMap<String, (String, String)> = HashMap::new();
    let mut wanted_days: Vec<NaiveDate> = scored.iter().map(|s| s.1).collect();
    wanted_days.sort();
    wanted_days.dedup();
    for day in wanted_days {
        let prefix = format!("captures/model={escaped}/date={day}/");
        for key in warehouse.list(&prefix).await? {
            let Some(df) = read_key(warehouse, &key, &capture_columns).await? else {
                continue;
            };
            for i in 0..df.height() {
                let id = text(&df, schema::captures::REQUEST_ID, i);
                if scored.iter().any(|s| s.2 == id) {
                    texts.insert(
                        id,
                        (
                            text(&df, schema::captures::PROMPT, i),
                            text(&df, schema::captures::RESPONSE, i),
                        ),
                    );
                }
            }
        }
    }
    for (composite, date, id, scores) in scored {
        let (prompt, response) = texts.remove(&id).unwrap_or_default();
        out.push(Example {
            date,
            request_id: id,
            composite,
            scores,
            prompt: redact::redact(&redact::clip(&prompt, 600)),
            response: redact::redact(&redact::clip(&response, 900)),
        });
    }
    Ok(out)
}
