//! The telemetry stage: GPU utilisation and memory, CPU, invocations, 5xx errors and latency per
//! model over time, with what each interval cost, into the `telemetry` table.
//!
//! Sources: `file` (CSV or Parquet in the telemetry schema, [`file`]), `cloudwatch` (SageMaker
//! enhanced metrics per inference component, [`cloudwatch`]); `evalwatch gpu sample` writes files
//! for self-hosted GPUs ([`nvml`]).
//! Writes: `telemetry/model=<m>/date=<d>/part-<h>.parquet`, the part named from the source, so a
//! re-run replaces it.
//! Cost: per interval, the instance price times the share of its GPUs the model holds times the
//! interval (`[cost]` in the config; a model without a cost entry has a null cost, not zero).

pub mod cloudwatch;
pub mod file;
pub mod nvml;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::config::{Compression, CostModel, DateRange};
use crate::schema;
use crate::table::{text_constant, utc_micros, write_parquet};
use crate::util::{partition_value, sha256_hex};
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read telemetry `{path}`: {message}")]
    Read { path: String, message: String },
    #[error("CloudWatch: {0}")]
    CloudWatch(String),
    #[error("cannot write telemetry for `{partition}`: {message}")]
    Write { partition: String, message: String },
}

/// One observation of one model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub ts: DateTime<Utc>,
    pub model: String,
    pub gpu_util_pct: Option<f64>,
    pub gpu_mem_pct: Option<f64>,
    pub cpu_util_pct: Option<f64>,
    pub invocations: Option<f64>,
    pub errors_5xx: Option<f64>,
    pub model_latency_ms: Option<f64>,
    pub gpus_allocated: Option<f64>,
    pub instance_type: Option<String>,
    /// Seconds the sample stands for; inferred from the spacing of a model's samples when absent.
    pub period_seconds: Option<f64>,
    /// Board power, watts (NVML).
    pub power_w: Option<f64>,
    /// Which GPU, for per-GPU samples (NVML index).
    pub gpu: Option<String>,
}

/// A line that could not be read, kept for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub location: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TelemetrySummary {
    pub source: String,
    pub samples: u64,
    pub models: u64,
    pub partitions: u64,
    pub rejected: u64,
    /// The first rejected lines (at most 20), with file and line.
    pub rejected_examples: Vec<Rejected>,
    pub out_of_window: u64,
    /// Components asked for that returned no datapoints (reported, not taken as idle).
    pub no_data: Vec<String>,
    pub cost_usd: Option<f64>,
    pub seconds: f64,
}

/// What was read from a source, before cost and partitioning.
#[derive(Debug, Default)]
pub struct Read {
    pub samples: Vec<Sample>,
    pub rejected: Vec<Rejected>,
    pub no_data: Vec<String>,
}

/// Fills in each sample's period from the spacing of its model's samples (the gap to the next
/// one; the last takes the gap before it; a lone sample 60 s).
pub fn infer_periods(samples: &mut [Sample]) {
    let mut by_model: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_model.entry(s.model.clone()).or_default().push(i);
    }
    for indices in by_model.values_mut() {
        indices.sort_by_key(|&i| samples[i].ts);
        let gaps: Vec<f64> = indices
            .windows(2)
            .map(|w| (samples[w[1]].ts - samples[w[0]].ts).num_milliseconds() as f64 / 1000.0)
            .collect();
        for (k, &i) in indices.iter().enumerate() {
            if samples[i].period_seconds.is_some() {
                continue;
            }
            let gap = gaps
                .get(k)
                .or_else(|| k.checked_sub(1).and_then(|j| gaps.get(j)))
                .copied()
                .filter(|g| *g > 0.0)
                .unwrap_or(60.0);
            samples[i].period_seconds = Some(gap);
        }
    }
}

/// Writes the samples of the window as `telemetry` partitions; returns (partitions, cost).
pub async fn write(
    mut samples: Vec<Sample>,
    source_id: &str,
    window: Option<DateRange>,
    cost: &CostModel,
    compression: Compression,
    warehouse: &Warehouse,
    summary: &mut TelemetrySummary,
) -> Result<(), TelemetryError> {
    infer_periods(&mut samples);
    let mut partitions: BTreeMap<(String, NaiveDate), Vec<Sample>> = BTreeMap::new();
    for s in samples {
        let day = s.ts.date_naive();
        if window.is_some_and(|w| !w.contains(day)) {
            summary.out_of_window += 1;
            continue;
        }
        partitions
            .entry((s.model.clone(), day))
            .or_default()
            .push(s);
    }
    let name = sha256_hex(source_id.as_bytes());
    let mut total_cost: Option<f64> = None;
    let mut models = std::collections::BTreeSet::new();
    for ((model, day), mut rows) in partitions {
        rows.sort_by_key(|s| s.ts);
        models.insert(model.clone());
        summary.samples += rows.len() as u64;
        let priced = cost.models.get(&model);
        let costs: Vec<Option<f64>> = rows
            .iter()
            .map(|s| priced.map(|c| c.cost(s.period_seconds.unwrap_or(60.0), s.gpus_allocated)))
            .collect();
        if priced.is_some() {
            *total_cost.get_or_insert(0.0) += costs.iter().flatten().sum::<f64>();
        }
        let folder = format!("telemetry/model={}/date={day}", partition_value(&model));
        let fail = |message: String| TelemetryError::Write {
            partition: folder.clone(),
            message,
        };
        let mut df = frame(&rows, &costs, priced, source_id).map_err(|e| fail(e.to_string()))?;
        let bytes = write_parquet(&mut df, compression).map_err(|e| fail(e.to_string()))?;
        warehouse
            .put(&format!("{folder}/part-{}.parquet", &name[..16]), bytes)
            .await?;
        summary.partitions += 1;
    }
    summary.models = models.len() as u64;
    summary.cost_usd = total_cost;
    Ok(())
}

fn frame(
    rows: &[Sample],
    costs: &[Option<f64>],
    priced: Option<&crate::config::ModelCost>,
    source_id: &str,
) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let float =
        |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<Option<f64>> { rows.iter().map(f).collect() };
    DataFrame::new(
        height,
        vec![
            utc_micros(
                schema::telemetry::TS,
                rows.iter().map(|s| s.ts.timestamp_micros()).collect(),
            ),
            Column::new(
                schema::telemetry::GPU_UTIL_PCT.into(),
                float(&|s| s.gpu_util_pct),
            ),
            Column::new(
                schema::telemetry::GPU_MEM_PCT.into(),
                float(&|s| s.gpu_mem_pct),
            ),
            Column::new(
                schema::telemetry::CPU_UTIL_PCT.into(),
                float(&|s| s.cpu_util_pct),
            ),
            Column::new(
                schema::telemetry::INVOCATIONS.into(),
                float(&|s| s.invocations),
            ),
            Column::new(
                schema::telemetry::ERRORS_5XX.into(),
                float(&|s| s.errors_5xx),
            ),
            Column::new(
                schema::telemetry::MODEL_LATENCY_MS.into(),
                float(&|s| s.model_latency_ms),
            ),
            Column::new(
                schema::telemetry::GPUS_ALLOCATED.into(),
                float(&|s| {
                    s.gpus_allocated
                        .or(priced.map(|c| f64::from(c.gpus_allocated)))
                }),
            ),
            Column::new(
                schema::telemetry::INSTANCE_TYPE.into(),
                rows.iter()
                    .map(|s| {
                        s.instance_type
                            .clone()
                            .or(priced.map(|c| c.instance_type.clone()))
                    })
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                schema::telemetry::PERIOD_SECONDS.into(),
                float(&|s| s.period_seconds),
            ),
            Column::new(schema::telemetry::POWER_W.into(), float(&|s| s.power_w)),
            Column::new(
                schema::telemetry::GPU.into(),
                rows.iter().map(|s| s.gpu.clone()).collect::<Vec<_>>(),
            ),
            Column::new(schema::telemetry::COST_USD.into(), costs.to_vec()),
            text_constant(schema::telemetry::SOURCE, source_id, height),
        ],
    )
}

/// What the stage reads.
#[derive(Debug, Clone)]
pub struct TelemetryJob {
    pub source: crate::config::TelemetrySource,
    pub window: Option<DateRange>,
    pub cost: CostModel,
    pub compression: Compression,
}

impl TelemetryJob {
    pub fn from_config(config: &crate::config::Config, window: Option<DateRange>) -> TelemetryJob {
        TelemetryJob {
            source: config.telemetry.source.clone(),
            window,
            cost: config.cost.clone(),
            compression: config.compression,
        }
    }
}

/// Runs the stage; `None` when no source is configured.
pub async fn telemetry(
    job: TelemetryJob,
    warehouse: &Warehouse,
    aws: &crate::aws::AwsClients,
) -> Result<Option<TelemetrySummary>, TelemetryError> {
    use crate::config::TelemetrySource;
    let started = Instant::now();
    let (read, source_id) = match &job.source {
        TelemetrySource::None => return Ok(None),
        TelemetrySource::File(path) => {
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || file::read(&path))
                .await
                .map_err(|e| TelemetryError::Read {
                    path: "(task)".into(),
                    message: e.to_string(),
                })??;
            (read, format!("file:{}", job_path(&job.source)))
        }
        TelemetrySource::CloudWatch {
            endpoint,
            components,
            period_seconds,
        } => {
            let window = job.window.ok_or_else(|| {
                TelemetryError::CloudWatch("the cloudwatch source needs a window".into())
            })?;
            let components = match components {
                Some(c) => c.clone(),
                None => models_in_captures(warehouse, window).await?,
            };
            let client = aws.cloudwatch().await;
            let read =
                cloudwatch::read(&client, endpoint, &components, window, *period_seconds).await?;
            (read, format!("cloudwatch:{endpoint}"))
        }
    };
    let mut summary = TelemetrySummary {
        source: source_id.clone(),
        rejected: read.rejected.len() as u64,
        rejected_examples: read.rejected.iter().take(20).cloned().collect(),
        no_data: read.no_data.clone(),
        ..TelemetrySummary::default()
    };
    write(
        read.samples,
        &source_id,
        job.window,
        &job.cost,
        job.compression,
        warehouse,
        &mut summary,
    )
    .await?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(Some(summary))
}

fn job_path(source: &crate::config::TelemetrySource) -> String {
    match source {
        crate::config::TelemetrySource::File(p) => p.display().to_string(),
        _ => String::new(),
    }
}

/// The models with captures in the window (the components to ask CloudWatch about).
async fn models_in_captures(
    warehouse: &Warehouse,
    window: DateRange,
) -> Result<Vec<String>, TelemetryError> {
    let keys = warehouse.list("captures/").await?;
    let mut models = std::collections::BTreeSet::new();
    for key in keys {
        if let Some(part) = crate::table::PartKey::parse(&key)
            && part.date().is_some_and(|d| window.contains(d))
            && let Some(model) = part.value("model")
        {
            models.insert(model.to_string());
        }
    }
    Ok(models.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_has_the_schemas_columns() {
        let df = frame(&[], &[], None, "test").unwrap();
        let expected: Vec<String> = schema::telemetry::COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        schema::check("telemetry", &df, &expected).unwrap();
    }

    #[test]
    fn periods_come_from_the_spacing_of_each_model() {
        let at = |m: i64| DateTime::<Utc>::from_timestamp(1_790_000_000 + m * 60, 0).unwrap();
        let mut samples = vec![
            Sample {
                ts: at(0),
                model: "a".into(),
                ..Sample::default()
            },
            Sample {
                ts: at(5),
                model: "a".into(),
                ..Sample::default()
            },
            Sample {
                ts: at(10),
                model: "a".into(),
                ..Sample::default()
            },
            Sample {
                ts: at(0),
                model: "b".into(),
                ..Sample::default()
            },
        ];
        infer_periods(&mut samples);
        let periods: Vec<f64> = samples.iter().map(|s| s.period_seconds.unwrap()).collect();
        assert_eq!(periods, [300.0, 300.0, 300.0, 60.0]);
    }
}
