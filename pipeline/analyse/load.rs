//! Reads what the analyse stage compares: per model and day, the scores of one rubric by one judge
//! (per dimension, the composite, judge errors) and the capture features (lengths, tokens,
//! latency, refusals, finish reasons). polars does the grouping; the results are plain vectors.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use tokio::task::JoinSet;

use crate::config::DateRange;
use crate::rubric::{CompositeRule, Rubric};
use crate::table::{PartKey, read_part};
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read `{key}`: {message}")]
    Read { key: String, message: String },
    #[error("cannot group `{table}`: {message}")]
    Query {
        table: &'static str,
        message: String,
    },
}

/// What one model did on one day. Every value vector but `captured_at` and the telemetry ones
/// (which pair up by position) is sorted ascending, without NaN.
#[derive(Debug, Clone, Default)]
pub struct DayData {
    /// Dimension -> the `ok` scores (0..1).
    pub scores: BTreeMap<String, Vec<f64>>,
    /// Composite of the captures scored `ok` on every dimension.
    pub composite: Vec<f64>,
    /// Per capture judged (ok or error, not skipped): 1 if any of its rows is an error.
    pub judge_error: Vec<f64>,
    pub skipped_budget: u64,
    pub judge_cost_usd: f64,
    pub requests: u64,
    pub prompt_chars: Vec<f64>,
    pub response_chars: Vec<f64>,
    pub prompt_tokens: Vec<f64>,
    pub completion_tokens: Vec<f64>,
    pub latency_ms: Vec<f64>,
    /// Per capture: 1 if the reply is a refusal.
    pub refusal: Vec<f64>,
    pub finish_reason: BTreeMap<String, u64>,
    /// Capture times (µs since the epoch), for the as-of join with telemetry.
    pub captured_at: Vec<i64>,
    /// Telemetry of the day: sample times (µs), GPU utilisation and memory (%), allocation.
    pub telemetry_ts: Vec<i64>,
    pub gpu_util: Vec<f64>,
    pub gpu_mem: Vec<f64>,
    pub gpus_allocated: Vec<f64>,
    pub model_latency_ms: Vec<f64>,
    pub invocations: Option<f64>,
    pub errors_5xx: Option<f64>,
    /// What the model's hardware cost that day; `None` without a cost entry or telemetry.
    pub cost_usd: Option<f64>,
}

/// (model, day) -> what happened.
pub type Data = BTreeMap<(String, NaiveDate), DayData>;

/// Reads the parts of `<prefix>` whose `date` is in `range`, in parallel, each through
/// `transform` (on a blocking thread).
async fn read_parts<T: Send + 'static>(
    warehouse: &Warehouse,
    prefix: &str,
    range: DateRange,
    columns: &'static [(&'static str, DataType)],
    transform: fn(DataFrame, &Context) -> PolarsResult<T>,
    context: &Context,
) -> Result<Vec<T>, LoadError> {
    let keys = warehouse.list(prefix).await?;
    let parts: Vec<PartKey> = keys
        .iter()
        .filter_map(|k| PartKey::parse(k))
        .filter(|p| p.date().is_some_and(|d| range.contains(d)))
        .collect();
    let mut tasks: JoinSet<Result<Option<T>, LoadError>> = JoinSet::new();
    let mut out = Vec::with_capacity(parts.len());
    let limit = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    for part in parts {
        while tasks.len() >= limit {
            if let Some(done) = tasks.join_next().await {
                out.extend(joined(done)?);
            }
        }
        let warehouse = warehouse.clone();
        let context = context.clone();
        tasks.spawn(async move {
            let Some(bytes) = warehouse.get(&part.key).await? else {
                return Ok(None);
            };
            tokio::task::spawn_blocking(move || {
                read_part(bytes, &part, columns)
                    .and_then(|df| transform(df, &context))
                    .map(Some)
                    .map_err(|e| LoadError::Read {
                        key: part.key.clone(),
                        message: e.to_string(),
                    })
            })
            .await
            .map_err(|e| LoadError::Read {
                key: "(task)".into(),
                message: e.to_string(),
            })?
        });
    }
    while let Some(done) = tasks.join_next().await {
        out.extend(joined(done)?);
    }
    Ok(out)
}

/// What a per-part transform may need besides the part.
#[derive(Debug, Clone, Default)]
struct Context {
    rubric: Option<Rubric>,
    judge: String,
}

/// Reads the parts of `<prefix>` whose `date` is in `range` into one frame.
async fn read_table(
    warehouse: &Warehouse,
    prefix: &str,
    range: DateRange,
    columns: &'static [(&'static str, DataType)],
) -> Result<Option<DataFrame>, LoadError> {
    let frames = read_parts(
        warehouse,
        prefix,
        range,
        columns,
        |df, _| Ok(df),
        &Context::default(),
    )
    .await?;
    let mut frames = frames.into_iter().filter(|f| f.height() > 0);
    let Some(mut all) = frames.next() else {
        return Ok(None);
    };
    for frame in frames {
        all.vstack_mut_owned(frame).map_err(|e| LoadError::Query {
            table: "concat",
            message: e.to_string(),
        })?;
    }
    Ok(Some(all))
}

fn joined<T>(done: Result<Result<T, LoadError>, tokio::task::JoinError>) -> Result<T, LoadError> {
    done.map_err(|e| LoadError::Read {
        key: "(task)".into(),
        message: e.to_string(),
    })?
}

const SCORE_COLUMNS: &[(&str, DataType)] = &[
    ("request_id", DataType::String),
    ("dimension", DataType::String),
    ("score", DataType::Float64),
    ("status", DataType::String),
    ("judge", DataType::String),
    ("judge_cost_usd", DataType::Float64),
];

const CAPTURE_COLUMNS: &[(&str, DataType)] = &[
    ("prompt_chars", DataType::Float64),
    ("response_chars", DataType::Float64),
    ("prompt_tokens", DataType::Float64),
    ("completion_tokens", DataType::Float64),
    ("latency_ms", DataType::Float64),
    ("refusal", DataType::Float64),
    ("finish_reason", DataType::String),
    ("captured_at", DataType::Int64),
];

const TELEMETRY_COLUMNS: &[(&str, DataType)] = &[
    ("ts", DataType::Int64),
    ("gpu_util_pct", DataType::Float64),
    ("gpu_mem_pct", DataType::Float64),
    ("gpus_allocated", DataType::Float64),
    ("model_latency_ms", DataType::Float64),
    ("invocations", DataType::Float64),
    ("errors_5xx", DataType::Float64),
    ("cost_usd", DataType::Float64),
];

fn query(table: &'static str) -> impl Fn(PolarsError) -> LoadError {
    move |e| LoadError::Query {
        table,
        message: e.to_string(),
    }
}

/// Walks a grouped frame's `model` and `date` columns with a per-row callback.
fn each_group(
    df: &DataFrame,
    mut f: impl FnMut(usize, (String, NaiveDate)) -> PolarsResult<()>,
) -> PolarsResult<()> {
    let models = df.column("model")?.str()?.clone();
    let dates = df.column("date")?.date()?.clone();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    for i in 0..df.height() {
        let model = models.get(i).unwrap_or_default().to_string();
        let days = dates.phys.get(i).unwrap_or_default();
        let date = epoch + chrono::Days::new(days.max(0) as u64);
        f(i, (model, date))?;
    }
    Ok(())
}

/// The f64 values of row `i` of a list column.
fn list_values(column: &Column, i: usize) -> PolarsResult<Vec<f64>> {
    let list = column.list()?;
    Ok(match list.get_as_series(i) {
        Some(series) => series.f64()?.iter().flatten().collect(),
        None => Vec::new(),
    })
}

/// [`list_values`] ascending, without NaN: the order every comparison wants.
fn sorted_values(column: &Column, i: usize) -> PolarsResult<Vec<f64>> {
    let mut values = list_values(column, i)?;
    values.retain(|v| !v.is_nan());
    values.sort_unstable_by(f64::total_cmp);
    Ok(values)
}

/// Scores of `rubric` by `judge` for the days of `range`, into `data`.
pub async fn load_scores(
    warehouse: &Warehouse,
    rubric: &Rubric,
    judge: &str,
    range: DateRange,
    data: &mut Data,
) -> Result<(), LoadError> {
    // The score stage writes the rubric key as it is (`quality@1.0.0`). Each part (one model-day
    // of one judge) is grouped on its own thread: captures never span parts, so the per-capture
    // composite needs no table-wide group-by, and the 10M-row table is never held at once.
    let prefix = format!("scores/rubric={}/", rubric.key());
    let context = Context {
        rubric: Some(rubric.clone()),
        judge: judge.to_string(),
    };
    let groups = read_parts(
        warehouse,
        &prefix,
        range,
        SCORE_COLUMNS,
        |df, c| match &c.rubric {
            Some(rubric) => score_groups(df, rubric, &c.judge),
            None => Err(PolarsError::NoData("no rubric".into())),
        },
        &context,
    )
    .await?;
    let mut errors_of: BTreeMap<(String, NaiveDate), u64> = BTreeMap::new();
    for (dims, composite, errors, skipped, cost) in groups {
        each_group(&dims, |i, key| {
            let dimension = dims
                .column("dimension")?
                .str()?
                .get(i)
                .unwrap_or_default()
                .to_string();
            let values = list_values(dims.column("score")?, i)?;
            data.entry(key)
                .or_default()
                .scores
                .entry(dimension)
                .or_default()
                .extend(values);
            Ok(())
        })
        .map_err(query("scores"))?;
        each_group(&composite, |i, key| {
            let values = list_values(composite.column("composite")?, i)?;
            data.entry(key).or_default().composite.extend(values);
            Ok(())
        })
        .map_err(query("scores"))?;
        each_group(&errors, |i, key| {
            let n = errors
                .column("errors")?
                .cast(&DataType::UInt64)?
                .u64()?
                .get(i)
                .unwrap_or(0);
            *errors_of.entry(key).or_default() += n;
            Ok(())
        })
        .map_err(query("scores"))?;
        each_group(&skipped, |i, key| {
            let n = skipped.column("skipped")?.u32()?.get(i).unwrap_or(0);
            data.entry(key).or_default().skipped_budget += u64::from(n);
            Ok(())
        })
        .map_err(query("scores"))?;
        each_group(&cost, |i, key| {
            let usd = cost.column("cost")?.f64()?.get(i).unwrap_or(0.0);
            data.entry(key).or_default().judge_cost_usd += usd;
            Ok(())
        })
        .map_err(query("scores"))?;
    }
    // Sorted, as every value vector; per capture judged: 0 for each scored on every dimension,
    // then 1 for each with an error.
    for (key, day) in data.iter_mut() {
        for values in day.scores.values_mut() {
            values.retain(|v| !v.is_nan());
            values.sort_unstable_by(f64::total_cmp);
        }
        day.composite.retain(|v| !v.is_nan());
        day.composite.sort_unstable_by(f64::total_cmp);
        let errors = errors_of.get(key).copied().unwrap_or(0) as usize;
        day.judge_error = vec![0.0; day.composite.len()];
        day.judge_error.extend(std::iter::repeat_n(1.0, errors));
    }
    Ok(())
}

type ScoreGroups = (DataFrame, DataFrame, DataFrame, DataFrame, DataFrame);

fn score_groups(df: DataFrame, rubric: &Rubric, judge: &str) -> PolarsResult<ScoreGroups> {
    let base = df
        .lazy()
        .filter(col("judge").eq(lit(judge.to_string())))
        .cache();
    let ok = base.clone().filter(col("status").eq(lit("ok")));
    let keys = [col("model"), col("date")];
    let dims = ok
        .clone()
        .group_by([col("model"), col("date"), col("dimension")])
        .agg([col("score")])
        .collect()?;

    // The composite per capture, from the captures scored ok on every dimension.
    let mut weight = lit(f64::NAN);
    for d in &rubric.dimensions {
        weight = when(col("dimension").eq(lit(d.name.clone())))
            .then(lit(d.weight))
            .otherwise(weight);
    }
    let per_capture = match rubric.composite {
        CompositeRule::WeightedMean => (col("score") * weight).sum(),
        CompositeRule::Min => col("score").min(),
    };
    let composite = ok
        .group_by([col("model"), col("date"), col("request_id")])
        .agg([per_capture.alias("composite"), len().alias("n")])
        .filter(col("n").eq(lit(rubric.dimensions.len() as u32)))
        .group_by(keys.clone())
        .agg([col("composite")])
        .collect()?;

    // Captures with an error row (few): the others judged are the composite's.
    let errors = base
        .clone()
        .filter(col("status").eq(lit("error")))
        .group_by(keys.clone())
        .agg([col("request_id").n_unique().alias("errors")])
        .collect()?;

    let dims_n = rubric.dimensions.len().max(1) as u32;
    let skipped = base
        .clone()
        .filter(col("status").eq(lit("skipped_budget")))
        .group_by(keys.clone())
        .agg([(len() / lit(dims_n)).alias("skipped")])
        .collect()?;

    let cost = base
        .group_by(keys)
        .agg([col("judge_cost_usd").sum().alias("cost")])
        .collect()?;
    Ok((dims, composite, errors, skipped, cost))
}

/// Capture features for the days of `range`, into `data`.
pub async fn load_captures(
    warehouse: &Warehouse,
    range: DateRange,
    data: &mut Data,
) -> Result<(), LoadError> {
    let Some(df) = read_table(warehouse, "captures/", range, CAPTURE_COLUMNS).await? else {
        return Ok(());
    };
    let (lists, reasons) = tokio::task::spawn_blocking(move || capture_groups(df))
        .await
        .map_err(|e| LoadError::Query {
            table: "captures",
            message: e.to_string(),
        })?
        .map_err(query("captures"))?;
    each_group(&lists, |i, key| {
        let day = data.entry(key).or_default();
        day.requests = u64::from(lists.column("requests")?.u32()?.get(i).unwrap_or(0));
        day.prompt_chars = sorted_values(lists.column("prompt_chars")?, i)?;
        day.response_chars = sorted_values(lists.column("response_chars")?, i)?;
        day.prompt_tokens = sorted_values(lists.column("prompt_tokens")?, i)?;
        day.completion_tokens = sorted_values(lists.column("completion_tokens")?, i)?;
        day.latency_ms = sorted_values(lists.column("latency_ms")?, i)?;
        day.refusal = sorted_values(lists.column("refusal")?, i)?;
        day.captured_at = list_values(lists.column("captured_at")?, i)?
            .into_iter()
            .map(|v| v as i64)
            .collect();
        Ok(())
    })
    .map_err(query("captures"))?;
    each_group(&reasons, |i, key| {
        let reason = reasons
            .column("finish_reason")?
            .str()?
            .get(i)
            .unwrap_or("(none)")
            .to_string();
        let n = reasons.column("n")?.u32()?.get(i).unwrap_or(0);
        data.entry(key)
            .or_default()
            .finish_reason
            .insert(reason, u64::from(n));
        Ok(())
    })
    .map_err(query("captures"))?;
    Ok(())
}

fn capture_groups(df: DataFrame) -> PolarsResult<(DataFrame, DataFrame)> {
    let base = df.lazy().cache();
    let keys = [col("model"), col("date")];
    let features = [
        "prompt_chars",
        "response_chars",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "refusal",
    ];
    let mut aggs = vec![len().alias("requests")];
    aggs.extend(features.iter().map(|f| col(*f).drop_nulls()));
    aggs.push(col("captured_at").cast(DataType::Float64).drop_nulls());
    let lists = base.clone().group_by(keys.clone()).agg(aggs).collect()?;
    let reasons = base
        .group_by([col("model"), col("date"), col("finish_reason")])
        .agg([len().alias("n")])
        .collect()?;
    Ok((lists, reasons))
}

/// Telemetry for the days of `range`, into `data`.
pub async fn load_telemetry(
    warehouse: &Warehouse,
    range: DateRange,
    data: &mut Data,
) -> Result<(), LoadError> {
    let Some(df) = read_table(warehouse, "telemetry/", range, TELEMETRY_COLUMNS).await? else {
        return Ok(());
    };
    let grouped = tokio::task::spawn_blocking(move || {
        df.lazy()
            .group_by([col("model"), col("date")])
            .agg([
                col("ts").cast(DataType::Float64),
                col("gpu_util_pct").fill_null(lit(f64::NAN)),
                col("gpu_mem_pct").drop_nulls(),
                col("gpus_allocated").drop_nulls(),
                col("model_latency_ms").drop_nulls(),
                col("invocations").sum().alias("invocations_sum"),
                col("invocations").count().alias("invocations_n"),
                col("errors_5xx").sum().alias("errors_sum"),
                col("errors_5xx").count().alias("errors_n"),
                col("cost_usd").sum().alias("cost_sum"),
                col("cost_usd").count().alias("cost_n"),
            ])
            .collect()
    })
    .await
    .map_err(|e| LoadError::Query {
        table: "telemetry",
        message: e.to_string(),
    })?
    .map_err(query("telemetry"))?;
    each_group(&grouped, |i, key| {
        let day = data.entry(key).or_default();
        day.telemetry_ts = list_values(grouped.column("ts")?, i)?
            .into_iter()
            .map(|v| v as i64)
            .collect();
        day.gpu_util = list_values(grouped.column("gpu_util_pct")?, i)?;
        day.gpu_mem = list_values(grouped.column("gpu_mem_pct")?, i)?;
        day.gpus_allocated = list_values(grouped.column("gpus_allocated")?, i)?;
        day.model_latency_ms = list_values(grouped.column("model_latency_ms")?, i)?;
        let sum_if = |sum: &str, n: &str| -> PolarsResult<Option<f64>> {
            let count = grouped.column(n)?.u32()?.get(i).unwrap_or(0);
            Ok((count > 0)
                .then(|| grouped.column(sum).ok()?.f64().ok()?.get(i))
                .flatten())
        };
        day.invocations = sum_if("invocations_sum", "invocations_n")?;
        day.errors_5xx = sum_if("errors_sum", "errors_n")?;
        day.cost_usd = sum_if("cost_sum", "cost_n")?;
        Ok(())
    })
    .map_err(query("telemetry"))?;
    Ok(())
}
