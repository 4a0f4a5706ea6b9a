//! The score stage: every captured pair of a window judged against a rubric, into `scores/`.
//!
//! Reads: `captures/model=<m>/date=<d>/` parts of the window.
//! Writes: `scores/rubric=<id>@<version>/model=<m>/date=<d>/part-<h>.parquet`, long form (one row
//! per capture and dimension), the part named from (rubric hash, judge id) so a re-run of the same
//! day overwrites it instead of adding rows.
//! Never does: drop a capture or default a failed judgment to a score. A judgment that fails is a
//! row with status `error` and the reason.
//!
//! So far the judge is the offline scorer; sampling, the budget, the judge cache and the LLM
//! judges are the rest of issue 3 (see ARCHITECTURE.md, "Next steps").

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::config::{Compression, DateRange};
use crate::judge::offline;
use crate::rubric::Rubric;
use crate::table::{text_constant, utc_micros, write_parquet};
use crate::util::{partition_value, sha256_hex};
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read captures part `{key}`: {message}")]
    ReadPart { key: String, message: String },
    #[error("cannot write scores for `{partition}`: {message}")]
    WritePart { partition: String, message: String },
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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScoreSummary {
    pub rubric: String,
    pub rubric_hash: String,
    pub judge: String,
    pub partitions: u64,
    pub captures: u64,
    pub rows_ok: u64,
    pub rows_error: u64,
    pub seconds: f64,
}

/// A `captures` partition: its path segments as written, and its part keys.
struct Partition {
    model_segment: String,
    date: NaiveDate,
    parts: Vec<String>,
}

/// Groups `captures/model=<m>/date=<d>/part-*.parquet` keys by partition, keeping those wanted.
fn partitions(keys: &[String], job: &ScoreJob) -> Vec<Partition> {
    let wanted_model = job.model.as_deref().map(partition_value);
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
            || job.window.is_some_and(|w| !w.contains(date))
            || wanted_model.as_deref().is_some_and(|m| m != model)
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
    judge_latency_ms: Vec<f64>,
}

impl ScoreRows {
    fn into_frame(self, job: &ScoreJob, judge: &str, scored_at: i64) -> PolarsResult<DataFrame> {
        let height = self.request_id.len();
        let constant = |name: &str, value: &str| text_constant(name, value, height);
        DataFrame::new(
            height,
            vec![
                Column::new("request_id".into(), self.request_id),
                Column::new("content_hash".into(), self.content_hash),
                utc_micros("captured_at", self.captured_at),
                constant("rubric_id", &job.rubric.id),
                constant("rubric_version", &job.rubric.version),
                constant("rubric_hash", &job.rubric.hash()),
                constant("judge", judge),
                // The offline scorer takes no parameters: the hash of an empty parameter set.
                constant("judge_params_hash", &sha256_hex(b"{}")),
                Column::new("dimension".into(), self.dimension),
                Column::new("score".into(), self.score),
                Column::new("label".into(), self.label),
                Column::new("rationale".into(), self.rationale),
                Column::new(
                    "status".into(),
                    self.status
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                ),
                Column::new("error".into(), self.error),
                Column::new("judge_latency_ms".into(), self.judge_latency_ms),
                Column::new("input_tokens".into(), vec![None::<i32>; height]),
                Column::new("output_tokens".into(), vec![None::<i32>; height]),
                Column::new("judge_cost_usd".into(), vec![0.0f64; height]),
                utc_micros("scored_at", vec![scored_at; height]),
            ],
        )
    }
}

/// Reads the columns scoring needs from one captures part.
fn read_part(bytes: Vec<u8>, key: &str) -> Result<DataFrame, ScoreError> {
    let fail = |e: PolarsError| ScoreError::ReadPart {
        key: key.to_string(),
        message: e.to_string(),
    };
    let df = ParquetReader::new(Cursor::new(bytes))
        .with_columns(Some(vec![
            "request_id".into(),
            "content_hash".into(),
            "captured_at".into(),
            "prompt".into(),
            "response".into(),
        ]))
        .finish()
        .map_err(fail)?;
    Ok(df)
}

fn text_column(df: &DataFrame, name: &str, key: &str) -> Result<Vec<String>, ScoreError> {
    let column = df.column(name).and_then(|c| c.str().cloned());
    let column = column.map_err(|e| ScoreError::ReadPart {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    Ok(column
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Scores one partition: reads its captures, judges them, writes one scores part.
fn score_partition(
    job: &ScoreJob,
    partition: &Partition,
    warehouse: &Warehouse,
    handle: &tokio::runtime::Handle,
    summary: &mut ScoreSummary,
) -> Result<(), ScoreError> {
    let judge = offline::judge_id();
    let mut rows = ScoreRows::default();
    for key in &partition.parts {
        let Some(bytes) = handle.block_on(warehouse.get(key))? else {
            continue; // removed by a concurrent ingest since the listing
        };
        let df = read_part(bytes, key)?;
        let ids = text_column(&df, "request_id", key)?;
        let hashes = text_column(&df, "content_hash", key)?;
        let prompts = text_column(&df, "prompt", key)?;
        let responses = text_column(&df, "response", key)?;
        let times: Vec<i64> = df
            .column("captured_at")
            .and_then(|c| c.cast(&DataType::Int64))
            .and_then(|c| {
                c.i64()
                    .map(|ca| ca.iter().map(|v| v.unwrap_or(0)).collect())
            })
            .map_err(|e| ScoreError::ReadPart {
                key: key.clone(),
                message: e.to_string(),
            })?;
        for i in 0..ids.len() {
            summary.captures += 1;
            let started = Instant::now();
            let judged = offline::judge(&job.rubric, &prompts[i], &responses[i]);
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            for dimension in &job.rubric.dimensions {
                rows.request_id.push(ids[i].clone());
                rows.content_hash.push(hashes[i].clone());
                rows.captured_at.push(times[i]);
                rows.dimension.push(dimension.name.clone());
                rows.judge_latency_ms.push(latency);
                let found = judged
                    .as_ref()
                    .map(|all| all.iter().find(|j| j.dimension == dimension.name));
                match found {
                    Ok(Some(j)) => {
                        rows.score.push(dimension.scale.normalise(j.level));
                        rows.label.push(Some(j.level.to_string()));
                        rows.rationale.push(Some(j.rationale.clone()));
                        rows.status.push("ok");
                        rows.error.push(None);
                        summary.rows_ok += 1;
                    }
                    Ok(None) | Err(_) => {
                        let reason = match &judged {
                            Err(e) => e.clone(),
                            Ok(_) => format!("the judge returned no `{}`", dimension.name),
                        };
                        rows.score.push(None);
                        rows.label.push(None);
                        rows.rationale.push(None);
                        rows.status.push("error");
                        rows.error.push(Some(reason));
                        summary.rows_error += 1;
                    }
                }
            }
        }
    }
    let folder = format!(
        "scores/rubric={}/model={}/date={}",
        job.rubric.key(),
        partition.model_segment,
        partition.date
    );
    let fail = |message: String| ScoreError::WritePart {
        partition: folder.clone(),
        message,
    };
    let mut df = rows
        .into_frame(job, &judge, Utc::now().timestamp_micros())
        .map_err(|e| fail(e.to_string()))?;
    let bytes = write_parquet(&mut df, job.compression).map_err(|e| fail(e.to_string()))?;
    let name = sha256_hex(format!("{}\0{judge}", job.rubric.hash()).as_bytes());
    handle.block_on(warehouse.put(&format!("{folder}/part-{}.parquet", &name[..16]), bytes))?;
    summary.partitions += 1;
    Ok(())
}

/// Runs the stage.
pub async fn score(job: ScoreJob, warehouse: &Warehouse) -> Result<ScoreSummary, ScoreError> {
    let started = Instant::now();
    let keys = warehouse.list("captures/").await?;
    let wanted = partitions(&keys, &job);
    let summary = ScoreSummary {
        rubric: job.rubric.key(),
        rubric_hash: job.rubric.hash(),
        judge: offline::judge_id(),
        ..ScoreSummary::default()
    };
    tracing::info!(rubric = %summary.rubric, judge = %summary.judge, partitions = wanted.len(), "score: starting");
    let handle = tokio::runtime::Handle::current();
    let warehouse = warehouse.clone();
    let mut summary = tokio::task::spawn_blocking(move || {
        let mut summary = summary;
        for partition in &wanted {
            score_partition(&job, partition, &warehouse, &handle, &mut summary)?;
        }
        Ok::<_, ScoreError>(summary)
    })
    .await
    .map_err(|e| ScoreError::WritePart {
        partition: "(all)".into(),
        message: format!("scoring task failed: {e}"),
    })??;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
