//! The analyse stage: per model and day of the window, how quality and traffic moved against a
//! baseline (the `drift` table), and what each day looked like (the `aggregates` table).
//!
//! Reads: `scores/rubric=<rubric>/` rows of the configured judge, `captures/` features and
//! `embeddings/` (when `[embed]` is on), for the window and the baseline days before it; the
//! window's prompts for the topics.
//! Writes: `drift/date=<d>/part-<h>.parquet`, `aggregates/date=<d>/part-<h>.parquet` and, with
//! embeddings, `topics/date=<d>/part-<h>.parquet` for every day of the window, the part named
//! from (rubric hash, judge), so a re-run replaces them.
//! Never does: call a verdict on fewer than `min-count` values (`insufficient_data`), or alert on
//! quality that went up.
//!
//! [`load`] reads, [`drift`] decides, [`stats`] holds the statistics, [`embedding`] those on
//! embeddings (drift, k-means topics), [`topics`] writes what users asked.

pub mod drift;
pub mod embedding;
pub mod load;
pub mod plan;
pub mod sequential;
pub mod stats;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Datelike, Days, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::config::{AnalyseSettings, Baseline, Compression, DateRange};
use crate::rubric::Rubric;
use crate::schema;
use crate::table::{text_constant, utc_micros, write_parquet};
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

use drift::{DriftRow, Track};
use embedding::Topics;
use load::{Data, DayData, LoadError};

#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot write `{table}` for {date}: {message}")]
    Write {
        table: &'static str,
        date: NaiveDate,
        message: String,
    },
}

/// What to analyse.
#[derive(Debug, Clone)]
pub struct AnalyseJob {
    pub rubric: Rubric,
    /// The judge whose scores are compared (`offline:1`, `bedrock:<model-id>`, ...).
    pub judge: String,
    pub window: DateRange,
    pub settings: AnalyseSettings,
    pub compression: Compression,
    /// Model -> its team (`[cost.models.<m>] team`), the aggregates' `team` column.
    pub teams: BTreeMap<String, String>,
}

impl AnalyseJob {
    /// The job the config describes for `window`: its rubric, its judge, its settings.
    pub fn from_config(
        config: &crate::config::Config,
        rubric: Rubric,
        window: DateRange,
    ) -> AnalyseJob {
        AnalyseJob {
            rubric,
            judge: crate::judge::id_of(&config.judge),
            window,
            settings: config.analyse.clone(),
            compression: config.compression,
            teams: config.cost.teams.clone(),
        }
    }
}

/// One alert, for the summary and the logs.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub model: String,
    pub date: NaiveDate,
    pub metric: String,
    /// The tests that alerted on this metric that day (the first one's statistic is shown).
    pub tests: Vec<String>,
    pub statistic: Option<f64>,
    pub pattern: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnalyseSummary {
    /// The days the analysed windows cover (whole windows: `--date` picks the one holding it).
    pub window: String,
    pub window_days: u32,
    pub rubric: String,
    pub judge: String,
    pub models: u64,
    pub model_days: u64,
    pub drift_rows: u64,
    /// Alert events: (model, window, metric) with at least one test alerting. What a person
    /// counts; `alerted` lists them.
    pub alerts: u64,
    /// Warning events: (model, window, metric) with a test warning and none alerting.
    pub warnings: u64,
    /// Test rows of `drift/` behind them (one event can have several tests agreeing).
    pub alerting_tests: u64,
    pub warning_tests: u64,
    pub insufficient_data: u64,
    /// Metric-days that alerted, one line each (the worst test of the metric).
    pub alerted: Vec<Alert>,
    /// Where the time went: reading and grouping, comparing, writing.
    pub load_seconds: f64,
    pub compute_seconds: f64,
    pub seconds: f64,
}

impl AnalyseSummary {
    /// Whether an alert fired in the window (exit code 3).
    pub fn alerted(&self) -> bool {
        self.alerts > 0
    }
}

impl DayData {
    /// Several days as one (a baseline), every value vector still sorted.
    fn merged(days: &[&DayData]) -> DayData {
        let merge = |field: fn(&DayData) -> &Vec<f64>| -> Vec<f64> {
            let parts: Vec<&[f64]> = days.iter().map(|d| field(d).as_slice()).collect();
            stats::merge_many(&parts)
        };
        let mut out = DayData {
            composite: merge(|d| &d.composite),
            judge_error: merge(|d| &d.judge_error),
            judge_latency_ms: merge(|d| &d.judge_latency_ms),
            prompt_chars: merge(|d| &d.prompt_chars),
            response_chars: merge(|d| &d.response_chars),
            prompt_tokens: merge(|d| &d.prompt_tokens),
            completion_tokens: merge(|d| &d.completion_tokens),
            latency_ms: merge(|d| &d.latency_ms),
            refusal: merge(|d| &d.refusal),
            ..DayData::default()
        };
        let dimensions: BTreeSet<&String> = days.iter().flat_map(|d| d.scores.keys()).collect();
        for dimension in dimensions {
            let parts: Vec<&[f64]> = days
                .iter()
                .filter_map(|d| d.scores.get(dimension).map(|v| v.as_slice()))
                .collect();
            out.scores
                .insert(dimension.clone(), stats::merge_many(&parts));
        }
        for d in days {
            out.prompt_vectors.extend(d.prompt_vectors.iter().cloned());
            out.reply_vectors.extend(d.reply_vectors.iter().cloned());
            out.skipped_budget += d.skipped_budget;
            out.judge_cost_usd += d.judge_cost_usd;
            out.requests += d.requests;
            for (reason, n) in &d.finish_reason {
                *out.finish_reason.entry(reason.clone()).or_default() += n;
            }
        }
        out
    }
}

/// Windows before the analysed ones that are compared too, so `sustained` and the CUSUM have a
/// history.
const PATTERN_HISTORY: u32 = 7;

/// The windows the analyse compares: `len` days each, counted from Monday 1970-01-05, so 7-day
/// windows are ISO weeks and 1-day windows calendar days. A window is named by its first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub len: u32,
}

impl Periods {
    fn anchor() -> NaiveDate {
        NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default()
    }

    /// The first day of the window holding `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        let len = i64::from(self.len.max(1));
        let offset = (day - Self::anchor()).num_days().rem_euclid(len);
        day - chrono::Duration::days(offset)
    }

    /// `n` windows before the one starting at `start`.
    fn back(self, start: NaiveDate, n: u32) -> NaiveDate {
        start
            .checked_sub_days(Days::new(u64::from(n) * u64::from(self.len)))
            .unwrap_or(start)
    }

    /// The days of the window starting at `start`.
    pub fn days(self, start: NaiveDate) -> DateRange {
        let until = start
            .checked_add_days(Days::new(u64::from(self.len.max(1)) - 1))
            .unwrap_or(start);
        DateRange {
            since: start,
            until,
        }
    }

    /// The first days of the windows that start in `range`.
    pub fn starts_in(self, range: DateRange) -> impl Iterator<Item = NaiveDate> {
        let mut first = self.start_of(range.since);
        if first < range.since {
            first += chrono::Duration::days(i64::from(self.len));
        }
        let step = u64::from(self.len.max(1));
        std::iter::successors(Some(first), move |d| d.checked_add_days(Days::new(step)))
            .take_while(move |d| *d <= range.until)
    }

    /// The windows holding the days of `range`, as the range of their first days.
    pub fn cover(self, range: DateRange) -> DateRange {
        DateRange {
            since: self.start_of(range.since),
            until: self.start_of(range.until),
        }
    }
}

/// The windows (by first day) a window is compared with, and how to describe them. A rolling
/// baseline is the windows of the N days before; a fixed one the windows starting in its range.
fn baseline_of(start: NaiveDate, baseline: Baseline) -> (DateRange, String) {
    match baseline {
        Baseline::Rolling(n) => {
            let since = start
                .checked_sub_days(Days::new(u64::from(n)))
                .unwrap_or(start);
            let until = start.checked_sub_days(Days::new(1)).unwrap_or(start);
            let range = DateRange { since, until };
            (range, format!("rolling {n}d {range}"))
        }
        Baseline::Fixed(range) => (range, format!("fixed {range}")),
    }
}

/// The days a baseline may be drawn from: a rolling one reaches back twice its length, to put
/// clean windows in the place of those under suspicion.
fn baseline_reach(start: NaiveDate, baseline: Baseline) -> DateRange {
    match baseline {
        Baseline::Rolling(n) => DateRange {
            since: start
                .checked_sub_days(Days::new(2 * u64::from(n)))
                .unwrap_or(start),
            until: start.checked_sub_days(Days::new(1)).unwrap_or(start),
        },
        Baseline::Fixed(range) => range,
    }
}

/// The windows a rolling baseline is made of, and how to describe them: those of its range with
/// data, less the ones under suspicion or that alerted ([`Suspicion`]), each replaced by the
/// newest clean window before the range within twice its length. When every window of the
/// range is out, the range as it is, said so: the baseline then holds the change.
fn rolling_members(
    present: &BTreeSet<NaiveDate>,
    start: NaiveDate,
    baseline: Baseline,
    suspicion: &Suspicion,
) -> (Vec<NaiveDate>, String) {
    let (range, description) = baseline_of(start, baseline);
    let in_range: Vec<NaiveDate> = present
        .range(range.since..=range.until)
        .copied()
        .filter(|d| *d != start)
        .collect();
    if !matches!(baseline, Baseline::Rolling(_)) {
        return (in_range, description);
    }
    let why = |d: &NaiveDate| {
        if suspicion.alerted.contains(d) {
            Some("alerted")
        } else if suspicion.suspect.contains(d) {
            Some("suspect")
        } else {
            None
        }
    };
    let out: Vec<(NaiveDate, &str)> = in_range
        .iter()
        .filter_map(|d| why(d).map(|w| (*d, w)))
        .collect();
    if out.is_empty() {
        return (in_range, description);
    }
    let mut members: Vec<NaiveDate> = in_range
        .iter()
        .copied()
        .filter(|d| why(d).is_none())
        .collect();
    let reach = baseline_reach(start, baseline);
    let before_range = range.since.pred_opt().unwrap_or(range.since);
    let added: Vec<NaiveDate> = present
        .range(reach.since..=before_range)
        .rev()
        .copied()
        .filter(|d| why(d).is_none() && *d < range.since)
        .take(out.len())
        .collect();
    members.extend(&added);
    members.sort();
    if members.is_empty() {
        return (
            in_range,
            format!(
                "{description}: every window of the last {} days under suspicion, kept",
                (reach.until - reach.since).num_days() + 1
            ),
        );
    }
    let without: Vec<String> = out.iter().map(|(d, w)| format!("{d} ({w})")).collect();
    let mut text = format!("{description} without {}", without.join(", "));
    if !added.is_empty() {
        let with: Vec<String> = added.iter().map(|d| d.to_string()).collect();
        text.push_str(&format!(", with {}", with.join(", ")));
    }
    (members, text)
}

/// How many windows a window stays suspect without an alert: the horizon the monitor states
/// its sensitivity for. Past it the window rejoins the baseline: a baseline frozen on a chance
/// high would make every ordinary day look bad and keep the suspicion alive.
const SUSPICION_WINDOWS: u32 = 3;

/// The windows of a model kept out of its rolling baseline: those whose CUSUM in a bad
/// direction was at half its level or more (until it falls back under half, or for at most
/// [`SUSPICION_WINDOWS`] without an alert), and those that alerted (for good; with them the
/// suspect ones before them). Only once the baseline holds all its windows: a young one takes
/// every window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Suspicion {
    #[serde(default)]
    pub suspect: BTreeSet<NaiveDate>,
    #[serde(default)]
    pub alerted: BTreeSet<NaiveDate>,
}

impl Suspicion {
    /// Takes a window's status.
    /// Takes a window's status; `stale` is the first window still suspect (windows suspected
    /// before it without an alert since are cleared: the monitor's horizon has passed).
    fn record(&mut self, start: NaiveDate, status: drift::DayStatus, stale: NaiveDate) {
        if status.alerted {
            self.alerted.insert(start);
            self.alerted.append(&mut self.suspect);
        } else if status.suspect {
            self.suspect.insert(start);
            self.suspect.retain(|d| *d >= stale);
        } else {
            self.suspect.clear();
        }
    }

    /// Forgets windows before `day`.
    fn prune(&mut self, day: NaiveDate) {
        self.suspect.retain(|d| *d >= day);
        self.alerted.retain(|d| *d >= day);
    }
}

/// The days to read: those of the windows analysed (`window`, by first day), of the windows
/// before them compared only for the pattern history (when `history`), and of every baseline
/// window they need.
fn days_to_read(
    window: DateRange,
    periods: Periods,
    baseline: Baseline,
    history: bool,
) -> BTreeSet<NaiveDate> {
    let first = if history {
        periods.back(window.since, PATTERN_HISTORY)
    } else {
        window.since
    };
    let mut days = BTreeSet::new();
    for start in periods.starts_in(DateRange {
        since: first,
        until: window.until,
    }) {
        days.extend(window_days(periods.days(start)));
        for base in periods.starts_in(baseline_reach(start, baseline)) {
            days.extend(window_days(periods.days(base)));
        }
    }
    days
}

/// `data` keyed by window (first day) instead of by day.
pub fn by_window(data: Data, periods: Periods) -> Data {
    if periods.len == 1 {
        return data;
    }
    let mut out = Data::new();
    for ((model, day), part) in data {
        load::add_part(&mut out, (model, periods.start_of(day)), part);
    }
    out
}

/// Where the tracks (CUSUM, breach) of every model and metric are kept after a day, so the next
/// night starts from them instead of re-comparing the days before its window.
fn tracks_key(name: &str, day: NaiveDate) -> String {
    format!("state/analyse-tracks/{}/{day}.json", &name[..16])
}

/// The tracks after one day, and the settings they were computed under.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct StoredTracks {
    settings: String,
    models: BTreeMap<String, ModelTracks>,
}

/// One model's tracks per metric, and the last day it had data.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
struct ModelTracks {
    last_seen: NaiveDate,
    metrics: BTreeMap<String, Track>,
    #[serde(default)]
    suspicion: Suspicion,
}

/// What decides a track: the analyse settings, the rubric and the judge.
fn settings_hash(job: &AnalyseJob) -> String {
    sha256_hex(format!("{:?}\0{}\0{}", job.settings, job.rubric.hash(), job.judge).as_bytes())
}

/// The tracks stored after the window before `first`, when computed under the same settings.
async fn stored_tracks(
    warehouse: &Warehouse,
    name: &str,
    job: &AnalyseJob,
    first: NaiveDate,
    periods: Periods,
) -> Result<BTreeMap<String, ModelTracks>, AnalyseError> {
    let before = periods.back(first, 1);
    if before == first {
        return Ok(BTreeMap::new());
    }
    let Some(bytes) = warehouse.get(&tracks_key(name, before)).await? else {
        return Ok(BTreeMap::new());
    };
    match serde_json::from_slice::<StoredTracks>(&bytes) {
        Ok(stored) if stored.settings == settings_hash(job) => Ok(stored.models),
        Ok(_) => Ok(BTreeMap::new()),
        Err(e) => {
            tracing::warn!(key = %tracks_key(name, before), error = %e, "analyse: unreadable stored tracks, rebuilding the pattern history");
            Ok(BTreeMap::new())
        }
    }
}

/// Reads `days` of every table into `data`.
async fn load_days(
    warehouse: &Warehouse,
    job: &AnalyseJob,
    days: &BTreeSet<NaiveDate>,
    data: &mut Data,
) -> Result<(), LoadError> {
    // Each judged capture's composite is kept only where topics will want it.
    let embeddings = if job.settings.embedding.enabled {
        warehouse
            .list(&format!("{}/", schema::embeddings::TABLE))
            .await?
    } else {
        Vec::new()
    };
    let embedded = !embeddings.is_empty();
    load::load_scores(warehouse, &job.rubric, &job.judge, days, embedded, data).await?;
    load::load_captures(warehouse, days, data).await?;
    if embedded {
        let most = job.settings.embedding.max_vectors;
        load::load_embeddings(warehouse, embeddings, days, most, data).await?;
    }
    load::load_telemetry(warehouse, days, data).await
}

/// What the stage's parts are named from: the rubric, the judge and the window length. Daily and
/// weekly analyses of the same scores live side by side (a daily one keeps the name it had before
/// windows were configurable).
pub fn part_name(rubric: &Rubric, judge: &str, window_days: u32) -> String {
    match window_days {
        1 => sha256_hex(format!("{}\0{}", rubric.hash(), judge).as_bytes()),
        n => sha256_hex(format!("{}\0{}\0{n}d", rubric.hash(), judge).as_bytes()),
    }
}

/// The `aggregates` part of the window starting on `start`.
pub fn aggregates_key(name: &str, start: NaiveDate) -> String {
    format!("aggregates/date={start}/part-{}.parquet", &name[..16])
}

/// Runs the stage.
pub async fn analyse(
    job: AnalyseJob,
    warehouse: &Warehouse,
) -> Result<AnalyseSummary, AnalyseError> {
    let started = Instant::now();
    let name = part_name(&job.rubric, &job.judge, job.settings.window_days);
    tracing::info!(window = %job.window, rubric = %job.rubric.key(), judge = %job.judge, "analyse: starting");
    // The patterns continue from the tracks the night before stored; a model without them has
    // its history rebuilt by comparing the days before the window too.
    let periods = Periods {
        len: job.settings.window_days,
    };
    let window = periods.cover(job.window);
    let stored = stored_tracks(warehouse, &name, &job, window.since, periods).await?;
    let days = days_to_read(window, periods, job.settings.baseline, false);
    let mut daily = Data::new();
    load_days(warehouse, &job, &days, &mut daily).await?;
    let mut data = by_window(daily, periods);
    let models: BTreeSet<&String> = data
        .keys()
        .filter(|(_, d)| window.contains(*d))
        .map(|(m, _)| m)
        .collect();
    let rebuild: BTreeSet<String> = models
        .into_iter()
        .filter(|m| !stored.contains_key(*m))
        .cloned()
        .collect();
    if !rebuild.is_empty() {
        let more: BTreeSet<NaiveDate> = days_to_read(window, periods, job.settings.baseline, true)
            .difference(&days)
            .copied()
            .collect();
        tracing::info!(
            models = rebuild.len(),
            days = more.len(),
            "analyse: no stored pattern tracks for the window before, comparing the windows before it too"
        );
        let mut daily = Data::new();
        load_days(warehouse, &job, &more, &mut daily).await?;
        for (key, part) in by_window(daily, periods) {
            load::add_part(&mut data, key, part);
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();

    let settings = job.settings.clone();
    let rubric = job.rubric.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let mut computed = compute(&data, window, periods, &settings, &stored);
        pass_rates(&mut computed.aggregates, &data, &rubric);
        computed
    })
    .await
    .map_err(|e| AnalyseError::Write {
        table: "drift",
        date: window.since,
        message: e.to_string(),
    })?;
    let Computed {
        drift: drift_by_day,
        aggregates: aggregates_by_day,
        tracks: tracks_by_day,
        topics: topic_windows,
    } = computed;
    let topic_rows = topics::rows(warehouse, &topic_windows, |start| {
        window_days(periods.days(start)).collect()
    })
    .await?;
    let compute_seconds = started.elapsed().as_secs_f64() - load_seconds;

    let mut summary = AnalyseSummary {
        window: DateRange {
            since: window.since,
            until: periods.days(window.until).until,
        }
        .to_string(),
        window_days: job.settings.window_days,
        rubric: job.rubric.key(),
        judge: job.judge.clone(),
        load_seconds,
        compute_seconds,
        ..AnalyseSummary::default()
    };
    let mut models = BTreeSet::new();
    for ((model, date), rows) in &drift_by_day {
        models.insert(model.clone());
        summary.model_days += 1;
        summary.drift_rows += rows.len() as u64;
        let mut alerted: BTreeMap<String, Alert> = BTreeMap::new();
        let mut warned: BTreeSet<String> = BTreeSet::new();
        for (r, _) in rows {
            match r.verdict {
                "alert" => {
                    summary.alerting_tests += 1;
                    alerted
                        .entry(r.metric.clone())
                        .or_insert_with(|| Alert {
                            model: model.clone(),
                            date: *date,
                            metric: r.metric.clone(),
                            tests: Vec::new(),
                            statistic: r.statistic,
                            pattern: r.pattern.to_string(),
                        })
                        .tests
                        .push(r.test.to_string());
                }
                "warn" => {
                    summary.warning_tests += 1;
                    warned.insert(r.metric.clone());
                }
                "insufficient_data" => summary.insufficient_data += 1,
                _ => {}
            }
        }
        summary.warnings += warned.iter().filter(|m| !alerted.contains_key(*m)).count() as u64;
        summary.alerts += alerted.len() as u64;
        summary.alerted.extend(alerted.into_values());
    }
    summary.models = models.len() as u64;

    let analysed_at = Utc::now().timestamp_micros();
    for day in periods.starts_in(window) {
        let rows: Vec<(&String, &DriftRow, &String)> = drift_by_day
            .iter()
            .filter(|((_, d), _)| *d == day)
            .flat_map(|((m, _), rows)| rows.iter().map(move |r| (m, &r.0, &r.1)))
            .collect();
        let aggregates: Vec<(&String, &AggregateRow)> = aggregates_by_day
            .iter()
            .filter(|((_, d), _)| *d == day)
            .map(|((m, _), a)| (m, a))
            .collect();
        let key = format!("drift/date={day}/part-{}.parquet", &name[..16]);
        if rows.is_empty() {
            warehouse.delete(&key).await?;
        } else {
            let bytes = drift_frame(&rows, &job, analysed_at)
                .and_then(|mut df| write_parquet(&mut df, job.compression))
                .map_err(|e| AnalyseError::Write {
                    table: "drift",
                    date: day,
                    message: e.to_string(),
                })?;
            warehouse.put(&key, bytes).await?;
        }
        let key = aggregates_key(&name, day);
        if aggregates.is_empty() {
            warehouse.delete(&key).await?;
        } else {
            let bytes = aggregates_frame(&aggregates, &job, analysed_at)
                .and_then(|mut df| write_parquet(&mut df, job.compression))
                .map_err(|e| AnalyseError::Write {
                    table: "aggregates",
                    date: day,
                    message: e.to_string(),
                })?;
            warehouse.put(&key, bytes).await?;
        }
        let key = format!(
            "{}/date={day}/part-{}.parquet",
            schema::topics::TABLE,
            &name[..16]
        );
        let rows: Vec<&topics::TopicRow> = topic_rows
            .iter()
            .filter(|((_, d), _)| *d == day)
            .flat_map(|(_, rows)| rows)
            .collect();
        if rows.is_empty() {
            warehouse.delete(&key).await?;
        } else {
            let bytes = topics::frame(
                &rows,
                job.settings.window_days,
                &job.rubric.key(),
                &job.judge,
                analysed_at,
            )
            .and_then(|mut df| write_parquet(&mut df, job.compression))
            .map_err(|e| AnalyseError::Write {
                table: "topics",
                date: day,
                message: e.to_string(),
            })?;
            warehouse.put(&key, bytes).await?;
        }
        let tracks = StoredTracks {
            settings: settings_hash(&job),
            models: tracks_by_day
                .iter()
                .filter(|((_, d), _)| *d == day)
                .map(|((m, _), t)| (m.clone(), t.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&tracks).map_err(|e| AnalyseError::Write {
            table: "state/analyse-tracks",
            date: day,
            message: e.to_string(),
        })?;
        warehouse.put(&tracks_key(&name, day), bytes).await?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn window_days(window: DateRange) -> impl Iterator<Item = NaiveDate> {
    window
        .since
        .iter_days()
        .take_while(move |d| *d <= window.until)
}

/// Drift rows with their baseline description, per (model, day).
type DriftByDay = BTreeMap<(String, NaiveDate), Vec<(DriftRow, String)>>;

/// One row of the `aggregates` table (per model per day).
#[derive(Debug, Clone, Default)]
pub struct AggregateRow {
    pub requests: u64,
    pub judged: u64,
    pub judge_errors: u64,
    pub skipped_budget: u64,
    /// Per dimension: (mean, pass rate), in rubric order.
    pub dimensions: BTreeMap<String, (Option<f64>, Option<f64>)>,
    pub composite_mean: Option<f64>,
    pub composite_pass_rate: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub prompt_chars_mean: Option<f64>,
    pub response_chars_mean: Option<f64>,
    pub refusal_rate: Option<f64>,
    pub judge_cost_usd: f64,
    pub alerts: u64,
    pub warnings: u64,
    /// A jury's members' agreement per dimension (Krippendorff's alpha, ordinal), and its
    /// captures with members two levels apart; empty / `None` for a single judge.
    pub jury_alpha: BTreeMap<String, Option<f64>>,
    /// Per dimension (and `composite`): the minimum detectable drops within
    /// [`sequential::MDE_DAYS`].
    pub mde: BTreeMap<String, [Option<f64>; 3]>,
    pub jury_disagreements: Option<u64>,
    pub invocations: Option<f64>,
    pub errors_5xx: Option<f64>,
    pub model_latency_ms_mean: Option<f64>,
    pub gpu_util_mean: Option<f64>,
    pub gpu_util_p95: Option<f64>,
    /// GPU utilisation at the moments requests were captured (as-of join on time).
    pub gpu_util_at_requests: Option<f64>,
    pub gpu_mem_mean: Option<f64>,
    pub gpus_allocated: Option<f64>,
    pub cost_usd: Option<f64>,
    pub cost_per_1k_requests: Option<f64>,
    /// Cost per million tokens (prompt + completion), from the captures' mean tokens per request
    /// times the requests the cost is spread over.
    pub cost_per_1m_tokens: Option<f64>,
    /// Composite quality per USD of cost per 1,000 requests.
    pub quality_per_dollar: Option<f64>,
}

type AggregatesByDay = BTreeMap<(String, NaiveDate), AggregateRow>;

/// Per model, the tracks after each day of the window.
type TracksByDay = BTreeMap<(String, NaiveDate), ModelTracks>;

/// Per model and analysed window, its prompts under its epoch's topics.
type TopicsByDay = BTreeMap<(String, NaiveDate), topics::TopicWindow>;

/// What the comparison of every model's windows gives.
#[derive(Default)]
struct Computed {
    drift: DriftByDay,
    aggregates: AggregatesByDay,
    tracks: TracksByDay,
    topics: TopicsByDay,
}

/// Compares every day of every model with its baseline; keeps the window's days. Models are
/// independent: each runs on its own thread.
fn compute(
    data: &Data,
    window: DateRange,
    periods: Periods,
    settings: &AnalyseSettings,
    stored: &BTreeMap<String, ModelTracks>,
) -> Computed {
    let models: BTreeSet<&String> = data.keys().map(|(m, _)| m).chain(stored.keys()).collect();
    let per_model: Vec<Computed> = std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .into_iter()
            .map(|model| {
                let stored = stored.get(model);
                scope.spawn(move || compute_model(data, model, window, periods, settings, stored))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = Computed::default();
    for c in per_model {
        all.drift.extend(c.drift);
        all.aggregates.extend(c.aggregates);
        all.tracks.extend(c.tracks);
        all.topics.extend(c.topics);
    }
    all
}

/// The analyse stage's decisions over one model's daily data in memory, day after day as a
/// nightly run makes them (baselines with their exclusions, tests, CUSUMs, patterns, minimum
/// detectable drops): per day its drift rows and aggregates. For simulations
/// (`examples/sensitivity.rs`); days without values are skipped as in a warehouse.
pub fn replay(
    days: Vec<DayData>,
    settings: &AnalyseSettings,
) -> Vec<(Vec<DriftRow>, AggregateRow)> {
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let model = "replay".to_string();
    let count = days.len();
    let data: Data = days
        .into_iter()
        .enumerate()
        .map(|(i, d)| ((model.clone(), first + Days::new(i as u64)), d))
        .collect();
    let window = DateRange {
        since: first,
        until: first + Days::new(count.saturating_sub(1) as u64),
    };
    let Computed {
        mut drift,
        mut aggregates,
        ..
    } = compute_model(&data, &model, window, Periods { len: 1 }, settings, None);
    (0..count)
        .filter_map(|i| {
            let key = (model.clone(), first + Days::new(i as u64));
            let rows = drift.remove(&key)?.into_iter().map(|(r, _)| r).collect();
            Some((rows, aggregates.remove(&key)?))
        })
        .collect()
}

/// One model's windows (`data` keyed by window start; `window` the range of the analysed
/// windows' starts).
fn compute_model(
    data: &Data,
    model: &String,
    window: DateRange,
    periods: Periods,
    settings: &AnalyseSettings,
    stored: Option<&ModelTracks>,
) -> Computed {
    let mut drift = DriftByDay::new();
    let mut aggregates = AggregatesByDay::new();
    let mut after = TracksByDay::new();
    let mut topic_windows = TopicsByDay::new();
    let present: BTreeSet<NaiveDate> = data
        .keys()
        .filter(|(m, _)| m == model)
        .map(|(_, d)| *d)
        .collect();
    // The patterns continue from the stored tracks; without them, the windows before are
    // compared too, only to give the patterns a history.
    let (mut tracks, mut last_seen, mut suspicion, first) = match stored {
        Some(stored) => (
            stored.metrics.clone(),
            Some(stored.last_seen),
            stored.suspicion.clone(),
            window.since,
        ),
        None => (
            BTreeMap::new(),
            None,
            Suspicion::default(),
            periods.back(window.since, PATTERN_HISTORY),
        ),
    };
    // A baseline is merged once for as long as its windows stay the same.
    let mut cached: Option<(Vec<NaiveDate>, DayData)> = None;
    // Topics are fitted once per epoch of a baseline's length (counted like the windows, from
    // 1970-01-05), on the baseline of the epoch's first window with every day in it: the same
    // topics for each window of the epoch whichever night computes it, one k-means per epoch.
    let epochs = Periods {
        len: settings.baseline_windows() as u32 * periods.len,
    };
    let mut topics: Option<(NaiveDate, Option<Arc<Topics>>)> = None;
    for start in periods.starts_in(DateRange {
        since: first,
        until: window.until,
    }) {
        if present.contains(&start) {
            let (members, description) =
                rolling_members(&present, start, settings.baseline, &suspicion);
            if cached.as_ref().is_none_or(|(k, _)| *k != members) {
                let days: Vec<&DayData> = members
                    .iter()
                    .filter_map(|d| data.get(&(model.clone(), *d)))
                    .collect();
                cached = Some((members, DayData::merged(&days)));
            }
            let Some((_, baseline)) = &cached else {
                continue;
            };
            let epoch = match settings.baseline {
                Baseline::Fixed(range) => range.since,
                Baseline::Rolling(_) => epochs.start_of(start),
            };
            if settings.embedding.enabled && topics.as_ref().is_none_or(|(e, _)| *e != epoch) {
                let (range, _) = baseline_of(epoch, settings.baseline);
                let prompts: Vec<load::Embedded> = present
                    .iter()
                    .filter(|d| range.contains(**d))
                    .filter_map(|d| data.get(&(model.clone(), *d)))
                    .flat_map(|d| d.prompt_vectors.iter().cloned())
                    .collect();
                let fitted = embedding::topics_of(&prompts, &settings.embedding).map(Arc::new);
                topics = Some((epoch, fitted));
            }
            let fitted = topics.as_ref().and_then(|(_, t)| t.clone());
            let topics = fitted.as_deref();
            let current = &data[&(model.clone(), start)];
            let seed = u64::from(start.num_days_from_ce().unsigned_abs())
                ^ u64::from_str_radix(&sha256_hex(model.as_bytes())[..12], 16).unwrap_or(0);
            let extra = embedding::extra(
                current,
                baseline,
                topics,
                &settings.embedding,
                settings.min_count,
                seed,
            );
            let mut rows = drift::compare(current, baseline, &extra, settings);
            let status = drift::label_patterns(&mut rows, &mut tracks);
            // A young baseline (fewer windows than it will hold) keeps every window: freezing
            // it on its first days would pin a baseline of a day or two.
            let mature = settings
                .rolling_windows()
                .is_some_and(|windows| cached.as_ref().map_or(0, |(m, _)| m.len()) >= windows);
            if mature {
                suspicion.record(start, status, periods.back(start, SUSPICION_WINDOWS - 1));
            }
            suspicion.prune(baseline_reach(start, settings.baseline).since);
            last_seen = Some(start);
            if window.contains(start) {
                if let Some(fitted) = &fitted
                    && let Some(w) = topics::TopicWindow::of(epoch, fitted, current, baseline)
                {
                    topic_windows.insert((model.clone(), start), w);
                }
                aggregates.insert(
                    (model.clone(), start),
                    aggregate(current, baseline, &rows, settings),
                );
                drift.insert(
                    (model.clone(), start),
                    rows.into_iter().map(|r| (r, description.clone())).collect(),
                );
            }
        }
        // A model silent for longer than the history a rebuild would look at starts afresh.
        let recent = last_seen.filter(|seen| *seen > periods.back(start, PATTERN_HISTORY));
        if let (true, Some(seen)) = (window.contains(start), recent) {
            after.insert(
                (model.clone(), start),
                ModelTracks {
                    last_seen: seen,
                    metrics: tracks.clone(),
                    suspicion: suspicion.clone(),
                },
            );
        }
    }
    Computed {
        drift,
        aggregates,
        tracks: after,
        topics: topic_windows,
    }
}

/// The mean GPU utilisation seen by requests: for each capture, the last telemetry sample at or
/// before it (within an hour), averaged.
pub fn gpu_util_at(captured_at: &[i64], telemetry_ts: &[i64], gpu_util: &[f64]) -> Option<f64> {
    let mut samples: Vec<(i64, f64)> = telemetry_ts
        .iter()
        .zip(gpu_util)
        .filter(|(_, u)| u.is_finite())
        .map(|(t, u)| (*t, *u))
        .collect();
    if samples.is_empty() {
        return None;
    }
    samples.sort_by_key(|(t, _)| *t);
    const HOUR_US: i64 = 3_600_000_000;
    let seen: Vec<f64> = captured_at
        .iter()
        .filter_map(|t| {
            let after = samples.partition_point(|(s, _)| s <= t);
            let (s, u) = samples.get(after.checked_sub(1)?)?;
            (t - s <= HOUR_US).then_some(*u)
        })
        .collect();
    (!seen.is_empty()).then(|| stats::mean(&seen))
}

/// The minimum detectable drops of a score metric within [`sequential::MDE_DAYS`]: the day's n,
/// the baseline's variance, the CUSUM level of the day's `cusum_down` row (the Gaussian one when
/// there is none), the per-day test's alpha and least effect.
fn detectable(
    metric: &str,
    day: &[f64],
    baseline: &[f64],
    rows: &[DriftRow],
    settings: &AnalyseSettings,
) -> [Option<f64>; 3] {
    let (_, variance, nb) = sequential::moments(baseline);
    let n = day.len();
    if n == 0 || nb < 2 {
        return [None; 3];
    }
    let h = rows
        .iter()
        .find(|r| r.metric == metric && r.test == "cusum_down")
        .and_then(|r| r.threshold);
    // The metrics whose CUSUM can alert: the dimensions and the composite.
    let can_alert = rows
        .iter()
        .filter(|r| r.test == "cusum_down" && drift::sequential_alerts(&r.metric))
        .count();
    let monitor = drift::monitor(settings, variance, (n, nb), h, can_alert);
    sequential::MDE_DAYS.map(|days| sequential::mde(&monitor, days))
}

fn aggregate(
    day: &DayData,
    baseline: &DayData,
    rows: &[DriftRow],
    settings: &AnalyseSettings,
) -> AggregateRow {
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let mean = |v: &[f64]| {
        let v = finite(v);
        (!v.is_empty()).then(|| stats::mean(&v))
    };
    let sorted = |v: &[f64]| {
        let mut v = finite(v);
        v.sort_by(f64::total_cmp);
        v
    };
    let latency = sorted(&day.latency_ms);
    // Per-request latency from the captures where they carry it, else the telemetry's interval
    // means weighted by their invocations (an approximation of the per-request percentiles).
    let quantile = |q: f64| {
        if latency.is_empty() {
            stats::weighted_quantile(&day.model_latency_ms, &day.model_latency_weights, q)
        } else {
            Some(stats::quantile_sorted(&latency, q))
        }
    };
    let gpu = sorted(&day.gpu_util);
    // Requests for cost: the endpoint's invocations when telemetry has them (captures are often
    // a sample of the traffic), else the captured requests.
    let requests_for_cost = day.invocations.unwrap_or(day.requests as f64);
    let cost_per_1k = day
        .cost_usd
        .filter(|_| requests_for_cost > 0.0)
        .map(|c| c / (requests_for_cost / 1000.0));
    let composite_mean = mean(&day.composite);
    // Mean tokens per request: mean prompt tokens plus mean completion tokens, each over the
    // captures that report it.
    let tokens_per_request = match (mean(&day.prompt_tokens), mean(&day.completion_tokens)) {
        (Some(p), Some(c)) => Some(p + c),
        (Some(p), None) => Some(p),
        (None, Some(c)) => Some(c),
        (None, None) => None,
    };
    let cost_per_1m_tokens = match (day.cost_usd, tokens_per_request) {
        (Some(cost), Some(t)) if t > 0.0 && requests_for_cost > 0.0 => {
            Some(cost / (t * requests_for_cost / 1e6))
        }
        _ => None,
    };
    AggregateRow {
        cost_per_1m_tokens,
        invocations: day.invocations,
        errors_5xx: day.errors_5xx,
        model_latency_ms_mean: mean(&day.model_latency_ms),
        gpu_util_mean: mean(&gpu),
        gpu_util_p95: (!gpu.is_empty()).then(|| stats::quantile_sorted(&gpu, 0.95)),
        gpu_util_at_requests: gpu_util_at(&day.captured_at, &day.telemetry_ts, &day.gpu_util),
        gpu_mem_mean: mean(&day.gpu_mem),
        gpus_allocated: mean(&day.gpus_allocated),
        cost_usd: day.cost_usd,
        cost_per_1k_requests: cost_per_1k,
        quality_per_dollar: match (composite_mean, cost_per_1k) {
            (Some(q), Some(c)) if c > 0.0 => Some(q / c),
            _ => None,
        },
        requests: day.requests,
        judged: day.composite.len() as u64,
        judge_errors: day.judge_error.iter().filter(|e| **e > 0.5).count() as u64,
        skipped_budget: day.skipped_budget,
        dimensions: day
            .scores
            .iter()
            .map(|(d, v)| (d.clone(), (mean(v), None)))
            .collect(),
        composite_mean,
        composite_pass_rate: None,
        latency_p50_ms: quantile(0.5),
        latency_p99_ms: quantile(0.99),
        prompt_chars_mean: mean(&day.prompt_chars),
        response_chars_mean: mean(&day.response_chars),
        refusal_rate: mean(&day.refusal),
        judge_cost_usd: day.judge_cost_usd,
        jury_alpha: day
            .jury
            .iter()
            .map(|(d, units)| {
                (
                    d.clone(),
                    crate::agreement::krippendorff_alpha_ordinal(units),
                )
            })
            .collect(),
        mde: day
            .scores
            .iter()
            .map(|(d, v)| {
                let base = baseline.scores.get(d).map_or(&[][..], |b| b.as_slice());
                (
                    d.clone(),
                    detectable(&format!("score.{d}"), v, base, rows, settings),
                )
            })
            .chain(std::iter::once((
                "composite".to_string(),
                detectable(
                    "score.composite",
                    &day.composite,
                    &baseline.composite,
                    rows,
                    settings,
                ),
            )))
            .collect(),
        jury_disagreements: (!day.jury.is_empty()).then_some(day.jury_disagreements),
        alerts: events(rows, "alert", None),
        warnings: events(rows, "warn", Some("alert")),
    }
}

/// Fills the pass rates of each aggregates row: the share of the judged captures at or above
/// each dimension's alert threshold, and of the composite at or above the rubric's (none where
/// the rubric sets no threshold).
fn pass_rates(aggregates: &mut AggregatesByDay, data: &Data, rubric: &Rubric) {
    let share = |values: &[f64], threshold: f64| {
        (!values.is_empty()).then(|| {
            values.iter().filter(|v| **v >= threshold).count() as f64 / values.len() as f64
        })
    };
    for (key, row) in aggregates.iter_mut() {
        let Some(day) = data.get(key) else {
            continue;
        };
        for d in &rubric.dimensions {
            if let (Some(entry), Some(threshold)) =
                (row.dimensions.get_mut(&d.name), d.alert_threshold)
            {
                entry.1 = day.scores.get(&d.name).and_then(|v| share(v, threshold));
            }
        }
        row.composite_pass_rate = rubric
            .composite_alert_threshold
            .and_then(|t| share(&day.composite, t));
    }
}

/// Distinct metrics with a test of `verdict` (and none of `unless`): events, not test rows.
fn events(rows: &[DriftRow], verdict: &str, unless: Option<&str>) -> u64 {
    let with = |v: &str| -> BTreeSet<&str> {
        rows.iter()
            .filter(|r| r.verdict == v)
            .map(|r| r.metric.as_str())
            .collect()
    };
    let excluded = unless.map(with).unwrap_or_default();
    with(verdict).difference(&excluded).count() as u64
}

fn drift_frame(
    rows: &[(&String, &DriftRow, &String)],
    job: &AnalyseJob,
    analysed_at: i64,
) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let text = |f: &dyn Fn(&DriftRow) -> String| -> Vec<String> {
        rows.iter().map(|(_, r, _)| f(r)).collect()
    };
    let float = |f: &dyn Fn(&DriftRow) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter()
            .map(|(_, r, _)| f(r).filter(|v| v.is_finite()))
            .collect()
    };
    DataFrame::new(
        height,
        vec![
            Column::new(
                schema::drift::MODEL.into(),
                rows.iter().map(|(m, _, _)| m.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(schema::drift::METRIC.into(), text(&|r| r.metric.clone())),
            Column::new(schema::drift::TEST.into(), text(&|r| r.test.to_string())),
            Column::new(schema::drift::STATISTIC.into(), float(&|r| r.statistic)),
            Column::new(schema::drift::P_VALUE.into(), float(&|r| r.p_value)),
            Column::new(schema::drift::P_ADJUSTED.into(), float(&|r| r.p_adjusted)),
            Column::new(schema::drift::THRESHOLD.into(), float(&|r| r.threshold)),
            Column::new(
                schema::drift::N_CURRENT.into(),
                rows.iter()
                    .map(|(_, r, _)| r.n_current as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                schema::drift::N_BASELINE.into(),
                rows.iter()
                    .map(|(_, r, _)| r.n_baseline as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                schema::drift::BASELINE.into(),
                rows.iter().map(|(_, _, b)| b.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                schema::drift::CURRENT_MEAN.into(),
                float(&|r| r.current_mean),
            ),
            Column::new(
                schema::drift::BASELINE_MEAN.into(),
                float(&|r| r.baseline_mean),
            ),
            Column::new(schema::drift::CI_LOW.into(), float(&|r| r.ci_low)),
            Column::new(schema::drift::CI_HIGH.into(), float(&|r| r.ci_high)),
            Column::new(
                schema::drift::VERDICT.into(),
                text(&|r| r.verdict.to_string()),
            ),
            Column::new(
                schema::drift::PATTERN.into(),
                text(&|r| r.pattern.to_string()),
            ),
            Column::new(
                schema::drift::WINDOW_DAYS.into(),
                vec![job.settings.window_days as i32; height],
            ),
            text_constant(schema::drift::RUBRIC, &job.rubric.key(), height),
            text_constant(schema::drift::JUDGE, &job.judge, height),
            utc_micros(schema::drift::ANALYSED_AT, vec![analysed_at; height]),
        ],
    )
}

fn aggregates_frame(
    rows: &[(&String, &AggregateRow)],
    job: &AnalyseJob,
    analysed_at: i64,
) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let int = |f: &dyn Fn(&AggregateRow) -> u64| -> Vec<i64> {
        rows.iter().map(|(_, a)| f(a) as i64).collect()
    };
    let float = |f: &dyn Fn(&AggregateRow) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter()
            .map(|(_, a)| f(a).filter(|v| v.is_finite()))
            .collect()
    };
    let mut columns = vec![
        Column::new(
            schema::aggregates::MODEL.into(),
            rows.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            schema::aggregates::WINDOW_DAYS.into(),
            vec![job.settings.window_days as i32; height],
        ),
        Column::new(
            schema::aggregates::TEAM.into(),
            rows.iter()
                .map(|(m, _)| job.teams.get(m.as_str()).map(String::as_str))
                .collect::<Vec<_>>(),
        ),
        Column::new(schema::aggregates::REQUESTS.into(), int(&|a| a.requests)),
        Column::new(schema::aggregates::JUDGED.into(), int(&|a| a.judged)),
        Column::new(
            schema::aggregates::JUDGE_ERRORS.into(),
            int(&|a| a.judge_errors),
        ),
        Column::new(
            schema::aggregates::SKIPPED_BUDGET.into(),
            int(&|a| a.skipped_budget),
        ),
    ];
    for dimension in &job.rubric.dimensions {
        let name = dimension.name.clone();
        let threshold = dimension.alert_threshold;
        columns.push(Column::new(
            schema::dimension_mean(&name).into(),
            float(&|a| a.dimensions.get(&name).and_then(|d| d.0)),
        ));
        columns.push(Column::new(
            schema::dimension_threshold(&name).into(),
            vec![threshold; height],
        ));
        columns.push(Column::new(
            schema::dimension_pass_rate(&name).into(),
            float(&|a| a.dimensions.get(&name).and_then(|d| d.1)),
        ));
        columns.push(Column::new(
            schema::dimension_jury_alpha(&name).into(),
            float(&|a| a.jury_alpha.get(&name).copied().flatten()),
        ));
        for (i, days) in sequential::MDE_DAYS.iter().enumerate() {
            columns.push(Column::new(
                schema::dimension_mde(&name, *days).into(),
                float(&|a| a.mde.get(&name).and_then(|m| m[i])),
            ));
        }
    }
    columns.extend([
        Column::new(
            schema::aggregates::COMPOSITE_MEAN.into(),
            float(&|a| a.composite_mean),
        ),
        Column::new(
            schema::aggregates::COMPOSITE_PASS_RATE.into(),
            float(&|a| a.composite_pass_rate),
        ),
        Column::new(
            schema::aggregates::COMPOSITE_MDE_1D.into(),
            float(&|a| a.mde.get("composite").and_then(|m| m[0])),
        ),
        Column::new(
            schema::aggregates::COMPOSITE_MDE_3D.into(),
            float(&|a| a.mde.get("composite").and_then(|m| m[1])),
        ),
        Column::new(
            schema::aggregates::COMPOSITE_MDE_7D.into(),
            float(&|a| a.mde.get("composite").and_then(|m| m[2])),
        ),
        Column::new(
            schema::aggregates::LATENCY_P50_MS.into(),
            float(&|a| a.latency_p50_ms),
        ),
        Column::new(
            schema::aggregates::LATENCY_P99_MS.into(),
            float(&|a| a.latency_p99_ms),
        ),
        Column::new(
            schema::aggregates::PROMPT_CHARS_MEAN.into(),
            float(&|a| a.prompt_chars_mean),
        ),
        Column::new(
            schema::aggregates::RESPONSE_CHARS_MEAN.into(),
            float(&|a| a.response_chars_mean),
        ),
        Column::new(
            schema::aggregates::REFUSAL_RATE.into(),
            float(&|a| a.refusal_rate),
        ),
        Column::new(
            schema::aggregates::JUDGE_COST_USD.into(),
            float(&|a| Some(a.judge_cost_usd)),
        ),
        Column::new(
            schema::aggregates::INVOCATIONS.into(),
            float(&|a| a.invocations),
        ),
        Column::new(
            schema::aggregates::ERRORS_5XX.into(),
            float(&|a| a.errors_5xx),
        ),
        Column::new(
            schema::aggregates::MODEL_LATENCY_MS_MEAN.into(),
            float(&|a| a.model_latency_ms_mean),
        ),
        Column::new(
            schema::aggregates::GPU_UTIL_MEAN.into(),
            float(&|a| a.gpu_util_mean),
        ),
        Column::new(
            schema::aggregates::GPU_UTIL_P95.into(),
            float(&|a| a.gpu_util_p95),
        ),
        Column::new(
            schema::aggregates::GPU_UTIL_AT_REQUESTS.into(),
            float(&|a| a.gpu_util_at_requests),
        ),
        Column::new(
            schema::aggregates::GPU_MEM_MEAN.into(),
            float(&|a| a.gpu_mem_mean),
        ),
        Column::new(
            schema::aggregates::GPUS_ALLOCATED.into(),
            float(&|a| a.gpus_allocated),
        ),
        Column::new(schema::aggregates::COST_USD.into(), float(&|a| a.cost_usd)),
        Column::new(
            schema::aggregates::COST_PER_1K_REQUESTS.into(),
            float(&|a| a.cost_per_1k_requests),
        ),
        Column::new(
            schema::aggregates::COST_PER_1M_TOKENS.into(),
            float(&|a| a.cost_per_1m_tokens),
        ),
        Column::new(
            schema::aggregates::QUALITY_PER_DOLLAR.into(),
            float(&|a| a.quality_per_dollar),
        ),
        Column::new(schema::aggregates::ALERTS.into(), int(&|a| a.alerts)),
        Column::new(schema::aggregates::WARNINGS.into(), int(&|a| a.warnings)),
        Column::new(
            schema::aggregates::JURY_DISAGREEMENTS.into(),
            rows.iter()
                .map(|(_, a)| a.jury_disagreements.map(|n| n as i64))
                .collect::<Vec<_>>(),
        ),
        text_constant(schema::aggregates::RUBRIC, &job.rubric.key(), height),
        text_constant(schema::aggregates::JUDGE, &job.judge, height),
        utc_micros(schema::aggregates::ANALYSED_AT, vec![analysed_at; height]),
    ]);
    DataFrame::new(height, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_and_aggregates_write_the_schemas_columns() {
        let config = crate::config::load(None).unwrap();
        let rubric = crate::rubric::load(&config.rubric).unwrap();
        let window = DateRange::new(date("2026-10-01"), date("2026-10-01")).unwrap();
        let job = AnalyseJob::from_config(&config, rubric.clone(), window);
        let drift = drift_frame(&[], &job, 0).unwrap();
        let expected: Vec<String> = schema::drift::COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        schema::check("drift", &drift, &expected).unwrap();
        let aggregates = aggregates_frame(&[], &job, 0).unwrap();
        let fixed = schema::aggregates::COLUMNS;
        let at = fixed
            .iter()
            .position(|c| *c == schema::aggregates::SKIPPED_BUDGET)
            .unwrap()
            + 1;
        let mut expected: Vec<String> = fixed[..at].iter().map(|c| c.to_string()).collect();
        for d in &rubric.dimensions {
            expected.push(schema::dimension_mean(&d.name));
            expected.push(schema::dimension_threshold(&d.name));
            expected.push(schema::dimension_pass_rate(&d.name));
            expected.push(schema::dimension_jury_alpha(&d.name));
            for days in sequential::MDE_DAYS {
                expected.push(schema::dimension_mde(&d.name, days));
            }
        }
        expected.extend(fixed[at..].iter().map(|c| c.to_string()));
        schema::check("aggregates", &aggregates, &expected).unwrap();
    }

    fn date(text: &str) -> NaiveDate {
        crate::config::parse_date(text).unwrap()
    }

    #[test]
    fn weekly_windows_are_iso_weeks_and_daily_ones_days() {
        let weeks = Periods { len: 7 };
        // 2026-10-01 is a Thursday; its ISO week starts on Monday 2026-09-28.
        assert_eq!(weeks.start_of(date("2026-10-01")), date("2026-09-28"));
        assert_eq!(weeks.start_of(date("2026-09-28")), date("2026-09-28"));
        assert_eq!(weeks.start_of(date("2026-10-04")), date("2026-09-28"));
        assert_eq!(weeks.start_of(date("1969-12-31")), date("1969-12-29"));
        let range = DateRange::new(date("2026-10-01"), date("2026-10-18")).unwrap();
        assert_eq!(
            weeks.cover(range),
            DateRange::new(date("2026-09-28"), date("2026-10-12")).unwrap()
        );
        // Windows starting in a range: not the one that began before it.
        let starts: Vec<NaiveDate> = weeks.starts_in(range).collect();
        assert_eq!(starts, vec![date("2026-10-05"), date("2026-10-12")]);
        assert_eq!(weeks.days(date("2026-10-12")).until, date("2026-10-18"));
        let days = Periods { len: 1 };
        assert_eq!(days.start_of(date("2026-10-01")), date("2026-10-01"));
        assert_eq!(days.starts_in(range).count(), 18);
        assert_eq!(days.back(date("2026-10-08"), 7), date("2026-10-01"));
    }

    #[test]
    fn the_days_read_are_the_windows_their_baselines_and_the_history() {
        let weeks = Periods { len: 7 };
        let window = weeks.cover(DateRange::new(date("2026-10-12"), date("2026-10-12")).unwrap());
        let days = days_to_read(window, weeks, Baseline::Rolling(14), false);
        // The week itself and the four before it (a rolling baseline reaches back twice its
        // length, for clean windows in the place of suspect ones).
        assert_eq!(days.first(), Some(&date("2026-09-14")));
        assert_eq!(days.last(), Some(&date("2026-10-18")));
        assert_eq!(days.len(), 35);
        let fixed = DateRange::new(date("2026-09-01"), date("2026-09-10")).unwrap();
        let daily = Periods { len: 1 };
        let one = DateRange::new(date("2026-09-30"), date("2026-09-30")).unwrap();
        let days = days_to_read(one, daily, Baseline::Fixed(fixed), false);
        // The baseline and the day, not the days between.
        assert_eq!(days.len(), 11);
        let with_history = days_to_read(one, daily, Baseline::Fixed(fixed), true);
        assert_eq!(with_history.len(), 18);
        assert!(with_history.contains(&date("2026-09-23")));
    }
}
