//! Reads what the analyse stage compares: per model and day, the scores of one rubric by one judge
//! (per dimension, the composite, judge errors) and the capture features (lengths, tokens,
//! latency, refusals, finish reasons), and the telemetry. polars decodes the Parquet; each part
//! (one model-day) is summarised in one pass over its rows, on its own thread, into plain vectors.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;
use polars::prelude::*;
use tokio::task::JoinSet;

use super::stats;
use crate::rubric::{CompositeRule, Rubric};
use crate::schema;
use crate::table::{PartKey, read_part};
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read `{key}`: {message}")]
    Read { key: String, message: String },
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error(transparent)]
    Compact(#[from] crate::compact::CompactError),
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
    /// Per capture judged (ok or error): the judge call's latency.
    pub judge_latency_ms: Vec<f64>,
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
    /// Per telemetry interval with a latency: its invocations (1 when it has none), paired with
    /// `model_latency_ms`.
    pub model_latency_weights: Vec<f64>,
    pub invocations: Option<f64>,
    pub errors_5xx: Option<f64>,
    /// What the model's hardware cost that day; `None` without a cost entry or telemetry.
    pub cost_usd: Option<f64>,
    /// A jury's scores: dimension -> per capture, each member's level (members in id order).
    pub jury: BTreeMap<String, Vec<Vec<Option<i64>>>>,
    /// A jury's captures whose members were two levels or more apart on some dimension.
    pub jury_disagreements: u64,
    /// The judged captures' embedded prompts and replies (the `embeddings` table): per part at
    /// most `[embed] max-vectors`, those whose request ids hash lowest.
    pub prompt_vectors: Vec<Embedded>,
    pub reply_vectors: Vec<Embedded>,
    /// Per judged capture (by request id): its composite (`None` unless scored on every
    /// dimension) and whether the judge failed on it; for quality per topic.
    pub judged: HashMap<String, (Option<f64>, bool)>,
}

/// One embedded text of a capture.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Where the request id hashes to: a side holding more vectors than a test reads keeps the
    /// lowest (the same ones on every run, a uniform sample).
    pub key: u64,
    pub request_id: Arc<str>,
    pub vector: Arc<[f32]>,
}

/// The `limit` embedded texts of `items` with the lowest keys, as vectors.
pub fn lowest(items: &[Embedded], limit: usize) -> Vec<&Embedded> {
    let mut out: Vec<&Embedded> = items.iter().collect();
    out.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| a.request_id.cmp(&b.request_id))
    });
    out.truncate(limit);
    out
}

/// (model, day) -> what happened.
pub type Data = BTreeMap<(String, NaiveDate), DayData>;

/// Reads the parts among `keys` whose `date` is one of `days`, in parallel, each through
/// `transform` (on a blocking thread) into what it adds to its model-day.
async fn read_parts(
    warehouse: &Warehouse,
    keys: Vec<String>,
    days: &BTreeSet<NaiveDate>,
    columns: &'static [(&'static str, DataType)],
    transform: fn(DataFrame, &Context) -> PolarsResult<DayData>,
    context: &Context,
    data: &mut Data,
) -> Result<(), LoadError> {
    let parts: Vec<(PartKey, (String, NaiveDate))> = keys
        .iter()
        .filter_map(|k| PartKey::parse(k))
        .filter_map(|p| {
            let date = p.date().filter(|d| days.contains(d))?;
            let model = p.value("model")?.to_string();
            Some((p, (model, date)))
        })
        .collect();
    type Task = Result<Option<((String, NaiveDate), DayData)>, LoadError>;
    let mut tasks: JoinSet<Task> = JoinSet::new();
    let limit = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let mut add = |done: Result<Task, tokio::task::JoinError>| -> Result<(), LoadError> {
        let done = done.map_err(|e| LoadError::Read {
            key: "(task)".into(),
            message: e.to_string(),
        })??;
        if let Some((key, part)) = done {
            add_part(data, key, part);
        }
        Ok(())
    };
    for (part, key) in parts {
        while tasks.len() >= limit {
            if let Some(done) = tasks.join_next().await {
                add(done)?;
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
                    .map(|day| Some((key, day)))
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
        add(done)?;
    }
    Ok(())
}

/// Adds one part's summary to `data`, merged with what the same key already holds.
pub fn add_part(data: &mut Data, key: (String, NaiveDate), part: DayData) {
    match data.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(part);
        }
        Entry::Occupied(mut slot) => slot.get_mut().absorb(part),
    }
}

/// What a per-part transform may need besides the part.
#[derive(Debug, Clone, Default)]
struct Context {
    rubric: Option<Rubric>,
    judge: String,
    /// Most vectors of each kind kept per part.
    max_vectors: usize,
    /// Whether score parts keep each capture's composite ([`DayData::judged`]).
    per_request: bool,
}

impl DayData {
    /// Adds what another part of the same model-day holds (vectors stay sorted).
    fn absorb(&mut self, other: DayData) {
        fn merge(into: &mut Vec<f64>, from: Vec<f64>) {
            *into = stats::merge_many(&[into.as_slice(), from.as_slice()]);
        }
        for (dimension, values) in other.scores {
            merge(self.scores.entry(dimension).or_default(), values);
        }
        merge(&mut self.composite, other.composite);
        merge(&mut self.judge_error, other.judge_error);
        merge(&mut self.judge_latency_ms, other.judge_latency_ms);
        self.skipped_budget += other.skipped_budget;
        self.judge_cost_usd += other.judge_cost_usd;
        self.requests += other.requests;
        merge(&mut self.prompt_chars, other.prompt_chars);
        merge(&mut self.response_chars, other.response_chars);
        merge(&mut self.prompt_tokens, other.prompt_tokens);
        merge(&mut self.completion_tokens, other.completion_tokens);
        merge(&mut self.latency_ms, other.latency_ms);
        merge(&mut self.refusal, other.refusal);
        for (reason, n) in other.finish_reason {
            *self.finish_reason.entry(reason).or_default() += n;
        }
        self.captured_at.extend(other.captured_at);
        self.telemetry_ts.extend(other.telemetry_ts);
        self.gpu_util.extend(other.gpu_util);
        self.gpu_mem.extend(other.gpu_mem);
        self.gpus_allocated.extend(other.gpus_allocated);
        self.model_latency_ms.extend(other.model_latency_ms);
        self.model_latency_weights
            .extend(other.model_latency_weights);
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.invocations = add(self.invocations, other.invocations);
        self.errors_5xx = add(self.errors_5xx, other.errors_5xx);
        self.cost_usd = add(self.cost_usd, other.cost_usd);
        for (dimension, units) in other.jury {
            self.jury.entry(dimension).or_default().extend(units);
        }
        self.jury_disagreements += other.jury_disagreements;
        self.prompt_vectors.extend(other.prompt_vectors);
        self.reply_vectors.extend(other.reply_vectors);
        self.judged.extend(other.judged);
    }
}

const SCORE_COLUMNS: &[(&str, DataType)] = &[
    (schema::scores::REQUEST_ID, DataType::String),
    (schema::scores::DIMENSION, DataType::String),
    (schema::scores::SCORE, DataType::Float64),
    (schema::scores::STATUS, DataType::String),
    (schema::scores::JUDGE, DataType::String),
    (schema::scores::JUDGE_COST_USD, DataType::Float64),
    (schema::scores::JUDGE_LATENCY_MS, DataType::Float64),
    (schema::scores::MEMBER_LEVELS, DataType::String),
];

const CAPTURE_COLUMNS: &[(&str, DataType)] = &[
    (schema::captures::PROMPT_CHARS, DataType::Float64),
    (schema::captures::RESPONSE_CHARS, DataType::Float64),
    (schema::captures::PROMPT_TOKENS, DataType::Float64),
    (schema::captures::COMPLETION_TOKENS, DataType::Float64),
    (schema::captures::LATENCY_MS, DataType::Float64),
    (schema::captures::REFUSAL, DataType::Float64),
    (schema::captures::FINISH_REASON, DataType::String),
    (schema::captures::CAPTURED_AT, DataType::Int64),
];

const TELEMETRY_COLUMNS: &[(&str, DataType)] = &[
    (schema::telemetry::TS, DataType::Int64),
    (schema::telemetry::GPU_UTIL_PCT, DataType::Float64),
    (schema::telemetry::GPU_MEM_PCT, DataType::Float64),
    (schema::telemetry::GPUS_ALLOCATED, DataType::Float64),
    (schema::telemetry::MODEL_LATENCY_MS, DataType::Float64),
    (schema::telemetry::INVOCATIONS, DataType::Float64),
    (schema::telemetry::ERRORS_5XX, DataType::Float64),
    (schema::telemetry::COST_USD, DataType::Float64),
];

/// The non-null, non-NaN values of a Float64 column, ascending.
fn sorted(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    let mut values: Vec<f64> = df
        .column(name)?
        .f64()?
        .iter()
        .flatten()
        .filter(|v| !v.is_nan())
        .collect();
    values.sort_unstable_by(f64::total_cmp);
    Ok(values)
}

/// The non-null values of a Float64 column, in row order.
fn present(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(df.column(name)?.f64()?.iter().flatten().collect())
}

/// The sum of a Float64 column, `None` when every value is null.
fn sum_of(df: &DataFrame, name: &str) -> PolarsResult<Option<f64>> {
    let column = df.column(name)?.f64()?;
    Ok((column.null_count() < column.len()).then(|| column.iter().flatten().sum()))
}

/// Scores of `rubric` by `judge` for `days`, into `data`.
pub async fn load_scores(
    warehouse: &Warehouse,
    rubric: &Rubric,
    judge: &str,
    days: &BTreeSet<NaiveDate>,
    per_request: bool,
    data: &mut Data,
) -> Result<(), LoadError> {
    // Each part (one model-day of one judge) is read on its own thread: captures never span
    // parts, so the per-capture composite needs no table-wide group-by, and the 10M-row table is
    // never held at once.
    let context = Context {
        rubric: Some(rubric.clone()),
        judge: judge.to_string(),
        per_request,
        ..Context::default()
    };
    // One current part per folder and judge (score::current): never two generations.
    let keys = crate::score::current::parts_of_days(warehouse, rubric, judge, days).await?;
    read_parts(
        warehouse,
        keys,
        days,
        SCORE_COLUMNS,
        |df, c| match &c.rubric {
            Some(rubric) => score_part(&df, rubric, &c.judge, c.per_request),
            None => Err(PolarsError::NoData("no rubric".into())),
        },
        &context,
        data,
    )
    .await
}

/// One capture's rows of a scores part.
#[derive(Clone, Copy)]
struct Judged {
    /// Weighted sum or minimum of the `ok` scores, by the rubric's composite rule.
    composite: f64,
    ok: usize,
    error: bool,
}

/// The scores of one part (one model-day), in one pass over its rows: the `ok` scores per
/// dimension, the composite of each capture scored `ok` on every dimension, the captures with
/// an error, the skipped ones, the judge's cost.
fn score_part(
    df: &DataFrame,
    rubric: &Rubric,
    judge: &str,
    per_request: bool,
) -> PolarsResult<DayData> {
    let ids = df.column(schema::scores::REQUEST_ID)?.str()?;
    let scores = df.column(schema::scores::SCORE)?.f64()?;
    let costs = df.column(schema::scores::JUDGE_COST_USD)?.f64()?;
    let latencies = df.column(schema::scores::JUDGE_LATENCY_MS)?.f64()?;
    // The text columns hold a handful of values: compared as whole columns (fast kernels), then
    // walked as booleans.
    let mine = df.column(schema::scores::JUDGE)?.str()?.equal(judge);
    let statuses = df.column(schema::scores::STATUS)?.str()?;
    let (ok, error, skipped) = (
        statuses.equal(schema::status::OK),
        statuses.equal(schema::status::ERROR),
        statuses.equal(schema::status::SKIPPED_BUDGET),
    );
    let dimensions = df.column(schema::scores::DIMENSION)?.str()?;
    // Per dimension: its name, the rubric's weight (NaN for one the rubric lacks: no composite
    // then), which rows hold it, its values.
    let mut columns: Vec<(String, f64, Vec<f64>)> = rubric
        .dimensions
        .iter()
        .map(|d| (d.name.clone(), d.weight, Vec::new()))
        .collect();
    let masks: Vec<BooleanChunked> = rubric
        .dimensions
        .iter()
        .map(|d| dimensions.equal(d.name.as_str()))
        .collect();
    let mut masks: Vec<_> = masks.iter().map(|m| m.iter()).collect();
    let min_rule = matches!(rubric.composite, CompositeRule::Min);
    let start = if min_rule { f64::INFINITY } else { 0.0 };
    let mut judged: Vec<Judged> = Vec::new();
    let mut slot_of: PlHashMap<&str, usize> =
        PlHashMap::with_capacity(df.height() / rubric.dimensions.len().max(1));
    // The score stage writes a capture's rows together: most rows find their capture without
    // a hash lookup.
    let mut last: Option<(&str, usize)> = None;
    let mut day = DayData::default();
    let mut skipped_rows = 0u64;
    // A jury's parts: each member's level per row (null for a single judge).
    let members = df.column(schema::scores::MEMBER_LEVELS)?.str()?;
    let jury_rows = members.null_count() < members.len();
    let mut disagreeing: PlHashMap<&str, ()> = PlHashMap::new();
    let rows = ids
        .iter()
        .zip(dimensions.iter())
        .zip(scores.iter())
        .zip(costs.iter().zip(latencies.iter()))
        .zip(mine.iter())
        .zip(ok.iter().zip(error.iter()).zip(skipped.iter()))
        .enumerate();
    for (row, ((((id, dimension), score), (cost, latency)), mine), ((ok, error), skipped)) in
        rows.map(|(i, (a, b))| (i, a, b))
    {
        // Which rubric dimension the row holds (every mask advances on every row).
        let mut at = None;
        for (d, mask) in masks.iter_mut().enumerate() {
            if mask.next().flatten() == Some(true) {
                at = Some(d);
            }
        }
        if mine != Some(true) {
            continue;
        }
        day.judge_cost_usd += cost.unwrap_or(0.0);
        if skipped == Some(true) {
            skipped_rows += 1;
            continue;
        }
        let (ok, error) = (ok == Some(true), error == Some(true));
        if !ok && !error {
            continue;
        }
        let id = id.unwrap_or_default();
        let slot = match last {
            Some((previous, slot)) if previous == id => slot,
            _ => {
                let slot = *slot_of.entry(id).or_insert_with(|| {
                    // A call's latency is on each of its rows: taken once per capture.
                    if let Some(ms) = latency.filter(|ms| !ms.is_nan()) {
                        day.judge_latency_ms.push(ms);
                    }
                    judged.push(Judged {
                        composite: start,
                        ok: 0,
                        error: false,
                    });
                    judged.len() - 1
                });
                last = Some((id, slot));
                slot
            }
        };
        let capture = &mut judged[slot];
        if error {
            capture.error = true;
            continue;
        }
        let (Some(dimension), Some(score)) = (dimension, score) else {
            continue;
        };
        if jury_rows
            && let Some(levels) = members
                .get(row)
                .and_then(|m| serde_json::from_str::<BTreeMap<String, i64>>(m).ok())
        {
            let unit: Vec<Option<i64>> = levels.values().map(|l| Some(*l)).collect();
            let (low, high) = (levels.values().min(), levels.values().max());
            if let (Some(low), Some(high)) = (low, high)
                && high - low >= 2
            {
                disagreeing.insert(id, ());
            }
            day.jury
                .entry(dimension.to_string())
                .or_default()
                .push(unit);
        }
        let at = match at {
            Some(at) => at,
            None => match columns.iter().position(|(name, _, _)| name == dimension) {
                Some(at) => at,
                None => {
                    columns.push((dimension.to_string(), f64::NAN, Vec::new()));
                    columns.len() - 1
                }
            },
        };
        let (_, weight, values) = &mut columns[at];
        values.push(score);
        capture.composite = if min_rule {
            if weight.is_nan() {
                f64::NAN
            } else {
                capture.composite.min(score)
            }
        } else {
            capture.composite + *weight * score
        };
        capture.ok += 1;
    }
    for (name, _, mut values) in columns {
        if values.is_empty() {
            continue;
        }
        values.retain(|v| !v.is_nan());
        values.sort_unstable_by(f64::total_cmp);
        day.scores.insert(name, values);
    }
    let wanted = rubric.dimensions.len();
    if per_request {
        day.judged = slot_of
            .iter()
            .map(|(id, slot)| {
                let c = &judged[*slot];
                let composite = (c.ok == wanted && !c.composite.is_nan()).then_some(c.composite);
                (id.to_string(), (composite, c.error))
            })
            .collect();
    }
    day.composite = judged
        .iter()
        .filter(|c| c.ok == wanted && !c.composite.is_nan())
        .map(|c| c.composite)
        .collect();
    day.composite.sort_unstable_by(f64::total_cmp);
    day.jury_disagreements = disagreeing.len() as u64;
    day.judge_latency_ms.sort_unstable_by(f64::total_cmp);
    // Sorted, as every value vector; per capture judged: 0 for each scored on every dimension,
    // then 1 for each with an error.
    let errors = judged.iter().filter(|c| c.error).count();
    day.judge_error = vec![0.0; day.composite.len()];
    day.judge_error.extend(std::iter::repeat_n(1.0, errors));
    day.skipped_budget = skipped_rows / wanted.max(1) as u64;
    Ok(day)
}

/// Capture features for `days`, into `data`.
pub async fn load_captures(
    warehouse: &Warehouse,
    days: &BTreeSet<NaiveDate>,
    data: &mut Data,
) -> Result<(), LoadError> {
    read_parts(
        warehouse,
        crate::compact::captures(warehouse).await?,
        days,
        CAPTURE_COLUMNS,
        |df, _| capture_part(&df),
        &Context::default(),
        data,
    )
    .await
}

fn capture_part(df: &DataFrame) -> PolarsResult<DayData> {
    let mut day = DayData {
        requests: df.height() as u64,
        prompt_chars: sorted(df, schema::captures::PROMPT_CHARS)?,
        response_chars: sorted(df, schema::captures::RESPONSE_CHARS)?,
        prompt_tokens: sorted(df, schema::captures::PROMPT_TOKENS)?,
        completion_tokens: sorted(df, schema::captures::COMPLETION_TOKENS)?,
        latency_ms: sorted(df, schema::captures::LATENCY_MS)?,
        refusal: sorted(df, schema::captures::REFUSAL)?,
        captured_at: df
            .column(schema::captures::CAPTURED_AT)?
            .i64()?
            .iter()
            .flatten()
            .collect(),
        ..DayData::default()
    };
    for reason in df.column(schema::captures::FINISH_REASON)?.str()?.iter() {
        *day.finish_reason
            .entry(reason.unwrap_or("(none)").to_string())
            .or_default() += 1;
    }
    Ok(day)
}

static EMBEDDING_COLUMNS: LazyLock<Vec<(&'static str, DataType)>> = LazyLock::new(|| {
    vec![
        (schema::embeddings::REQUEST_ID, DataType::String),
        (schema::embeddings::KIND, DataType::String),
        (
            schema::embeddings::VECTOR,
            DataType::List(Box::new(DataType::Float32)),
        ),
    ]
});

/// Embedded prompts and replies for `days` among the `embeddings` parts `keys`, into `data`: per part at most `max_vectors` of
/// each kind ([`Embedded::key`]).
pub async fn load_embeddings(
    warehouse: &Warehouse,
    keys: Vec<String>,
    days: &BTreeSet<NaiveDate>,
    max_vectors: usize,
    data: &mut Data,
) -> Result<(), LoadError> {
    read_parts(
        warehouse,
        keys,
        days,
        EMBEDDING_COLUMNS.as_slice(),
        |df, c| embedding_part(&df, c.max_vectors),
        &Context {
            max_vectors,
            ..Context::default()
        },
        data,
    )
    .await
}

fn embedding_part(df: &DataFrame, max_vectors: usize) -> PolarsResult<DayData> {
    let ids = df.column(schema::embeddings::REQUEST_ID)?.str()?;
    let kinds = df.column(schema::embeddings::KIND)?.str()?;
    let vectors = crate::embed::stage::vectors_of(df)?;
    let mut day = DayData::default();
    for ((id, kind), vector) in ids.iter().zip(kinds.iter()).zip(vectors) {
        let (Some(id), Some(kind), Some(vector)) = (id, kind, vector) else {
            continue;
        };
        let item = Embedded {
            key: crate::util::request_key(id),
            request_id: Arc::from(id),
            vector: Arc::from(vector),
        };
        match kind {
            schema::kind::PROMPT => day.prompt_vectors.push(item),
            schema::kind::REPLY => day.reply_vectors.push(item),
            _ => {}
        }
    }
    for side in [&mut day.prompt_vectors, &mut day.reply_vectors] {
        if side.len() > max_vectors {
            let kept: Vec<Embedded> = lowest(side, max_vectors).into_iter().cloned().collect();
            *side = kept;
        }
    }
    Ok(day)
}

/// Telemetry for `days`, into `data`.
pub async fn load_telemetry(
    warehouse: &Warehouse,
    days: &BTreeSet<NaiveDate>,
    data: &mut Data,
) -> Result<(), LoadError> {
    read_parts(
        warehouse,
        warehouse.list("telemetry/").await?,
        days,
        TELEMETRY_COLUMNS,
        |df, _| telemetry_part(&df),
        &Context::default(),
        data,
    )
    .await
}

fn telemetry_part(df: &DataFrame) -> PolarsResult<DayData> {
    // Sample times and GPU utilisation pair up by position (a missing utilisation is NaN).
    let ts = df.column(schema::telemetry::TS)?.i64()?;
    let util = df.column(schema::telemetry::GPU_UTIL_PCT)?.f64()?;
    let (mut telemetry_ts, mut gpu_util) = (Vec::new(), Vec::new());
    for (t, u) in ts.iter().zip(util.iter()) {
        if let Some(t) = t {
            telemetry_ts.push(t);
            gpu_util.push(u.unwrap_or(f64::NAN));
        }
    }
    // Each interval's mean latency with its invocations, for request-weighted percentiles.
    let latency = df.column(schema::telemetry::MODEL_LATENCY_MS)?.f64()?;
    let calls = df.column(schema::telemetry::INVOCATIONS)?.f64()?;
    let (model_latency_ms, model_latency_weights): (Vec<f64>, Vec<f64>) = latency
        .iter()
        .zip(calls.iter())
        .filter_map(|(l, n)| Some((l?, n.unwrap_or(1.0))))
        .unzip();
    Ok(DayData {
        telemetry_ts,
        gpu_util,
        gpu_mem: present(df, schema::telemetry::GPU_MEM_PCT)?,
        gpus_allocated: present(df, schema::telemetry::GPUS_ALLOCATED)?,
        model_latency_ms,
        model_latency_weights,
        invocations: sum_of(df, schema::telemetry::INVOCATIONS)?,
        errors_5xx: sum_of(df, schema::telemetry::ERRORS_5XX)?,
        cost_usd: sum_of(df, schema::telemetry::COST_USD)?,
        ..DayData::default()
    })
}
