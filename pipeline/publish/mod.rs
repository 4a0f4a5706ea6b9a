//! The publish stage: what `analyse` found, per model and window, sent to where people already
//! look.
//!
//! Reads: `aggregates/date=<d>/` (the analysed windows) and the `scores` of those windows (the
//! score and judge-latency distributions).
//! Writes: CloudWatch metrics (PutMetricData) and alarms (PutMetricAlarm), or CloudWatch Embedded
//! Metric Format lines to a local file; and with `otlp` the score rows as OpenTelemetry GenAI
//! evaluation events and the datums as OTLP metrics ([`otlp`]);
//! `state/publish-ledger/<target>/<date>.json`, what each sink accepted.
//! Never does: send a datum the ledger holds (unless `--force`: CloudWatch cannot overwrite a
//! datapoint, so a second copy would skew every statistic), or record one the sink refused.
//!
//! [`datums`] decides what is sent, [`pack`] how it is split into requests, [`cloudwatch`] and
//! [`emf`] send it.

pub mod cloudwatch;
pub mod emf;
pub mod grafana;
pub mod otlp;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analyse::load::{Data, DayData, LoadError, load_scores};
use crate::analyse::{Periods, aggregates_key, by_window, part_name};
use crate::aws::AwsClients;
use crate::config::{AlarmRule, DateRange, PublishSettings, Sink};
use crate::rubric::Rubric;
use crate::schema;
use crate::table::read_key;
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error("cannot read `{key}`: {message}")]
    Read { key: String, message: String },
    #[error("cannot write Grafana files to `{path}`: {message}")]
    Grafana { path: String, message: String },
    #[error("cannot write EMF lines to `{path}`: {message}")]
    Emf { path: String, message: String },
    #[error(
        "the `emf` sink needs `publish.emf-path` when the warehouse is on S3 (EMF lines go to a \
         local file a log agent ships)"
    )]
    EmfPath,
    #[error("the OTLP sink: {0}")]
    Otlp(String),
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishJob {
    pub rubric: Rubric,
    pub judge: String,
    /// Days whose analysed windows are published.
    pub window: DateRange,
    pub window_days: u32,
    pub settings: PublishSettings,
    /// Send again what the ledger says was sent.
    pub force: bool,
    /// Print the requests instead of sending them.
    pub dry_run: bool,
    /// Also write Grafana dashboards and alert rules into this folder, for this data source UID.
    pub grafana: Option<(std::path::PathBuf, String)>,
}

impl PublishJob {
    pub fn from_config(
        config: &crate::config::Config,
        rubric: Rubric,
        window: DateRange,
    ) -> PublishJob {
        PublishJob {
            rubric,
            judge: crate::judge::id_of(&config.judge),
            window,
            window_days: config.analyse.window_days,
            settings: config.publish.clone(),
            force: false,
            dry_run: false,
            grafana: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishSummary {
    pub sink: String,
    pub window: String,
    pub models: u64,
    /// Windows with an aggregates row per model.
    pub windows: u64,
    /// Days of the window that analyse has not written (nothing to publish for them).
    pub windows_missing: Vec<String>,
    pub datums: u64,
    /// Datums the ledger says were sent before (not sent again).
    pub already_published: u64,
    /// Datums older than the two weeks CloudWatch accepts (not sent).
    pub too_old: u64,
    pub requests: u64,
    pub sent: u64,
    /// Datums in requests the sink refused after every retry (sent by a later run).
    pub failed: u64,
    pub failures: Vec<String>,
    pub alarms: u64,
    pub alarm_failures: Vec<String>,
    pub dry_run: bool,
    /// Grafana files written (`--grafana`).
    pub grafana_files: Vec<String>,
    /// The OTLP sink's events and metrics, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<otlp::OtlpSummary>,
}

impl PublishSummary {
    pub fn failed(&self) -> bool {
        self.failed > 0
            || !self.alarm_failures.is_empty()
            || self.otlp.as_ref().is_some_and(|o| o.failed > 0)
    }
}

/// CloudWatch's units, as far as evalwatch uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    None,
    Count,
    Percent,
    Milliseconds,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::None => "None",
            Unit::Count => "Count",
            Unit::Percent => "Percent",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A datum's value: one number, a distribution as distinct values with counts, or a statistic
/// set when it has too many distinct values for one datum.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Single(f64),
    Distribution {
        values: Vec<f64>,
        counts: Vec<f64>,
    },
    Statistics {
        sample_count: f64,
        sum: f64,
        minimum: f64,
        maximum: f64,
    },
}

/// PutMetricData takes at most 150 values in one datum's `Values`.
pub const MAX_VALUES: usize = 150;

/// Requests are kept under this many bytes (PutMetricData's limit is 1 MB before compression).
pub const MAX_REQUEST_BYTES: usize = 900_000;

impl Value {
    /// A sorted sample as a distribution, or as a statistic set past [`MAX_VALUES`] distinct
    /// values; `None` for an empty sample.
    pub fn of_sorted(sorted: &[f64]) -> Option<Value> {
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        let mut values: Vec<f64> = Vec::new();
        let mut counts: Vec<f64> = Vec::new();
        for &v in sorted {
            match values.last() {
                Some(&previous) if previous == v => {
                    if let Some(c) = counts.last_mut() {
                        *c += 1.0;
                    }
                }
                _ => {
                    if values.len() == MAX_VALUES {
                        return Some(Value::Statistics {
                            sample_count: sorted.len() as f64,
                            sum: sorted.iter().sum(),
                            minimum: first,
                            maximum: last,
                        });
                    }
                    values.push(v);
                    counts.push(1.0);
                }
            }
        }
        Some(Value::Distribution { values, counts })
    }

    /// The mean the value describes.
    pub fn mean(&self) -> f64 {
        match self {
            Value::Single(v) => *v,
            Value::Distribution { values, counts } => {
                let n: f64 = counts.iter().sum();
                values.iter().zip(counts).map(|(v, c)| v * c).sum::<f64>() / n.max(1.0)
            }
            Value::Statistics {
                sample_count, sum, ..
            } => sum / sample_count.max(1.0),
        }
    }
}

/// One metric value of one model and window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datum {
    pub namespace: String,
    pub metric: String,
    /// `(name, value)`, `EndpointName` first when there is one.
    pub dimensions: Vec<(String, String)>,
    /// The window's first day, 00:00 UTC.
    pub date: NaiveDate,
    pub unit: Unit,
    pub value: Value,
}

impl Datum {
    /// The timestamp the datum describes: its window's first moment (seconds since the epoch).
    pub fn timestamp(&self) -> i64 {
        self.date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0)
    }

    /// What the ledger remembers it by: where it went and what it describes, not its value.
    pub fn key(&self) -> String {
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}|{}|{}|{}",
            self.namespace,
            self.metric,
            dims.join(","),
            self.date
        )
    }

    /// A generous estimate of the datum's size in a request body.
    pub fn size_estimate(&self) -> usize {
        let values = match &self.value {
            Value::Single(_) => 1,
            Value::Distribution { values, .. } => 2 * values.len(),
            Value::Statistics { .. } => 4,
        };
        160 + self.metric.len()
            + self
                .dimensions
                .iter()
                .map(|(k, v)| k.len() + v.len() + 40)
                .sum::<usize>()
            + 24 * values
    }
}

/// The model a datum describes (its component dimension).
pub fn model_of(datum: &Datum) -> &str {
    datum
        .dimensions
        .iter()
        .find(|(k, _)| k == COMPONENT)
        .map_or("", |(_, v)| v.as_str())
}

/// The dimension naming the model.
pub const COMPONENT: &str = "InferenceComponentName";

/// The dimensions of `model`'s datums: `EndpointName` (when known), `InferenceComponentName`,
/// `Team` (when configured).
pub fn dimensions_of(settings: &PublishSettings, model: &str) -> Vec<(String, String)> {
    let mut dims = Vec::new();
    if let Some(endpoint) = &settings.endpoint_name {
        dims.push(("EndpointName".to_string(), endpoint.clone()));
    }
    dims.push((COMPONENT.to_string(), model.to_string()));
    if let Some(team) = settings.teams.get(model) {
        dims.push((TEAM.to_string(), team.clone()));
    }
    dims
}

/// The dimension naming the model's team, when `[cost.models.<m>] team` gives one.
pub const TEAM: &str = "Team";

/// One analysed window of one model: its aggregates row and its distributions.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub model: String,
    pub start: NaiveDate,
    /// Aggregates column -> value (nulls absent).
    pub aggregates: BTreeMap<String, f64>,
    pub day: DayData,
}

/// The scalar metrics taken from the aggregates table: (metric, aggregates column, unit).
pub const SCALARS: &[(&str, &str, Unit)] = &[
    ("requests", schema::aggregates::REQUESTS, Unit::Count),
    ("judged", schema::aggregates::JUDGED, Unit::Count),
    (
        "judge_errors",
        schema::aggregates::JUDGE_ERRORS,
        Unit::Count,
    ),
    (
        "judge_cost_usd",
        schema::aggregates::JUDGE_COST_USD,
        Unit::None,
    ),
    ("drift_alerts", schema::aggregates::ALERTS, Unit::Count),
    ("drift_warnings", schema::aggregates::WARNINGS, Unit::Count),
    ("refusal_rate", schema::aggregates::REFUSAL_RATE, Unit::None),
    (
        "latency_p99_ms",
        schema::aggregates::LATENCY_P99_MS,
        Unit::Milliseconds,
    ),
    (
        "gpu_utilization",
        schema::aggregates::GPU_UTIL_MEAN,
        Unit::Percent,
    ),
    (
        "gpu_memory_utilization",
        schema::aggregates::GPU_MEM_MEAN,
        Unit::Percent,
    ),
    ("cost_usd", schema::aggregates::COST_USD, Unit::None),
    (
        "cost_per_1k_requests",
        schema::aggregates::COST_PER_1K_REQUESTS,
        Unit::None,
    ),
    (
        "quality_per_dollar",
        schema::aggregates::QUALITY_PER_DOLLAR,
        Unit::None,
    ),
];

/// Every datum of the windows: per rubric dimension `<dimension>_score` and
/// `composite_quality_score` as distributions, `quality_evaluation_latency` (the judge's, ms),
/// and the [`SCALARS`] the aggregates table holds for the window.
pub fn datums(windows: &[Window], rubric: &Rubric, settings: &PublishSettings) -> Vec<Datum> {
    let mut out = Vec::new();
    for w in windows {
        let namespace = settings.namespace_of(&w.model);
        let dimensions = dimensions_of(settings, &w.model);
        let mut push = |metric: String, unit: Unit, value: Option<Value>| {
            if let Some(value) = value {
                out.push(Datum {
                    namespace: namespace.clone(),
                    metric,
                    dimensions: dimensions.clone(),
                    date: w.start,
                    unit,
                    value,
                });
            }
        };
        for dimension in &rubric.dimensions {
            let values = w.day.scores.get(&dimension.name).map(Vec::as_slice);
            push(
                format!("{}_score", dimension.name),
                Unit::None,
                values.and_then(Value::of_sorted),
            );
        }
        push(
            "composite_quality_score".into(),
            Unit::None,
            Value::of_sorted(&w.day.composite),
        );
        push(
            "quality_evaluation_latency".into(),
            Unit::Milliseconds,
            Value::of_sorted(&w.day.judge_latency_ms),
        );
        for (metric, column, unit) in SCALARS {
            push(
                metric.to_string(),
                *unit,
                w.aggregates
                    .get(*column)
                    .filter(|v| v.is_finite())
                    .map(|v| Value::Single(*v)),
            );
        }
    }
    out
}

/// Datums split into requests: one namespace each, at most `per_request` datums and
/// [`MAX_REQUEST_BYTES`]. Returns indexes into `datums`.
pub fn pack(datums: &[Datum], per_request: usize) -> Vec<Vec<usize>> {
    let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in datums.iter().enumerate() {
        by_namespace.entry(&d.namespace).or_default().push(i);
    }
    let mut requests = Vec::new();
    for (_, members) in by_namespace {
        let mut current: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for i in members {
            let size = datums[i].size_estimate();
            if !current.is_empty()
                && (current.len() == per_request || bytes + size > MAX_REQUEST_BYTES)
            {
                requests.push(std::mem::take(&mut current));
                bytes = 0;
            }
            current.push(i);
            bytes += size;
        }
        if !current.is_empty() {
            requests.push(current);
        }
    }
    requests
}

// ---------------------------------------------------------------------------------------------
// The ledger

/// What one target accepted for one window date.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LedgerDay {
    published: BTreeSet<String>,
}

/// The datums a sink accepted, by window date: `state/publish-ledger/<target>/<date>.json`.
pub struct Ledger {
    folder: String,
    days: BTreeMap<NaiveDate, LedgerDay>,
}

impl Ledger {
    /// The ledger of `target` (e.g. `cloudwatch:<region>:<endpoint>`), for `dates`.
    pub async fn open(
        warehouse: &Warehouse,
        target: &str,
        dates: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Ledger, PublishError> {
        let folder = format!(
            "state/publish-ledger/{}",
            &sha256_hex(target.as_bytes())[..16]
        );
        let mut days = BTreeMap::new();
        for date in dates {
            let key = format!("{folder}/{date}.json");
            let day = match warehouse.get(&key).await? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| PublishError::Read {
                    key,
                    message: format!("{e}; delete it to publish those windows again"),
                })?,
                None => LedgerDay::default(),
            };
            days.insert(date, day);
        }
        Ok(Ledger { folder, days })
    }

    pub fn contains(&self, datum: &Datum) -> bool {
        self.contains_key(datum.date, &datum.key())
    }

    /// Whether the thing known by `key` (a datum's [`Datum::key`], an event's) of `date` was
    /// accepted.
    pub fn contains_key(&self, date: NaiveDate, key: &str) -> bool {
        self.days
            .get(&date)
            .is_some_and(|d| d.published.contains(key))
    }

    /// Records `accepted` and writes the dates they touch.
    pub async fn record(
        &mut self,
        warehouse: &Warehouse,
        accepted: &[&Datum],
    ) -> Result<(), PublishError> {
        let keys: Vec<(NaiveDate, String)> = accepted.iter().map(|d| (d.date, d.key())).collect();
        self.record_keys(warehouse, &keys).await
    }

    /// Records what `keys` name (by date) and writes the dates they touch.
    pub async fn record_keys(
        &mut self,
        warehouse: &Warehouse,
        keys: &[(NaiveDate, String)],
    ) -> Result<(), PublishError> {
        let mut touched = BTreeSet::new();
        for (date, key) in keys {
            self.days
                .entry(*date)
                .or_default()
                .published
                .insert(key.clone());
            touched.insert(*date);
        }
        for date in touched {
            let bytes = serde_json::to_vec_pretty(&self.days[&date]).unwrap_or_default();
            warehouse
                .put(&format!("{}/{date}.json", self.folder), bytes)
                .await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The stage

/// Reads the analysed windows of `job`: aggregates rows and score distributions.
async fn read_windows(
    job: &PublishJob,
    warehouse: &Warehouse,
    summary: &mut PublishSummary,
) -> Result<Vec<Window>, PublishError> {
    let periods = Periods {
        len: job.window_days,
    };
    let window = periods.cover(job.window);
    let name = part_name(&job.rubric, &job.judge, job.window_days);
    let mut columns: Vec<(String, DataType)> =
        vec![(schema::aggregates::MODEL.into(), DataType::String)];
    let mut wanted: Vec<String> = SCALARS.iter().map(|(_, c, _)| c.to_string()).collect();
    wanted.push(schema::aggregates::COMPOSITE_MEAN.into());
    columns.extend(wanted.iter().map(|c| (c.clone(), DataType::Float64)));
    let columns: Vec<(&str, DataType)> = columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let mut rows: BTreeMap<(String, NaiveDate), BTreeMap<String, f64>> = BTreeMap::new();
    for start in periods.starts_in(window) {
        let key = aggregates_key(&name, start);
        let Some(df) = read_key(warehouse, &key, &columns).await? else {
            summary.windows_missing.push(start.to_string());
            continue;
        };
        let read = |e: PolarsError| PublishError::Read {
            key: key.clone(),
            message: e.to_string(),
        };
        let models = df
            .column(schema::aggregates::MODEL)
            .map_err(read)?
            .str()
            .map_err(read)?
            .clone();
        for (i, model) in models.iter().enumerate() {
            let mut values = BTreeMap::new();
            for column in &wanted {
                let v = df.column(column).map_err(read)?.f64().map_err(read)?.get(i);
                if let Some(v) = v {
                    values.insert(column.clone(), v);
                }
            }
            rows.insert((model.unwrap_or_default().to_string(), start), values);
        }
    }
    // The distributions of the same windows, from the scores.
    let days: BTreeSet<NaiveDate> = periods
        .starts_in(window)
        .flat_map(|s| {
            let d = periods.days(s);
            d.since.iter_days().take_while(move |x| *x <= d.until)
        })
        .collect();
    let mut daily = Data::new();
    load_scores(warehouse, &job.rubric, &job.judge, &days, false, &mut daily).await?;
    let mut distributions = by_window(daily, periods);
    Ok(rows
        .into_iter()
        .map(|((model, start), aggregates)| Window {
            day: distributions
                .remove(&(model.clone(), start))
                .unwrap_or_default(),
            model,
            start,
            aggregates,
        })
        .collect())
}

/// CloudWatch refuses datapoints older than two weeks; a day of margin for the run's own time.
const MAX_AGE_DAYS: i64 = 13;

/// Runs the stage.
pub async fn publish(
    job: PublishJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<PublishSummary, PublishError> {
    let emf_path = match &job.settings.sink {
        Sink::Emf(Some(path)) => Some(path.clone()),
        Sink::Emf(None) => Some(
            warehouse
                .local_root()
                .ok_or(PublishError::EmfPath)?
                .join("publish/metrics.emf.jsonl"),
        ),
        _ => None,
    };
    let mut summary = PublishSummary {
        sink: match &emf_path {
            Some(path) => format!("emf:{}", path.display()),
            None if job.settings.sink == Sink::CloudWatch => "cloudwatch".into(),
            None => "none".into(),
        },
        window: job.window.to_string(),
        dry_run: job.dry_run,
        ..PublishSummary::default()
    };
    if let Some(otlp) = &job.settings.otlp {
        summary.sink = match job.settings.sink {
            Sink::None => otlp.target(),
            _ => format!("{}+{}", summary.sink, otlp.target()),
        };
    }
    if job.settings.sink == Sink::None && job.settings.otlp.is_none() && job.grafana.is_none() {
        tracing::info!("publish: sink `none`, nothing sent");
        return Ok(summary);
    }
    let windows = read_windows(&job, warehouse, &mut summary).await?;
    summary.windows = windows.len() as u64;
    let models: BTreeSet<&str> = windows.iter().map(|w| w.model.as_str()).collect();
    summary.models = models.len() as u64;
    if let Some((dir, datasource)) = &job.grafana {
        let names: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        let written = grafana::write(
            dir,
            &job.settings,
            &job.rubric,
            &names,
            datasource,
            job.window_days,
        )
        .map_err(|e| PublishError::Grafana {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        summary.grafana_files = written.iter().map(|p| p.display().to_string()).collect();
    }
    let all = datums(&windows, &job.rubric, &job.settings);
    if let Some(settings) = &job.settings.otlp {
        let days: BTreeSet<NaiveDate> = job
            .window
            .since
            .iter_days()
            .take_while(|d| *d <= job.window.until)
            .collect();
        let sent = otlp::send(&job, settings, &days, &all, warehouse).await?;
        tracing::info!(
            events = sent.events_sent,
            metric_points = sent.metric_points_sent,
            already_published = sent.already_published,
            failed = sent.failed,
            "publish: OTLP to {}",
            settings.logs_url
        );
        for failure in &sent.failures {
            tracing::error!("publish: OTLP request given up: {failure}");
        }
        summary.otlp = Some(sent);
    }
    if job.settings.sink == Sink::None {
        return Ok(summary);
    }
    summary.datums = all.len() as u64;

    let target = match &emf_path {
        Some(path) => format!("emf:{}", path.display()),
        None => cloudwatch::target(aws).await,
    };
    let dates: BTreeSet<NaiveDate> = all.iter().map(|d| d.date).collect();
    let mut ledger = Ledger::open(warehouse, &target, dates).await?;
    let oldest = Utc::now().date_naive() - chrono::Duration::days(MAX_AGE_DAYS);
    let mut pending: Vec<Datum> = Vec::new();
    for d in all {
        if !job.force && ledger.contains(&d) {
            summary.already_published += 1;
        } else if job.settings.sink == Sink::CloudWatch && d.date < oldest {
            summary.too_old += 1;
        } else {
            pending.push(d);
        }
    }
    if summary.too_old > 0 {
        tracing::warn!(
            datums = summary.too_old,
            "publish: windows older than two weeks are not sent (CloudWatch refuses them)"
        );
    }
    match &job.settings.sink {
        Sink::CloudWatch => {
            cloudwatch::send(&job, &pending, aws, warehouse, &mut ledger, &mut summary).await?;
            let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
            cloudwatch::alarms(&job, &models, aws, &mut summary).await;
        }
        Sink::Emf(_) => {
            let path = emf_path.unwrap_or_default();
            emf::send(&job, &path, &pending, warehouse, &mut ledger, &mut summary).await?;
        }
        Sink::None => {}
    }
    Ok(summary)
}

/// An alarm's name: stable across runs, so PutMetricAlarm updates it in place, and unique per
/// namespace and model, so two deployments in one account do not overwrite each other's.
pub fn alarm_name(rule: &AlarmRule, namespace: &str, model: &str) -> String {
    if namespace.contains(model) {
        format!("{namespace} {} {}", rule.metric, rule.severity)
    } else {
        format!("{namespace} {model} {} {}", rule.metric, rule.severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(namespace: &str, metric: &str, values: usize) -> Datum {
        Datum {
            namespace: namespace.into(),
            metric: metric.into(),
            dimensions: vec![(COMPONENT.into(), "chat-a".into())],
            date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            unit: Unit::None,
            value: if values == 0 {
                Value::Single(1.0)
            } else {
                Value::Distribution {
                    values: (0..values).map(|v| v as f64).collect(),
                    counts: vec![1.0; values],
                }
            },
        }
    }

    #[test]
    fn distributions_are_values_with_counts_up_to_the_api_limit() {
        let v = Value::of_sorted(&[0.25, 0.25, 0.5, 1.0, 1.0, 1.0]).unwrap();
        assert_eq!(
            v,
            Value::Distribution {
                values: vec![0.25, 0.5, 1.0],
                counts: vec![2.0, 1.0, 3.0]
            }
        );
        assert!((v.mean() - 4.0 / 6.0).abs() < 1e-12);
        let many: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        match Value::of_sorted(&many).unwrap() {
            Value::Statistics {
                sample_count,
                minimum,
                maximum,
                sum,
            } => {
                assert_eq!(sample_count, 1000.0);
                assert_eq!((minimum, maximum), (0.0, 0.999));
                assert!((sum / sample_count - 0.4995).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Value::of_sorted(&[]), None);
    }

    #[test]
    fn requests_hold_one_namespace_and_at_most_a_thousand_datums() {
        let mut datums: Vec<Datum> = (0..2500).map(|_| datum("a", "m", 0)).collect();
        datums.extend((0..10).map(|_| datum("b", "m", 0)));
        let requests = pack(&datums, 1000);
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1000, 1000, 500, 10]);
        for r in &requests {
            let spaces: BTreeSet<&str> = r.iter().map(|&i| datums[i].namespace.as_str()).collect();
            assert_eq!(spaces.len(), 1);
        }
        // Big distributions: the 1 MB limit cuts first.
        let big: Vec<Datum> = (0..1000).map(|_| datum("a", "m", MAX_VALUES)).collect();
        let requests = pack(&big, 1000);
        assert!(requests.len() > 1);
        for r in &requests {
            let bytes: usize = r.iter().map(|&i| big[i].size_estimate()).sum();
            assert!(bytes <= MAX_REQUEST_BYTES);
        }
        assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 1000);
    }

    #[test]
    fn the_ledger_key_names_the_place_not_the_value() {
        let a = datum("ns", "safety_score", 3);
        let mut b = a.clone();
        b.value = Value::Single(0.1);
        assert_eq!(a.key(), b.key());
        assert_eq!(
            a.key(),
            "ns|safety_score|InferenceComponentName=chat-a|2026-11-27"
        );
        assert_eq!(a.timestamp(), 1_795_737_600);
    }
}
