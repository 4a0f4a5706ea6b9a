//! The score stage: the sampled captures of a window judged against a rubric, into `scores/`.
//!
//! Reads: `captures/model=<m>/date=<d>/` parts of the window; the judge cache in `state/`.
//! Writes: `scores/rubric=<id>@<version>/model=<m>/date=<d>/part-<h>.parquet`, long form (one row
//! per capture and dimension), the part named from (rubric hash, judge id, judge params) so a
//! re-run of the same day replaces it instead of adding rows; the judge cache.
//! Never does: drop a sampled capture or default a failed judgment to a score. Every sampled
//! capture ends `ok`, `error` (with the reason) or `skipped_budget`; only `--limit` leaves rows
//! out of a part, and a later run without it fills them in (cached judgments are free).
//!
//! The parts: [`sample`] picks the rows; the judge cache ([`cache`]) answers what was judged
//! before; the engine ([`engine`]) makes the LLM calls, paced and retried; this module owns the
//! order of things, the budget, and writing each partition once all of its rows are in.

pub mod batch;
pub mod cache;
pub mod current;
pub mod engine;
pub mod jury;
mod progress;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::aws::AwsClients;
use crate::config::{Compression, DateRange, JudgeSettings, Sampling};
use crate::judge::protocol::{self, Judgment};
use crate::judge::{Judge, offline};
use crate::rubric::Rubric;
use crate::schema;
use crate::table::{text_constant, utc_micros, write_parquet};
use crate::util::{partition_value, request_key};
use crate::warehouse::{Warehouse, WarehouseError};

use cache::{CachedJudgment, Scope};
use engine::{CallStats, Engine, PairOutcome};
pub use progress::ProgressMode;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read captures part `{key}`: {message}")]
    ReadPart { key: String, message: String },
    #[error("cannot write scores for `{partition}`: {message}")]
    WritePart { partition: String, message: String },
    #[error("cannot set up the judge: {0}")]
    Judge(String),
    #[error(transparent)]
    Rubric(#[from] current::RubricCheckError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error(transparent)]
    Compact(#[from] crate::compact::CompactError),
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    /// The judge cannot be used at all: stopped before the first call.
    #[error("the judge `{judge}` cannot be called: {message}")]
    Unusable {
        judge: String,
        message: String,
        hint: String,
    },
    /// A stop was requested: what was judged is written and cached.
    #[error(transparent)]
    Interrupted(#[from] crate::shutdown::Interrupted),
    /// The circuit breaker tripped: judging stopped; what was judged is written.
    #[error(
        "stopped judging after {in_a_row} judgments in a row failed ({attempted} attempted, \
         {not_attempted} sampled captures left for a later run): {cause}"
    )]
    JudgeDown {
        cause: crate::judge::CallError,
        in_a_row: u32,
        attempted: u64,
        not_attempted: u64,
    },
}

impl ScoreError {
    /// What a user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            ScoreError::Unusable { hint, .. } => Some(hint.clone()),
            ScoreError::JudgeDown { cause, .. } => Some(format!(
                "{}; the next run judges the captures left out and those that failed \
                 (failures are never cached)",
                cause.hint()
            )),
            _ => None,
        }
    }
}

/// What to score.
#[derive(Debug, Clone)]
pub struct ScoreJob {
    pub rubric: Rubric,
    /// Capture dates to score; `None` scores every date.
    pub window: Option<DateRange>,
    /// Only this model (inference component).
    pub model: Option<String>,
    pub compression: Compression,
    pub judge: JudgeSettings,
    pub sampling: Sampling,
    /// Most USD this run may spend on judge calls.
    pub budget_usd: Option<f64>,
    /// Most pairs judged (new judge calls) this run; the rest wait for a later run.
    pub limit: Option<u64>,
    /// Plan only: count, estimate, call nothing, write nothing.
    pub dry_run: bool,
    pub progress: ProgressMode,
    /// Stop requests (SIGTERM/SIGINT): no new judgment once requested; calls in flight get
    /// `judge.shutdown-grace` to finish.
    pub shutdown: crate::shutdown::Shutdown,
    /// Judge only this shard's partitions; `None`: all of them.
    pub shard: Option<crate::shard::Shard>,
    /// Batch mode: how long to wait for running batch jobs (and the one submitted) to finish
    /// before writing rows; `None`: collect what is done, submit, and leave the rest.
    pub batch_wait: Option<std::time::Duration>,
}

impl ScoreJob {
    /// The job the config describes: every date, every model, the configured judge, sampling
    /// and budget, no limit, progress lines.
    pub fn from_config(config: &crate::config::Config, rubric: Rubric) -> ScoreJob {
        ScoreJob {
            rubric,
            window: None,
            model: None,
            compression: config.compression,
            judge: config.judge.clone(),
            sampling: config.sampling,
            budget_usd: config.budget_usd,
            limit: None,
            dry_run: false,
            progress: ProgressMode::Lines,
            shutdown: crate::shutdown::Shutdown::new(),
            shard: None,
            batch_wait: None,
        }
    }

    /// This job as shard `shard` runs it: its partitions only, and its share of the judge's
    /// quota and the budget (requests and tokens per minute and USD divided by N), since the N
    /// shards call the same judge account at once.
    pub fn for_shard(mut self, shard: Option<crate::shard::Shard>) -> ScoreJob {
        if let Some(shard) = shard {
            self.judge.requests_per_minute = shard.share(self.judge.requests_per_minute);
            self.judge.tokens_per_minute = shard.share(self.judge.tokens_per_minute);
            self.budget_usd = self.budget_usd.map(|b| shard.share(b));
        }
        self.shard = shard;
        self
    }
}

impl ScoreJob {
    /// Every capture of a scratch warehouse (compare's sides, calibrate's labelled items): no
    /// window, no sampling, no limit, the given judge and budget.
    pub fn scratch(
        rubric: Rubric,
        judge: JudgeSettings,
        budget_usd: Option<f64>,
        compression: Compression,
        progress: ProgressMode,
    ) -> ScoreJob {
        ScoreJob {
            rubric,
            window: None,
            model: None,
            compression,
            judge,
            sampling: Sampling::all(),
            budget_usd,
            limit: None,
            dry_run: false,
            progress,
            shutdown: crate::shutdown::Shutdown::new(),
            shard: None,
            batch_wait: None,
        }
    }
}

/// One partition as planned (and, unless a dry run, done).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionPlan {
    pub model: String,
    pub date: NaiveDate,
    pub captures: u64,
    pub sampled: u64,
    pub cached: u64,
    pub to_judge: u64,
    pub skipped_budget: u64,
    pub deferred_limit: u64,
    /// Sampled captures waiting in a Bedrock batch job (no rows until it is collected).
    #[serde(skip_serializing_if = "crate::util::is_zero")]
    pub batch_pending: u64,
}

/// What batch mode did in a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchSummary {
    /// Jobs and records collected this run (finished jobs read into the cache).
    pub jobs_collected: u64,
    pub collected: batch::Counts,
    /// Records that failed in a job (or had no output) judged on demand this run.
    pub judged_on_demand: u64,
    /// Jobs and records submitted this run.
    pub jobs_submitted: u64,
    pub submitted: u64,
    /// Jobs still running, and their records.
    pub jobs_pending: u64,
    pub pending: u64,
    /// The submitted records' estimated cost at the batch price.
    pub submitted_estimated_usd: f64,
    /// What the collected judgments cost at the batch price.
    pub collected_usd: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScoreSummary {
    pub rubric: String,
    pub rubric_hash: String,
    pub judge: String,
    pub judge_params_hash: String,
    pub dry_run: bool,
    pub partitions: u64,
    pub captures: u64,
    /// Captures chosen by sampling.
    pub sampled: u64,
    /// Sampled captures answered by the judge cache (no call).
    pub from_cache: u64,
    /// Sampled captures judged this run (dry run: that would be).
    pub judged: u64,
    /// Sampled captures left for a later run by `--limit`.
    pub deferred_limit: u64,
    /// Sampled captures the budget cut (each is `skipped_budget` rows).
    pub skipped_budget: u64,
    /// Judgments that failed this run (each is `error` rows; judged again next run).
    pub failed: u64,
    /// Why the stage counts as failed though it finished: more than `judge.max-error-share` of
    /// this run's judgments failed. `None` when it did not.
    pub failure: Option<String>,
    pub rows_ok: u64,
    pub rows_error: u64,
    pub rows_skipped_budget: u64,
    /// Judge calls made, retries and repairs included.
    pub calls: u64,
    /// Times the pacer cut its rate on throttling, and times it took a cut back because the
    /// throttling turned out to be the service's own (capacity), not the rate's.
    pub pacer_cuts: u64,
    pub pacer_restores: u64,
    pub retries: u64,
    pub throttled: u64,
    pub timeouts: u64,
    pub server_errors: u64,
    pub repairs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from, and written to, the judge's prompt cache.
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// What this run's calls cost (null without judge prices).
    pub cost_usd: Option<f64>,
    /// What the pairs to judge were estimated to cost before calling (the dry-run figure).
    pub estimated_cost_usd: Option<f64>,
    /// The same pairs at the batch price, when batch prices are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_batch_cost_usd: Option<f64>,
    /// `on-demand` or `batch`.
    pub mode: crate::config::JudgeMode,
    /// Batch mode's jobs and records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSummary>,
    pub budget_usd: Option<f64>,
    pub seconds: f64,
    /// Pairs judged per second of the stage's wall time.
    pub judgments_per_s: f64,
    /// Judge calls (retries and repairs included) per second of the stage's wall time.
    pub calls_per_s: f64,
    pub plan: Vec<PartitionPlan>,
    /// `--dry-run`: what the monitor would see at the planned volume, per model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitivity: Vec<crate::analyse::plan::PlannedSensitivity>,
}

/// A `captures` partition: its path segments as written, and its part keys.
pub(crate) struct Partition {
    pub model_segment: String,
    pub date: NaiveDate,
    pub parts: Vec<String>,
}

/// A partition's capture count and its sampled captures.
struct SampledPartition {
    captures_total: u64,
    captures: Vec<Capture>,
}

impl SampledPartition {
    async fn read(
        warehouse: &Warehouse,
        partition: &Partition,
        sampling: &Sampling,
    ) -> Result<SampledPartition, ScoreError> {
        let captures = read_partition(warehouse, partition).await?;
        Ok(SampledPartition {
            captures_total: captures.len() as u64,
            captures: sample(captures, sampling),
        })
    }
}

/// Every capture of a partition, part by part.
pub(crate) async fn read_partition(
    warehouse: &Warehouse,
    partition: &Partition,
) -> Result<Vec<Capture>, ScoreError> {
    let mut captures = Vec::new();
    for key in &partition.parts {
        let Some(bytes) = warehouse.get(key).await? else {
            continue; // removed by a concurrent ingest since the listing
        };
        let owned = key.clone();
        let part = tokio::task::spawn_blocking(move || read_part(bytes, &owned))
            .await
            .map_err(|e| ScoreError::ReadPart {
                key: key.clone(),
                message: e.to_string(),
            })??;
        captures.extend(part);
    }
    Ok(captures)
}

/// Groups `captures/model=<m>/date=<d>/part-*.parquet` keys by partition, keeping those the job
/// wants.
fn partitions(keys: &[String], job: &ScoreJob) -> Vec<Partition> {
    capture_partitions(keys, job.window, job.model.as_deref(), job.shard)
}

/// Groups `captures/model=<m>/date=<d>/part-*.parquet` keys by partition, keeping those in
/// `window`, of `model` and owned by `shard` (each when given).
pub(crate) fn capture_partitions(
    keys: &[String],
    window: Option<DateRange>,
    model: Option<&str>,
    shard: Option<crate::shard::Shard>,
) -> Vec<Partition> {
    let wanted_model = model.map(partition_value);
    let mut grouped: BTreeMap<(String, NaiveDate), Vec<String>> = BTreeMap::new();
    for key in keys {
        let segments: Vec<&str> = key.split('/').collect();
        let [_, model, date, file] = segments.as_slice() else {
            continue;
        };
        let (Some(model), Some(date)) = (model.strip_prefix("model="), date.strip_prefix("date="))
        else {
            continue;
        };
        let Ok(date) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            continue;
        };
        if !file.ends_with(".parquet")
            || window.is_some_and(|w| !w.contains(date))
            || wanted_model.as_deref().is_some_and(|m| m != model)
            || shard.is_some_and(|s| !s.owns_partition(model, date))
        {
            continue;
        }
        grouped
            .entry((model.to_string(), date))
            .or_default()
            .push(key.clone());
    }
    grouped
        .into_iter()
        .map(|((model_segment, date), parts)| Partition {
            model_segment,
            date,
            parts,
        })
        .collect()
}

/// One captured pair, as scoring needs it.
#[derive(Debug, Clone)]
pub struct Capture {
    pub request_id: String,
    pub content_hash: String,
    pub captured_at: i64,
    pub prompt: String,
    pub response: String,
}

/// Where a sampling hash falls in [0, 1).
fn sample_point(request_id: &str) -> (u64, f64) {
    let h = request_key(request_id);
    (h, h as f64 / 18_446_744_073_709_551_616.0)
}

/// The captures a model-day judges: those whose request-id hash falls under the fraction, then
/// the `per_day` smallest hashes of those. Deterministic: the same rows on every run, and a row
/// once chosen stays chosen as later captures of the day arrive (unless the cap pushes it out
/// in favour of a smaller hash). Keeps the captures' order.
pub fn sample(captures: Vec<Capture>, sampling: &Sampling) -> Vec<Capture> {
    let mut keyed: Vec<(u64, usize, Capture)> = captures
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let (h, point) = sample_point(&c.request_id);
            (point < sampling.fraction).then_some((h, i, c))
        })
        .collect();
    if let Some(cap) = sampling.per_day
        && keyed.len() as u64 > cap
    {
        keyed.sort_by_key(|(h, i, _)| (*h, *i));
        keyed.truncate(cap as usize);
        keyed.sort_by_key(|(_, i, _)| *i);
    }
    keyed.into_iter().map(|(_, _, c)| c).collect()
}

/// Reads the captures of one part (through [`crate::table::read_part`], like every reader).
fn read_part(bytes: Vec<u8>, key: &str) -> Result<Vec<Capture>, ScoreError> {
    let fail = |e: PolarsError| ScoreError::ReadPart {
        key: key.to_string(),
        message: e.to_string(),
    };
    let part = crate::table::PartKey::parse(key).ok_or_else(|| ScoreError::ReadPart {
        key: key.to_string(),
        message: "not a part of a partitioned table".into(),
    })?;
    let df = crate::table::read_part(
        bytes,
        &part,
        &[
            (schema::captures::REQUEST_ID, DataType::String),
            (schema::captures::CONTENT_HASH, DataType::String),
            (schema::captures::CAPTURED_AT, DataType::Int64),
            (schema::captures::PROMPT, DataType::String),
            (schema::captures::RESPONSE, DataType::String),
        ],
    )
    .map_err(fail)?;
    let text = |name: &str| -> Result<Vec<String>, ScoreError> {
        let column = df
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(fail)?;
        Ok(column
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let ids = text(schema::captures::REQUEST_ID)?;
    let hashes = text(schema::captures::CONTENT_HASH)?;
    let prompts = text(schema::captures::PROMPT)?;
    let responses = text(schema::captures::RESPONSE)?;
    let times: Vec<i64> = df
        .column(schema::captures::CAPTURED_AT)
        .and_then(|c| c.cast(&DataType::Int64))
        .and_then(|c| {
            c.i64()
                .map(|ca| ca.iter().map(|v| v.unwrap_or(0)).collect())
        })
        .map_err(fail)?;
    Ok(ids
        .into_iter()
        .zip(hashes)
        .zip(prompts.into_iter().zip(responses))
        .zip(times)
        .map(
            |(((request_id, content_hash), (prompt, response)), captured_at)| Capture {
                request_id,
                content_hash,
                captured_at,
                prompt,
                response,
            },
        )
        .collect())
}

/// How one sampled capture ended.
#[derive(Debug, Clone)]
enum Verdict {
    Judged {
        judgments: Vec<Judgment>,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cache_read_tokens: Option<u64>,
        cache_write_tokens: Option<u64>,
        cost_usd: Option<f64>,
        latency_ms: f64,
    },
    Failed {
        reason: String,
        latency_ms: f64,
    },
    SkippedBudget,
    /// Left out by `--limit` (or not done, in a dry run): no row.
    Deferred,
}

impl Verdict {
    fn from_cache(entry: &CachedJudgment) -> Verdict {
        Verdict::Judged {
            judgments: entry
                .levels
                .iter()
                .zip(&entry.rationales)
                .map(|((dimension, level), rationale)| Judgment {
                    dimension: dimension.clone(),
                    level: *level,
                    rationale: rationale.clone(),
                })
                .collect(),
            input_tokens: Some(entry.input_tokens),
            output_tokens: Some(entry.output_tokens),
            cache_read_tokens: Some(entry.cache_read_tokens),
            cache_write_tokens: Some(entry.cache_write_tokens),
            cost_usd: entry.cost_usd,
            latency_ms: entry.latency_ms,
        }
    }
}

/// Long-form score rows of one partition.
#[derive(Default)]
struct ScoreRows {
    request_id: Vec<String>,
    content_hash: Vec<String>,
    captured_at: Vec<i64>,
    dimension: Vec<String>,
    score: Vec<Option<f64>>,
    label: Vec<Option<String>>,
    rationale: Vec<Option<String>>,
    status: Vec<&'static str>,
    error: Vec<Option<String>>,
    judge_latency_ms: Vec<Option<f64>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    cache_read_tokens: Vec<Option<i64>>,
    cache_write_tokens: Vec<Option<i64>>,
    judge_cost_usd: Vec<Option<f64>>,
    /// A jury's per-member levels (JSON), `None` for a single judge.
    member_levels: Vec<Option<String>>,
}

/// Splits a call's token count over its dimension rows so sums stay exact (remainder first).
fn share(total: Option<u64>, rows: usize, index: usize) -> Option<i64> {
    let total = total?;
    let rows = rows.max(1) as u64;
    let each = total / rows;
    let extra = if index == 0 { total % rows } else { 0 };
    i64::try_from(each + extra).ok()
}

impl ScoreRows {
    fn push(
        &mut self,
        rubric: &Rubric,
        capture: &Capture,
        verdict: &Verdict,
        summary: &mut ScoreSummary,
    ) {
        let n = rubric.dimensions.len();
        for (index, dimension) in rubric.dimensions.iter().enumerate() {
            self.member_levels.push(None);
            self.request_id.push(capture.request_id.clone());
            self.content_hash.push(capture.content_hash.clone());
            self.captured_at.push(capture.captured_at);
            self.dimension.push(dimension.name.clone());
            match verdict {
                Verdict::Judged {
                    judgments,
                    input_tokens,
                    output_tokens,
                    cache_read_tokens,
                    cache_write_tokens,
                    cost_usd,
                    latency_ms,
                } => match judgments.iter().find(|j| j.dimension == dimension.name) {
                    Some(j) => {
                        self.judge_latency_ms.push(Some(*latency_ms));
                        self.input_tokens.push(share(*input_tokens, n, index));
                        self.output_tokens.push(share(*output_tokens, n, index));
                        self.cache_read_tokens
                            .push(share(*cache_read_tokens, n, index));
                        self.cache_write_tokens
                            .push(share(*cache_write_tokens, n, index));
                        self.judge_cost_usd.push(cost_usd.map(|c| c / n as f64));
                        self.score.push(dimension.scale.normalise(j.level));
                        self.label.push(Some(j.level.to_string()));
                        self.rationale.push(Some(j.rationale.clone()));
                        self.status.push(schema::status::OK);
                        self.error.push(None);
                        summary.rows_ok += 1;
                    }
                    None => {
                        let reason = format!("the judge returned no `{}`", dimension.name);
                        self.push_unscored(Some(*latency_ms), schema::status::ERROR, reason);
                        summary.rows_error += 1;
                    }
                },
                Verdict::Failed { reason, latency_ms } => {
                    self.push_unscored(Some(*latency_ms), schema::status::ERROR, reason.clone());
                    summary.rows_error += 1;
                }
                Verdict::SkippedBudget => {
                    let reason = format!(
                        "the run budget of {} USD was reached",
                        summary.budget_usd.unwrap_or(0.0)
                    );
                    self.push_unscored(None, schema::status::SKIPPED_BUDGET, reason);
                    summary.rows_skipped_budget += 1;
                }
                Verdict::Deferred => unreachable!("deferred captures have no rows"),
            }
        }
    }

    /// The columns of a row without a score.
    fn push_unscored(&mut self, latency_ms: Option<f64>, status: &'static str, error: String) {
        self.judge_latency_ms.push(latency_ms);
        self.input_tokens.push(None);
        self.output_tokens.push(None);
        self.cache_read_tokens.push(None);
        self.cache_write_tokens.push(None);
        self.judge_cost_usd.push(None);
        self.score.push(None);
        self.label.push(None);
        self.rationale.push(None);
        self.status.push(status);
        self.error.push(Some(error));
    }

    fn into_frame(
        self,
        rubric: &Rubric,
        judge: &str,
        params_hash: &str,
        scored_at: i64,
    ) -> PolarsResult<DataFrame> {
        let height = self.request_id.len();
        let constant = |name: &str, value: &str| text_constant(name, value, height);
        DataFrame::new(
            height,
            vec![
                Column::new(schema::scores::REQUEST_ID.into(), self.request_id),
                Column::new(schema::scores::CONTENT_HASH.into(), self.content_hash),
                utc_micros(schema::scores::CAPTURED_AT, self.captured_at),
                constant(schema::scores::RUBRIC_ID, &rubric.id),
                constant(schema::scores::RUBRIC_VERSION, &rubric.version),
                constant(schema::scores::RUBRIC_HASH, &rubric.hash()),
                constant(schema::scores::JUDGE, judge),
                constant(schema::scores::JUDGE_PARAMS_HASH, params_hash),
                Column::new(schema::scores::DIMENSION.into(), self.dimension),
                Column::new(schema::scores::SCORE.into(), self.score),
                Column::new(schema::scores::LABEL.into(), self.label),
                Column::new(schema::scores::RATIONALE.into(), self.rationale),
                Column::new(
                    schema::scores::STATUS.into(),
                    self.status
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                ),
                Column::new(schema::scores::ERROR.into(), self.error),
                Column::new(
                    schema::scores::JUDGE_LATENCY_MS.into(),
                    self.judge_latency_ms,
                ),
                Column::new(schema::scores::INPUT_TOKENS.into(), self.input_tokens),
                Column::new(schema::scores::OUTPUT_TOKENS.into(), self.output_tokens),
                Column::new(
                    schema::scores::CACHE_READ_TOKENS.into(),
                    self.cache_read_tokens,
                ),
                Column::new(
                    schema::scores::CACHE_WRITE_TOKENS.into(),
                    self.cache_write_tokens,
                ),
                Column::new(schema::scores::JUDGE_COST_USD.into(), self.judge_cost_usd),
                utc_micros(schema::scores::SCORED_AT, vec![scored_at; height]),
                Column::new(schema::scores::MEMBER_LEVELS.into(), self.member_levels),
            ],
        )
    }
}

/// A partition being scored: its sampled captures and how each ended so far.
struct Work {
    partition: Partition,
    captures: Vec<Capture>,
    verdicts: Vec<Option<Verdict>>,
    pending: usize,
}

/// What the stage shares with the tasks it spawns, and its running totals.
struct Run<'a> {
    job: &'a ScoreJob,
    warehouse: &'a Warehouse,
    judge_id: String,
    params_hash: String,
    scope: Scope,
    summary: ScoreSummary,
    spent_usd: f64,
    reserved_usd: f64,
    budget_hit: bool,
    breaker: engine::Breaker,
    /// Sampled captures left unjudged because a stop was requested.
    interrupted: u64,
    cache_tx: Option<cache::CacheSender>,
    progress: progress::Progress,
}

impl Run<'_> {
    /// Writes a partition's part once every sampled capture has a verdict: the judge's one part
    /// of the (rubric version, model, date), replacing any earlier generation
    /// ([`current`]). Captures left by `--limit` keep the rows the earlier generation gave them.
    async fn write(&mut self, work: Work) -> Result<(), ScoreError> {
        let key = current::part_key(
            &self.job.rubric.key(),
            &work.partition.model_segment,
            work.partition.date,
            &self.judge_id,
        );
        let mut rows = ScoreRows::default();
        let mut deferred: Vec<&str> = Vec::new();
        for (capture, verdict) in work.captures.iter().zip(&work.verdicts) {
            match verdict {
                None | Some(Verdict::Deferred) => deferred.push(&capture.request_id),
                Some(v) => rows.push(&self.job.rubric, capture, v, &mut self.summary),
            }
        }
        let earlier = if deferred.is_empty() {
            None
        } else {
            self.earlier_rows(&key, &deferred).await?
        };
        if rows.request_id.is_empty() && earlier.is_none() {
            return Ok(());
        }
        let rubric = self.job.rubric.clone();
        let (judge, params) = (self.judge_id.clone(), self.params_hash.clone());
        let compression = self.job.compression;
        let encoded = tokio::task::spawn_blocking(move || {
            let mut df =
                rows.into_frame(&rubric, &judge, &params, Utc::now().timestamp_micros())?;
            if let Some(earlier) = earlier {
                df = carry_over(df, earlier)?;
            }
            write_parquet(&mut df, compression)
        })
        .await;
        let bytes = match encoded {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Err(self.write_error(&key, e.to_string())),
            Err(e) => return Err(self.write_error(&key, e.to_string())),
        };
        self.warehouse.put(&key, bytes).await?;
        let superseded = current::delete_superseded(self.warehouse, &key, &self.judge_id).await?;
        if superseded > 0 {
            tracing::info!(part = %key, superseded, "score: replaced an earlier generation of this judge's scores");
        }
        self.summary.partitions += 1;
        Ok(())
    }

    /// The rows the current part of `key`'s folder holds for the `deferred` captures, if any.
    async fn earlier_rows(
        &self,
        key: &str,
        deferred: &[&str],
    ) -> Result<Option<DataFrame>, ScoreError> {
        let folder = key.rsplit_once('/').map_or("", |(f, _)| f);
        let keys = self.warehouse.list(&format!("{folder}/")).await?;
        let Some(part) = current::current_parts(self.warehouse, &keys, &self.judge_id)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let Some(bytes) = self.warehouse.get(&part).await? else {
            return Ok(None);
        };
        let wanted: std::collections::HashSet<String> =
            deferred.iter().map(|s| s.to_string()).collect();
        let judge = self.judge_id.clone();
        let read = tokio::task::spawn_blocking(move || -> PolarsResult<DataFrame> {
            let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
            let ids = df.column(schema::scores::REQUEST_ID)?.str()?;
            let judges = df.column(schema::scores::JUDGE)?.str()?;
            let keep: BooleanChunked = ids
                .iter()
                .zip(judges.iter())
                .map(|(id, j)| {
                    Some(j == Some(judge.as_str()) && id.is_some_and(|id| wanted.contains(id)))
                })
                .collect();
            df.filter(&keep)
        })
        .await
        .map_err(|e| self.write_error(key, e.to_string()))?
        .map_err(|e| {
            self.write_error(key, format!("cannot read the earlier part `{part}`: {e}"))
        })?;
        Ok((read.height() > 0).then_some(read))
    }

    fn write_error(&self, partition: &str, message: String) -> ScoreError {
        ScoreError::WritePart {
            partition: partition.to_string(),
            message,
        }
    }

    /// Books a finished LLM judgment: its verdict, the budget, the cache, the progress.
    fn settle(&mut self, work: &mut Work, row: usize, reserved: f64, outcome: PairOutcome) {
        let cost = self.job.judge.prices.map(|p| outcome.cost(&p));
        self.reserved_usd -= reserved;
        self.spent_usd += cost.unwrap_or(0.0);
        if outcome.call_error == Some(crate::judge::CallError::Interrupted) {
            // Stopped before an answer: no row; the next run judges it.
            work.verdicts[row] = Some(Verdict::Deferred);
            work.pending -= 1;
            self.interrupted += 1;
            return;
        }
        self.breaker.record(&outcome);
        let verdict = match &outcome.result {
            Ok(judgments) => {
                let capture = &work.captures[row];
                let entry = CachedJudgment::new(
                    self.scope.key(&capture.content_hash),
                    capture.content_hash.clone(),
                    judgments,
                    &outcome,
                    cost,
                );
                let verdict = Verdict::from_cache(&entry);
                if let Some(tx) = &self.cache_tx {
                    let _ = tx.send(entry);
                }
                self.progress.done(true);
                verdict
            }
            Err(reason) => {
                self.progress.done(false);
                self.summary.failed += 1;
                Verdict::Failed {
                    reason: reason.clone(),
                    latency_ms: outcome.latency_ms,
                }
            }
        };
        work.verdicts[row] = Some(verdict);
        work.pending -= 1;
    }
}

/// The result of one spawned judge task: (partition slot, row, reserved USD, outcome).
type TaskResult = (usize, usize, f64, PairOutcome);

/// Batch mode's work before the partitions are judged: finished jobs collected into the cache
/// (and `cached`), then the due judgments (sampled, not cached, not in a running job, not falling
/// back to on demand) submitted as jobs when there are at least `batch-min-records` of them;
/// fewer are judged on demand. With `batch_wait`, waits for the jobs and collects them too.
/// Returns what is still pending; the partitions it read, sampled, are left in `read` for the
/// judging loop, which so reads each partition once.
#[allow(clippy::too_many_arguments)]
async fn run_batches(
    job: &ScoreJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
    judge: &Judge,
    scope: &Scope,
    wanted: &[Partition],
    cached: &mut HashMap<String, CachedJudgment>,
    run: &mut Run<'_>,
    read: &mut HashMap<usize, SampledPartition>,
) -> Result<batch::Collected, ScoreError> {
    let Some(settings) = job.judge.batch.as_ref() else {
        return Ok(batch::Collected::default());
    };
    let batcher = batch::Batcher {
        client: aws.bedrock_control().await,
        area: batch::area(settings, aws).await?,
        warehouse,
        settings,
        scope,
        rubric: &job.rubric,
        model: job.judge.model.clone().unwrap_or_default(),
    };
    let mut summary = BatchSummary::default();
    let mut collected = batcher.collect(job.batch_wait).await?;
    absorb(&mut collected, cached, run, &mut summary);

    let prompting = judge
        .prompting()
        .cloned()
        .ok_or_else(|| ScoreError::Judge("batch mode needs an LLM judge".into()))?;
    let mut due = Vec::new();
    let mut seen = HashSet::new();
    let mut committed = 0.0;
    let output = protocol::estimate_output_tokens(&job.rubric);
    'partitions: for (slot, partition) in wanted.iter().enumerate() {
        let sampled = SampledPartition::read(warehouse, partition, &job.sampling).await?;
        let sampled = read.entry(slot).or_insert(sampled);
        for capture in &sampled.captures {
            let key = scope.key(&capture.content_hash);
            if cached.contains_key(&key)
                || collected.pending.contains(&key)
                || collected.on_demand.contains(&key)
                || !seen.insert(key.clone())
            {
                continue;
            }
            if job.limit.is_some_and(|limit| due.len() as u64 >= limit) {
                break 'partitions;
            }
            let user_text = protocol::user_text(&capture.prompt, &capture.response, None);
            let estimate = settings
                .prices
                .cost(prompting.estimate_input_tokens(&user_text), output);
            if job
                .budget_usd
                .is_some_and(|b| run.spent_usd + run.reserved_usd + committed + estimate > b)
            {
                break 'partitions;
            }
            committed += estimate;
            due.push(batch::Due {
                record: batch::RecordRef {
                    key,
                    content_hash: capture.content_hash.clone(),
                },
                user_text,
            });
        }
    }
    if due.len() as u64 >= settings.min_records {
        let jobs = batcher
            .submit(due, &prompting, job.judge.max_output_tokens)
            .await?;
        for submitted in &jobs {
            summary.submitted += submitted.records.len() as u64;
            collected
                .pending
                .extend(submitted.records.iter().map(|r| r.key.clone()));
        }
        summary.jobs_submitted = jobs.len() as u64;
        summary.submitted_estimated_usd = committed;
        // Committed: the budget of this run counts it, though the bill comes with the output.
        run.reserved_usd += committed;
        if job.batch_wait.is_some() {
            let mut more = batcher.collect(job.batch_wait).await?;
            absorb(&mut more, cached, run, &mut summary);
            collected.pending = more.pending;
            collected.on_demand.extend(more.on_demand);
            collected.jobs_pending = more.jobs_pending;
        } else {
            collected.jobs_pending += summary.jobs_submitted;
        }
    } else if !due.is_empty() {
        tracing::info!(
            due = due.len(),
            min = settings.min_records,
            "score: fewer due judgments than batch-min-records, judged on demand"
        );
    }
    summary.jobs_pending = collected.jobs_pending;
    summary.pending = collected.pending.len() as u64;
    summary.judged_on_demand = collected.on_demand.len() as u64;
    run.summary.batch = Some(summary);
    Ok(collected)
}

/// Puts a collection's judgments into the cache (and the run's spend), and counts it.
fn absorb(
    collected: &mut batch::Collected,
    cached: &mut HashMap<String, CachedJudgment>,
    run: &mut Run<'_>,
    summary: &mut BatchSummary,
) {
    for entry in collected.judgments.drain(..) {
        let cost = entry.cost_usd.unwrap_or(0.0);
        summary.collected_usd += cost;
        run.spent_usd += cost;
        if let Some(tx) = &run.cache_tx {
            let _ = tx.send(entry.clone());
        }
        cached.insert(entry.key.clone(), entry);
    }
    summary.jobs_collected += collected.jobs_collected;
    summary.collected.add(&collected.counts);
}

/// Runs the stage.
pub async fn score(
    job: ScoreJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<ScoreSummary, ScoreError> {
    if job.judge.kind == crate::config::JudgeKind::Jury {
        return jury::score_jury(job, warehouse, aws).await;
    }
    let started = Instant::now();
    let judge = Judge::build(&job.judge, &job.rubric, aws)
        .await
        .map_err(ScoreError::Judge)?;
    let judge_id = judge.id();
    let params_hash = judge.params_hash();
    let scope = Scope {
        rubric_hash: job.rubric.hash(),
        judge: judge_id.clone(),
        params_hash: params_hash.clone(),
    };
    current::check_rubric(warehouse, &job.rubric, job.dry_run).await?;
    let keys = crate::compact::captures(warehouse).await?;
    let wanted = partitions(&keys, &job);
    tracing::info!(rubric = %job.rubric.key(), judge = %judge_id, partitions = wanted.len(), dry_run = job.dry_run, "score: starting");

    let mut cached = if judge.is_offline() {
        HashMap::new()
    } else {
        cache::load(warehouse, &scope).await?.0
    };
    let (cache_tx, writer) = if judge.is_offline() || job.dry_run {
        (None, None)
    } else {
        let (tx, task) = cache::spawn_writer(warehouse.clone(), &scope);
        (Some(tx), Some(task))
    };
    let engine = Arc::new(
        Engine::new(judge, job.rubric.clone(), job.judge.clone())
            .with_shutdown(job.shutdown.clone()),
    );
    // After a stop request, calls in flight get the grace period, then are abandoned.
    let hard_stop = tokio_util::sync::CancellationToken::new();
    let grace_watch = {
        let (shutdown, hard_stop, grace) = (
            job.shutdown.clone(),
            hard_stop.clone(),
            job.judge.shutdown_grace,
        );
        tokio::spawn(async move {
            shutdown.requested().await;
            tokio::time::sleep(grace).await;
            hard_stop.cancel();
        })
    };
    let mut run = Run {
        job: &job,
        warehouse,
        judge_id: judge_id.clone(),
        params_hash: params_hash.clone(),
        scope: scope.clone(),
        summary: ScoreSummary {
            rubric: job.rubric.key(),
            rubric_hash: job.rubric.hash(),
            judge: judge_id,
            judge_params_hash: params_hash,
            dry_run: job.dry_run,
            budget_usd: job.budget_usd,
            ..ScoreSummary::default()
        },
        spent_usd: 0.0,
        reserved_usd: 0.0,
        budget_hit: false,
        breaker: engine::Breaker::new(job.judge.circuit_breaker),
        interrupted: 0,
        cache_tx,
        progress: progress::Progress::new(if job.dry_run {
            ProgressMode::Off
        } else {
            job.progress
        }),
    };
    let mut estimated_usd = 0.0;
    let mut estimated_batch_usd = 0.0;
    let mut open: HashMap<usize, Work> = HashMap::new();
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let concurrency = job.judge.concurrency;
    let offline = engine.judge.is_offline();
    let mut not_attempted = 0u64;
    if !offline && !job.dry_run {
        preflight(&engine.judge, aws).await?;
    }
    run.summary.mode = if job.judge.batches() {
        crate::config::JudgeMode::Batch
    } else {
        crate::config::JudgeMode::OnDemand
    };
    // Batch mode: collect finished jobs into the cache, then submit what is due.
    let mut read: HashMap<usize, SampledPartition> = HashMap::new();
    let batched = if job.judge.batches() && !job.dry_run {
        let judge = &engine.judge;
        Some(
            run_batches(
                &job,
                warehouse,
                aws,
                judge,
                &scope,
                &wanted,
                &mut cached,
                &mut run,
                &mut read,
            )
            .await?,
        )
    } else {
        None
    };
    let pending: HashSet<String> = batched
        .as_ref()
        .map(|b| b.pending.clone())
        .unwrap_or_default();

    for (slot, partition) in wanted.into_iter().enumerate() {
        if job.shutdown.is_requested() {
            break;
        }
        let sampled = match read.remove(&slot) {
            Some(sampled) => sampled,
            None => SampledPartition::read(warehouse, &partition, &job.sampling).await?,
        };
        let mut plan = PartitionPlan {
            model: partition.model_segment.clone(),
            date: partition.date,
            captures: sampled.captures_total,
            ..PartitionPlan::default()
        };
        run.summary.captures += sampled.captures_total;
        let captures = sampled.captures;
        plan.sampled = captures.len() as u64;
        run.summary.sampled += captures.len() as u64;
        let mut work = Work {
            partition,
            verdicts: vec![None; captures.len()],
            pending: 0,
            captures,
        };

        if offline {
            plan.to_judge = work.captures.len() as u64;
            run.summary.judged += plan.to_judge;
            if !job.dry_run {
                let vectors = match &engine.judge {
                    Judge::Offline2(scorer) => Some(
                        offline2_vectors(warehouse, scorer, &job, &work.partition, &work.captures)
                            .await,
                    ),
                    _ => None,
                };
                let rubric = job.rubric.clone();
                let judge = engine.judge.clone();
                let captures = std::mem::take(&mut work.captures);
                let (captures, verdicts) = tokio::task::spawn_blocking(move || {
                    let verdicts = judge_offline(&judge, &rubric, &captures, vectors);
                    (captures, verdicts)
                })
                .await
                .map_err(|e| ScoreError::Judge(e.to_string()))?;
                work.captures = captures;
                work.verdicts = verdicts;
                run.progress.add(plan.to_judge);
                for v in &work.verdicts {
                    run.progress.done(matches!(v, Some(Verdict::Judged { .. })));
                }
            }
        } else {
            let prompting = engine.judge.prompting().cloned();
            for row in 0..work.captures.len() {
                let capture = work.captures[row].clone();
                let key = run.scope.key(&capture.content_hash);
                if let Some(hit) = cached.get(&key) {
                    work.verdicts[row] = Some(Verdict::from_cache(hit));
                    plan.cached += 1;
                    run.summary.from_cache += 1;
                    continue;
                }
                if pending.contains(&key) {
                    // In a batch job: its rows come when the job is collected.
                    work.verdicts[row] = Some(Verdict::Deferred);
                    plan.batch_pending += 1;
                    continue;
                }
                if job.limit.is_some_and(|limit| run.summary.judged >= limit) {
                    work.verdicts[row] = Some(Verdict::Deferred);
                    plan.deferred_limit += 1;
                    run.summary.deferred_limit += 1;
                    continue;
                }
                let (estimate, batch_estimate) = prompting.as_ref().map_or((0.0, 0.0), |p| {
                    let input = p.estimate_input_tokens(&protocol::user_text(
                        &capture.prompt,
                        &capture.response,
                        None,
                    ));
                    let output = protocol::estimate_output_tokens(&job.rubric);
                    // With prompt caching the shared prefix is read from the cache.
                    let cached = if job.judge.caches_prompt() {
                        p.estimate_prefix_tokens().min(input)
                    } else {
                        0
                    };
                    let batch = job
                        .judge
                        .batch
                        .as_ref()
                        .map_or(0.0, |b| b.prices.cost(input, output));
                    let on_demand = job.judge.prices.map_or(0.0, |prices| {
                        prices.cost_cached(input - cached, output, cached, 0)
                    });
                    (on_demand, batch)
                });
                if let Some(budget) = job.budget_usd
                    && (run.budget_hit || run.spent_usd + run.reserved_usd + estimate > budget)
                {
                    run.budget_hit = true;
                    work.verdicts[row] = Some(Verdict::SkippedBudget);
                    plan.skipped_budget += 1;
                    continue;
                }
                if run.breaker.tripped().is_some() {
                    // The judge is down: no call, no row; a later run judges it.
                    work.verdicts[row] = Some(Verdict::Deferred);
                    not_attempted += 1;
                    continue;
                }
                if job.shutdown.is_requested() {
                    work.verdicts[row] = Some(Verdict::Deferred);
                    run.interrupted += 1;
                    continue;
                }
                plan.to_judge += 1;
                run.summary.judged += 1;
                estimated_usd += estimate;
                estimated_batch_usd += batch_estimate;
                if job.dry_run {
                    // The dry run books the estimate as if spent, so the budget cut shows.
                    run.spent_usd += estimate;
                    work.verdicts[row] = Some(Verdict::Deferred);
                    continue;
                }
                while tasks.len() >= concurrency {
                    if let Some(done) = tasks.join_next().await {
                        settle(&mut run, &mut open, &mut work, slot, done).await?;
                    }
                }
                run.reserved_usd += estimate;
                run.progress.add(1);
                work.pending += 1;
                let engine = engine.clone();
                let hard_stop = hard_stop.clone();
                tasks.spawn(async move {
                    let outcome = tokio::select! {
                        outcome = engine::judge_pair(&engine, &capture.prompt, &capture.response) => outcome,
                        _ = hard_stop.cancelled() => PairOutcome::interrupted(),
                    };
                    (slot, row, estimate, outcome)
                });
            }
        }
        run.summary.plan.push(plan);
        if job.dry_run {
            continue;
        }
        if work.pending == 0 {
            run.write(work).await?;
        } else {
            open.insert(slot, work);
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (slot, ..) = done
            .as_ref()
            .map_err(|e| ScoreError::Judge(e.to_string()))?;
        let mut work = open
            .remove(slot)
            .ok_or_else(|| ScoreError::Judge("lost a partition".into()))?;
        let slot = *slot;
        settle(&mut run, &mut open, &mut work, slot, done).await?;
        if work.pending == 0 {
            run.write(work).await?;
        } else {
            open.insert(slot, work);
        }
    }
    run.progress.finish();
    grace_watch.abort();

    drop(run.cache_tx.take());
    if let Some(writer) = writer {
        let stats = writer.await.unwrap_or_default();
        if stats.failed > 0 {
            tracing::warn!(
                "judge cache: {} judgments could not be cached; a re-run will judge them again",
                stats.failed
            );
        }
        if let Err(e) = cache::compact(warehouse, &scope).await {
            tracing::warn!("judge cache: could not merge batches: {e}");
        }
    }

    let mut summary = run.summary;
    let stats = &engine.stats;
    summary.calls = CallStats::get(&stats.calls);
    (summary.pacer_cuts, summary.pacer_restores) = engine.pacer.adjustments();
    summary.retries = CallStats::get(&stats.retries);
    summary.throttled = CallStats::get(&stats.throttled);
    summary.timeouts = CallStats::get(&stats.timeouts);
    summary.server_errors = CallStats::get(&stats.server_errors);
    summary.repairs = CallStats::get(&stats.repairs);
    summary.input_tokens = CallStats::get(&stats.input_tokens);
    summary.output_tokens = CallStats::get(&stats.output_tokens);
    summary.cache_read_tokens = CallStats::get(&stats.cache_read_tokens);
    summary.cache_write_tokens = CallStats::get(&stats.cache_write_tokens);
    let priced = offline || job.judge.prices.is_some();
    summary.cost_usd = priced.then_some(if job.dry_run { 0.0 } else { run.spent_usd });
    summary.estimated_cost_usd = priced.then_some(estimated_usd);
    summary.estimated_batch_cost_usd = job.judge.batch.as_ref().map(|_| estimated_batch_usd);
    summary.skipped_budget = summary.plan.iter().map(|p| p.skipped_budget).sum();
    summary.seconds = started.elapsed().as_secs_f64();
    let per_s = |n: u64| {
        if job.dry_run || summary.seconds == 0.0 {
            0.0
        } else {
            n as f64 / summary.seconds
        }
    };
    summary.judgments_per_s = per_s(summary.judged);
    summary.calls_per_s = per_s(summary.calls);
    job.shutdown.check()?;
    if let Some((cause, in_a_row)) = run.breaker.tripped() {
        return Err(ScoreError::JudgeDown {
            cause: cause.clone(),
            in_a_row,
            attempted: summary.judged,
            not_attempted,
        });
    }
    if summary.judged > 0 {
        let share = summary.failed as f64 / summary.judged as f64;
        if share > job.judge.max_error_share {
            summary.failure = Some(format!(
                "{} of {} judgments failed ({:.0}%, more than judge.max-error-share {:.0}%); \
                 they are judged again next run",
                summary.failed,
                summary.judged,
                share * 100.0,
                job.judge.max_error_share * 100.0
            ));
        }
    }
    Ok(summary)
}

/// Checks what can be checked before the first call: for Bedrock, a region and credentials
/// that resolve (one line and a hint instead of a failed call per capture).
async fn preflight(judge: &Judge, aws: &AwsClients) -> Result<(), ScoreError> {
    if !matches!(judge, Judge::Bedrock(_)) {
        return Ok(());
    }
    aws.check_credentials()
        .await
        .map_err(|(message, hint)| ScoreError::Unusable {
            judge: judge.id(),
            message,
            hint,
        })
}

/// Books one finished task into its partition, which is either `current` (being enqueued) or
/// one of the `open` ones; writes an open partition that is now complete.
async fn settle(
    run: &mut Run<'_>,
    open: &mut HashMap<usize, Work>,
    current: &mut Work,
    current_slot: usize,
    done: Result<TaskResult, tokio::task::JoinError>,
) -> Result<(), ScoreError> {
    let (slot, row, reserved, outcome) = done.map_err(|e| ScoreError::Judge(e.to_string()))?;
    if slot == current_slot {
        run.settle(current, row, reserved, outcome);
        return Ok(());
    }
    let Some(mut work) = open.remove(&slot) else {
        return Err(ScoreError::Judge(format!("no partition for slot {slot}")));
    };
    run.settle(&mut work, row, reserved, outcome);
    if work.pending == 0 {
        run.write(work).await
    } else {
        open.insert(slot, work);
        Ok(())
    }
}

/// `fresh` rows followed by `earlier` ones, in `fresh`'s columns and types (a column the earlier
/// part lacks is null there).
fn carry_over(fresh: DataFrame, earlier: DataFrame) -> PolarsResult<DataFrame> {
    let height = earlier.height();
    let columns = fresh
        .columns()
        .iter()
        .map(|c| match earlier.column(c.name()) {
            // Through the physical integers: without polars' `timezones` feature a cast does
            // not set a time zone.
            Ok(old) => match c.dtype() {
                DataType::Datetime(unit, zone) => Ok(old
                    .cast(&DataType::Int64)?
                    .as_materialized_series()
                    .clone()
                    .into_datetime(*unit, zone.clone())
                    .into()),
                dtype => old.cast(dtype),
            },
            Err(_) => Ok(Column::full_null(c.name().clone(), height, c.dtype())),
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut out = fresh;
    out.vstack_mut(&DataFrame::new(height, columns)?)?;
    Ok(out)
}

/// The vectors `offline:2` judges a partition's captures on, with the seconds they took per
/// capture: from the `embeddings` table where the partition's part has them, the rest embedded
/// and written there (when the embed stage is on), so the embed stage after this one has nothing
/// left to do.
async fn offline2_vectors(
    warehouse: &Warehouse,
    scorer: &crate::judge::offline2::Scorer,
    job: &ScoreJob,
    partition: &Partition,
    captures: &[Capture],
) -> Result<(Vec<crate::embed::Pair>, f64), String> {
    let started = Instant::now();
    let write = job.judge.embed.enabled.then_some(job.compression);
    let done = crate::embed::stage::embed_partition(
        warehouse,
        scorer.embedder(),
        (&partition.model_segment, partition.date),
        captures,
        write,
    )
    .await
    .map_err(|e| format!("offline:2 could not embed: {e}"))?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0 / captures.len().max(1) as f64;
    Ok((done.vectors, latency_ms))
}

/// An offline scorer's verdicts on a partition's captures: `offline:1` one by one, `offline:2`
/// on the vectors of [`offline2_vectors`] (their latency shared out).
fn judge_offline(
    judge: &Judge,
    rubric: &Rubric,
    captures: &[Capture],
    vectors: Option<Result<(Vec<crate::embed::Pair>, f64), String>>,
) -> Vec<Option<Verdict>> {
    let verdict = |judged: Result<Vec<Judgment>, String>, latency_ms: f64| match judged {
        Ok(judgments) => Verdict::Judged {
            judgments,
            input_tokens: None,
            output_tokens: None,
            cache_read_tokens: None,
            cache_write_tokens: None,
            cost_usd: Some(0.0),
            latency_ms,
        },
        Err(reason) => Verdict::Failed { reason, latency_ms },
    };
    if let Judge::Offline2(scorer) = judge {
        let (vectors, latency_ms) =
            match vectors.unwrap_or_else(|| Err("offline:2 was given no vectors".into())) {
                Ok(v) => v,
                Err(reason) => {
                    return captures
                        .iter()
                        .map(|_| Some(verdict(Err(reason.clone()), 0.0)))
                        .collect();
                }
            };
        let items: Vec<(&str, &str)> = captures
            .iter()
            .map(|c| (c.prompt.as_str(), c.response.as_str()))
            .collect();
        return scorer
            .judge_embedded(rubric, &items, &vectors)
            .into_iter()
            .map(|j| Some(verdict(j, latency_ms)))
            .collect();
    }
    captures
        .iter()
        .map(|c| {
            let started = Instant::now();
            let judged = offline::judge(rubric, &c.prompt, &c.response);
            Some(verdict(judged, started.elapsed().as_secs_f64() * 1000.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_rows_have_the_schemas_columns() {
        let rubric = crate::rubric::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rubrics/quality.toml"
        )))
        .unwrap();
        let df = ScoreRows::default()
            .into_frame(&rubric, "offline:1", "p", 0)
            .unwrap();
        let expected: Vec<String> = schema::scores::COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        schema::check("scores", &df, &expected).unwrap();
    }

    fn captures(n: usize) -> Vec<Capture> {
        (0..n)
            .map(|i| Capture {
                request_id: format!("req-{i}"),
                content_hash: format!("h{i}"),
                captured_at: i as i64,
                prompt: String::new(),
                response: String::new(),
            })
            .collect()
    }

    #[test]
    fn sampling_is_deterministic_and_stable() {
        let all = Sampling::all();
        assert_eq!(sample(captures(100), &all).len(), 100);
        let half = Sampling {
            fraction: 0.5,
            per_day: None,
        };
        let a: Vec<String> = sample(captures(1000), &half)
            .into_iter()
            .map(|c| c.request_id)
            .collect();
        let b: Vec<String> = sample(captures(1000), &half)
            .into_iter()
            .map(|c| c.request_id)
            .collect();
        assert_eq!(a, b);
        assert!((430..570).contains(&a.len()), "{}", a.len());
        // A cap keeps the smallest hashes: a row chosen among 100 stays chosen among 200 unless
        // a new row has a smaller hash, and the order of the captures is kept.
        let cap = Sampling {
            fraction: 1.0,
            per_day: Some(10),
        };
        let small = sample(captures(100), &cap);
        assert_eq!(small.len(), 10);
        assert!(
            small
                .windows(2)
                .all(|w| w[0].captured_at < w[1].captured_at)
        );
        let large: Vec<String> = sample(captures(200), &cap)
            .into_iter()
            .map(|c| c.request_id)
            .collect();
        let kept = small
            .iter()
            .filter(|c| large.contains(&c.request_id))
            .count();
        assert!(kept >= 3, "{kept}");
    }

    #[test]
    fn token_shares_sum_to_the_call() {
        let shares: Vec<i64> = (0..3).map(|i| share(Some(100), 3, i).unwrap()).collect();
        assert_eq!(shares, [34, 33, 33]);
        assert_eq!(share(None, 3, 0), None);
    }
}
