//! The embed stage: the prompts (their last user turn) and replies of a window's sampled
//! captures as vectors, for embedding drift and topics in the analyse stage.
//!
//! Reads: `captures/model=<m>/date=<d>/` partitions of the window (the rows the score stage
//! samples, [`crate::score::sample`]); the partition's own `embeddings` part, as a cache by
//! text hash; the model folder.
//! Writes: `embeddings/model=<m>/date=<d>/part-<embedder>.parquet`, one row per sampled capture
//! and kind (`prompt`, `reply`), replaced whole when the partition's sample changed, left alone
//! when it did not.
//! Never does: fail the run for a model it does not have. Without the model (and with no way to
//! fetch it) the stage is skipped with one line saying how to enable it; every other stage runs
//! as before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use polars::prelude::*;
use serde::Serialize;

use super::embedder::{EmbedError, Embedder};
use super::model::{self, EMBEDDER_ID};
use super::settings::{EMBED_VAR, EmbedSettings};
use crate::config::{Compression, DateRange, Sampling};
use crate::schema::{self, embeddings as col};
use crate::score::{Capture, capture_partitions, read_partition, sample};
use crate::table::{read_key, text_constant, utc_micros, write_parquet};
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum EmbedStageError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error(transparent)]
    Compact(#[from] crate::compact::CompactError),
    #[error(transparent)]
    Captures(#[from] crate::score::ScoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("cannot write embeddings for `{partition}`: {message}")]
    Write { partition: String, message: String },
    #[error("cannot read `{key}`: {message}")]
    Read { key: String, message: String },
}

/// What to embed.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    pub settings: EmbedSettings,
    pub sampling: Sampling,
    /// Capture dates; `None`: every date.
    pub window: Option<DateRange>,
    pub model: Option<String>,
    pub shard: Option<crate::shard::Shard>,
    pub compression: Compression,
}

impl EmbedJob {
    /// The job the config describes for `window`.
    pub fn from_config(config: &crate::config::Config, window: Option<DateRange>) -> EmbedJob {
        EmbedJob {
            settings: config.embed.clone(),
            sampling: config.sampling,
            window,
            model: None,
            shard: None,
            compression: config.compression,
        }
    }
}

/// What the stage did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbedSummary {
    pub embedder: String,
    /// Why nothing was embedded, and how to enable it; `None` when the stage ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The model was downloaded by this run.
    pub fetched: bool,
    pub model_dir: String,
    pub partitions: u64,
    pub partitions_written: u64,
    /// Rows of the written and unchanged parts (sampled captures x 2).
    pub rows: u64,
    /// Texts run through the model this time (distinct per partition).
    pub embedded: u64,
    /// Texts found in the partition's part already.
    pub cached: u64,
    pub texts_per_s: f64,
    pub seconds: f64,
}

/// The part of `embeddings` a partition's rows go to.
pub fn part_key(model_segment: &str, date: chrono::NaiveDate) -> String {
    format!(
        "{}/model={model_segment}/date={date}/part-{}.parquet",
        col::TABLE,
        &sha256_hex(EMBEDDER_ID.as_bytes())[..16]
    )
}

/// The cache key of a text of a kind.
fn text_hash(kind: &str, text: &str) -> String {
    let mut bytes = Vec::with_capacity(kind.len() + 1 + text.len());
    bytes.extend_from_slice(kind.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(text.as_bytes());
    sha256_hex(&bytes)
}

/// The model, loaded; or why the stage is skipped.
async fn load_model(settings: &EmbedSettings, summary: &mut EmbedSummary) -> Option<Embedder> {
    let dir = &settings.model_dir;
    if !settings.enabled {
        summary.skipped = Some(format!(
            "embed: skipped (off: `[embed] enabled = false` or {EMBED_VAR}=off); topics and \
             embedding drift need it on"
        ));
        return None;
    }
    if !model::present(dir) {
        if !settings.fetch {
            summary.skipped = Some(format!(
                "embed: skipped, no model in `{}` and `[embed] fetch = false`; run `evalwatch \
                 models fetch`, or copy the model's files there (`[embed] model-path`)",
                dir.display()
            ));
            return None;
        }
        tracing::info!(dir = %dir.display(), "embed: the model is not there yet; fetching it once");
        match model::fetch(&settings.index_url, dir).await {
            Ok(_) => summary.fetched = true,
            Err(e) => {
                summary.skipped = Some(format!(
                    "embed: skipped, no model in `{}` and it could not be fetched ({e}); run \
                     `evalwatch models fetch` where the index can be reached, or copy the \
                     model's files there (`[embed] model-path`); `[embed] enabled = false` \
                     silences this",
                    dir.display()
                ));
                return None;
            }
        }
    }
    let dir = dir.clone();
    match tokio::task::spawn_blocking(move || Embedder::load(&dir)).await {
        Ok(Ok(embedder)) => Some(embedder),
        Ok(Err(e)) => {
            summary.skipped = Some(format!(
                "embed: skipped, the model cannot be used: {e}; `evalwatch models fetch` \
                 replaces it"
            ));
            None
        }
        Err(e) => {
            summary.skipped = Some(format!("embed: skipped, loading the model failed: {e}"));
            None
        }
    }
}

/// One row of a part.
struct Row {
    request_id: String,
    captured_at: i64,
    kind: &'static str,
    text_hash: String,
    vector: Arc<Vec<f32>>,
}

/// Runs the stage.
pub async fn embed(job: EmbedJob, warehouse: &Warehouse) -> Result<EmbedSummary, EmbedStageError> {
    let started = Instant::now();
    let mut summary = EmbedSummary {
        embedder: EMBEDDER_ID.to_string(),
        model_dir: job.settings.model_dir.display().to_string(),
        ..EmbedSummary::default()
    };
    let Some(embedder) = load_model(&job.settings, &mut summary).await else {
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    };
    let embedder = Arc::new(embedder);
    let keys = crate::compact::captures(warehouse).await?;
    let partitions = capture_partitions(&keys, job.window, job.model.as_deref(), job.shard);
    let mut model_seconds = 0.0;
    for partition in partitions {
        summary.partitions += 1;
        let captures = sample(read_partition(warehouse, &partition).await?, &job.sampling);
        let done = embed_partition(
            warehouse,
            &embedder,
            (&partition.model_segment, partition.date),
            &captures,
            Some(job.compression),
        )
        .await?;
        summary.cached += done.cached;
        summary.embedded += done.embedded;
        summary.rows += 2 * captures.len() as u64;
        summary.partitions_written += u64::from(done.written);
        model_seconds += done.model_seconds;
    }
    summary.texts_per_s = if model_seconds > 0.0 {
        summary.embedded as f64 / model_seconds
    } else {
        0.0
    };
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What embedding a partition's sampled captures did.
pub struct Embedded {
    /// Per capture, in order: its prompt's (last turn's) vector and its reply's.
    pub vectors: Vec<super::Pair>,
    /// Texts run through the model, and texts found in the partition's part.
    pub embedded: u64,
    pub cached: u64,
    /// Whether the part was (re)written.
    pub written: bool,
    pub model_seconds: f64,
}

/// Embeds a partition's sampled `captures` (model segment, date), reading the vectors its part
/// holds already by text hash, and writes the part when it changed and `write` gives the
/// compression (the `embed` stage, and `offline:2` in the score stage, which leaves the stage
/// nothing to do).
pub async fn embed_partition(
    warehouse: &Warehouse,
    embedder: &Arc<Embedder>,
    (model_segment, date): (&str, chrono::NaiveDate),
    captures: &[Capture],
    write: Option<Compression>,
) -> Result<Embedded, EmbedStageError> {
    let key = part_key(model_segment, date);
    let cached = read_cached(warehouse, &key).await?;
    let known = &cached.vectors;
    let (rows, todo) = plan_rows(captures, known);
    let mut done = Embedded {
        vectors: Vec::with_capacity(captures.len()),
        embedded: 0,
        cached: (rows.len() - todo.len()) as u64,
        written: false,
        model_seconds: 0.0,
    };
    let mut fresh: HashMap<String, Arc<Vec<f32>>> = HashMap::new();
    if !todo.is_empty() {
        let clock = Instant::now();
        let texts: Vec<String> = todo.iter().map(|(_, t)| t.clone()).collect();
        let model = embedder.clone();
        let vectors = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs)
        })
        .await
        .map_err(|e| EmbedError::Run(e.to_string()))??;
        done.model_seconds = clock.elapsed().as_secs_f64();
        done.embedded = vectors.len() as u64;
        for ((hash, _), vector) in todo.into_iter().zip(vectors) {
            fresh.insert(hash, Arc::new(vector));
        }
    }
    let mut rows_out: Vec<Row> = Vec::with_capacity(rows.len());
    for (capture, kind, hash) in rows {
        let vector = fresh
            .get(&hash)
            .or_else(|| known.get(&hash))
            .cloned()
            .ok_or_else(|| EmbedError::Run(format!("no vector came back for `{hash}`")))?;
        rows_out.push(Row {
            request_id: capture.request_id.clone(),
            captured_at: capture.captured_at,
            kind,
            text_hash: hash,
            vector,
        });
    }
    done.vectors = rows_out
        .chunks(2)
        .map(|pair| (pair[0].vector.clone(), pair[1].vector.clone()))
        .collect();
    let Some(compression) = write else {
        return Ok(done);
    };
    // Unchanged: the same rows as the part holds.
    if fresh.is_empty() {
        let mut now: Vec<(String, String)> = rows_out
            .iter()
            .map(|r| (r.request_id.clone(), r.text_hash.clone()))
            .collect();
        now.sort();
        if now == cached.rows {
            return Ok(done);
        }
    }
    let failed = |e: PolarsError| EmbedStageError::Write {
        partition: key.clone(),
        message: e.to_string(),
    };
    let mut df = frame(&rows_out).map_err(&failed)?;
    let bytes = write_parquet(&mut df, compression).map_err(failed)?;
    warehouse.put(&key, bytes).await?;
    done.written = true;
    Ok(done)
}

/// A row to write: the capture, its kind, its text's hash.
type Planned<'a> = (&'a Capture, &'static str, String);

/// The rows a partition's sampled captures make, and the distinct texts (hash, text) not in
/// `known` that need the model.
fn plan_rows<'a>(
    captures: &'a [Capture],
    known: &HashMap<String, Arc<Vec<f32>>>,
) -> (Vec<Planned<'a>>, Vec<(String, String)>) {
    let mut rows = Vec::with_capacity(captures.len() * 2);
    let mut todo: Vec<(String, String)> = Vec::new();
    let mut queued = std::collections::HashSet::new();
    for capture in captures {
        for (kind, text) in [
            (schema::kind::PROMPT, super::last_turn(&capture.prompt)),
            (schema::kind::REPLY, capture.response.clone()),
        ] {
            let hash = text_hash(kind, &text);
            if !known.contains_key(&hash) && queued.insert(hash.clone()) {
                todo.push((hash.clone(), text));
            }
            rows.push((capture, kind, hash));
        }
    }
    (rows, todo)
}

/// What a partition's part holds: vectors by text hash, and its (request id, text hash) rows
/// sorted (empty when there is no part).
#[derive(Default)]
struct Cached {
    vectors: HashMap<String, Arc<Vec<f32>>>,
    rows: Vec<(String, String)>,
}

async fn read_cached(warehouse: &Warehouse, key: &str) -> Result<Cached, EmbedStageError> {
    let Some(df) = read_key(warehouse, key, &columns()[..4]).await? else {
        return Ok(Cached::default());
    };
    let read = |e: PolarsError| EmbedStageError::Read {
        key: key.to_string(),
        message: e.to_string(),
    };
    let text = |name: &str| -> Result<Vec<String>, EmbedStageError> {
        Ok(df
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(read)?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let (ids, hashes) = (text(col::REQUEST_ID)?, text(col::TEXT_HASH)?);
    let vectors = vectors_of(&df).map_err(read)?;
    let mut rows: Vec<(String, String)> = ids.into_iter().zip(hashes.iter().cloned()).collect();
    rows.sort();
    Ok(Cached {
        vectors: hashes
            .into_iter()
            .zip(vectors)
            .filter_map(|(h, v)| Some((h, Arc::new(v?))))
            .collect(),
        rows,
    })
}

/// The columns readers ask for, with their types (request id, captured at, text hash, vector,
/// kind).
pub fn columns() -> [(&'static str, DataType); 5] {
    [
        (col::REQUEST_ID, DataType::String),
        (col::KIND, DataType::String),
        (col::TEXT_HASH, DataType::String),
        (col::VECTOR, DataType::List(Box::new(DataType::Float32))),
        (
            col::CAPTURED_AT,
            DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        ),
    ]
}

/// The `vector` column as plain vectors (`None` for a null).
pub fn vectors_of(df: &DataFrame) -> PolarsResult<Vec<Option<Vec<f32>>>> {
    let list = df.column(col::VECTOR)?.list()?;
    list.amortized_iter()
        .map(|v| {
            v.map(|s| -> PolarsResult<Vec<f32>> {
                Ok(s.as_ref().f32()?.iter().map(|x| x.unwrap_or(0.0)).collect())
            })
            .transpose()
        })
        .collect()
}

fn frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let vectors: ListChunked = rows
        .iter()
        .map(|r| Some(Series::new(PlSmallStr::EMPTY, r.vector.as_slice())))
        .collect();
    let columns = vec![
        Column::new(
            col::REQUEST_ID.into(),
            rows.iter()
                .map(|r| r.request_id.as_str())
                .collect::<Vec<_>>(),
        ),
        utc_micros(
            col::CAPTURED_AT,
            rows.iter().map(|r| r.captured_at).collect(),
        ),
        Column::new(
            col::KIND.into(),
            rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        ),
        Column::new(
            col::TEXT_HASH.into(),
            rows.iter()
                .map(|r| r.text_hash.as_str())
                .collect::<Vec<_>>(),
        ),
        vectors.into_series().with_name(col::VECTOR.into()).into(),
        text_constant(col::EMBEDDER, EMBEDDER_ID, height),
        utc_micros(
            col::EMBEDDED_AT,
            vec![Utc::now().timestamp_micros(); height],
        ),
    ];
    DataFrame::new(height, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_has_the_schema_columns_in_order() {
        let rows = vec![Row {
            request_id: "r1".into(),
            captured_at: 1,
            kind: schema::kind::PROMPT,
            text_hash: text_hash("prompt", "hello"),
            vector: Arc::new(vec![0.5, -0.5]),
        }];
        let df = frame(&rows).unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, col::COLUMNS);
        assert_eq!(vectors_of(&df).unwrap(), vec![Some(vec![0.5, -0.5])]);
    }

    #[test]
    fn the_same_text_is_embedded_once_and_kinds_differ() {
        let capture = |id: &str, prompt: &str| Capture {
            request_id: id.into(),
            content_hash: String::new(),
            captured_at: 0,
            prompt: prompt.into(),
            response: "same reply".into(),
        };
        let captures = vec![
            capture("a", "hi"),
            capture("b", "hi"),
            capture("c", "other"),
        ];
        let (rows, todo) = plan_rows(&captures, &HashMap::new());
        assert_eq!(rows.len(), 6);
        // "hi", "same reply", "other".
        assert_eq!(todo.len(), 3);
        assert_ne!(text_hash("prompt", "x"), text_hash("reply", "x"));
        let known: HashMap<String, Arc<Vec<f32>>> = todo
            .iter()
            .map(|(h, _)| (h.clone(), Arc::new(vec![1.0])))
            .collect();
        assert!(plan_rows(&captures, &known).1.is_empty());
    }
}
