//! The ingest stage: captured prompt/response pairs into the `captures` table.
//!
//! Reads: capture objects from a source (local folder or S3 prefix: SageMaker data capture,
//! Bedrock model invocation logs and the bodies they keep in their own objects, OpenAI-format
//! request/response logs, plain records; `ingest.format`), and the ingest manifest.
//! Writes: `captures/model=<m>/date=<d>/part-<h>.parquet`, `quarantine/date=<d>/part-<h>.parquet`
//! for lines it cannot read, and the ingest manifest under `state/ingest/manifest/`
//! ([`manifest`]). With a shard (`--shard I/N`), only the objects that shard owns
//! ([`crate::shard`]); the others are counted, not read.
//! Never does: judge, aggregate or drop a line silently. Every line ends up a row, a quarantine
//! row, or an out-of-window count.
//!
//! Objects are read in parallel on blocking threads (`ingest.workers` at a time), each streamed line
//! by line; tokio drives the listing and the S3 transfers underneath.

pub mod batch;
pub mod bedrock;
pub mod decode;
pub mod features;
pub mod manifest;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, ErrorKind, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{Compression, DateRange, IngestConfig};
use crate::shard::Shard;
use crate::table::write_parquet;
use crate::util::{partition_value, sha256_hex};
use crate::warehouse::{Warehouse, WarehouseError};
use batch::{CaptureBatch, QuarantineBatch};
use decode::{LineContext, decode_line};
use manifest::{Entry, Groups, ManifestError};
use source::{ObjectRef, Source, SourceError, path_info};

/// A partition's rows are written as a part once they hold about this many bytes.
const PART_BYTES: usize = 32 << 20;
/// Attempts at reading one object when the transfer fails (not when its content is bad).
const READ_ATTEMPTS: u32 = 3;
/// The manifest is saved at least this often, so a crash re-reads little.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Compact(#[from] crate::compact::CompactError),
}

/// What to ingest. Built by the caller from config and flags.
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub source: Source,
    /// Keep only rows captured on these dates (and list only folders that can hold them).
    pub window: Option<DateRange>,
    pub settings: IngestConfig,
    /// The run's date, used for quarantine rows whose object names no date.
    pub today: NaiveDate,
    /// Parquet compression of the parts written.
    pub compression: Compression,
    /// Read only this shard's objects; `None`: all of them.
    pub shard: Option<Shard>,
}

/// An object that could not be read, after retries.
#[derive(Debug, Clone, Serialize)]
pub struct FailedObject {
    pub uri: String,
    pub error: String,
}

/// What a run of the stage did; printed as the run summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub source: String,
    pub warehouse: String,
    pub window: Option<String>,
    /// `I/N` when this ingest read one shard's objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub objects_listed: u64,
    /// Listed, but another shard's to read.
    #[serde(skip_serializing_if = "crate::util::is_zero")]
    pub objects_other_shards: u64,
    pub objects_unchanged: u64,
    pub objects_read: u64,
    pub objects_replaced: u64,
    pub objects_failed: Vec<FailedObject>,
    pub bytes_read: u64,
    pub lines: u64,
    pub rows: u64,
    pub quarantined: u64,
    pub out_of_window: u64,
    pub parts_written: u64,
    pub parts_removed: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    /// A listing error that stopped the walk early, if any.
    pub list_error: Option<String>,
}

impl IngestSummary {
    /// Lines were read and not one became a row: the source is not what the config says.
    pub fn every_line_failed(&self) -> bool {
        self.quarantined > 0 && self.rows == 0 && self.out_of_window == 0
    }

    /// Whether something needs a person: objects unread or a listing cut short.
    pub fn failed(&self) -> bool {
        !self.objects_failed.is_empty() || self.list_error.is_some() || self.every_line_failed()
    }
}

/// What reading one object produced.
struct ObjectOutcome {
    object: ObjectRef,
    window: Option<DateRange>,
    lines: u64,
    rows: u64,
    quarantined: u64,
    out_of_window: u64,
    parts: Vec<String>,
}

/// A read's result, with the manifest group of its object.
type Done = (String, Result<ObjectOutcome, FailedObject>);

/// Runs the stage.
pub async fn ingest(job: IngestJob, warehouse: &Warehouse) -> Result<IngestSummary, IngestError> {
    let started = Instant::now();
    let shard = job.shard.unwrap_or(Shard::WHOLE);
    Groups::migrate(warehouse).await?;
    crate::compact::finish_pending(warehouse).await?;
    // Partitions whose rows sit in compacted parts: a re-read object's old rows leave them.
    let compacted = crate::compact::compacted_folders(warehouse).await?;
    let mut summary = IngestSummary {
        source: job.source.root_uri(),
        warehouse: warehouse.root_uri(),
        window: job.window.map(|w| w.to_string()),
        shard: job.shard.map(|s| s.to_string()),
        ..IngestSummary::default()
    };
    // Where records name their model, a path's folders do not (Bedrock's name the region).
    let path_blind = job.settings.model_from_payload || job.settings.format.records_name_models();
    let mut groups = Groups::new(shard, &summary.source, path_blind);
    tracing::info!(
        source = %summary.source,
        warehouse = %summary.warehouse,
        window = summary.window.as_deref().unwrap_or("all dates"),
        shard = summary.shard.as_deref().unwrap_or("all"),
        "ingest: starting"
    );

    let (tx, mut rx) = mpsc::channel::<ObjectRef>(1024);
    let walker = {
        let source = job.source.clone();
        let window = job.window;
        tokio::spawn(async move { source.walk(window, tx).await })
    };

    let job = Arc::new(job);
    let handle = tokio::runtime::Handle::current();
    let workers = job.settings.workers;
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut last_checkpoint = Instant::now();
    let mut last_progress = Instant::now();

    while let Some(object) = rx.recv().await {
        summary.objects_listed += 1;
        if !shard.owns_object(&object.rel, job.settings.model_from_payload) {
            summary.objects_other_shards += 1;
            continue;
        }
        let folder = groups.enter(warehouse, &object.uri).await?;
        let previous = groups.get(&folder, &object.uri);
        if previous.is_some_and(|e| e.covers(object.size, &object.version, job.window.as_ref())) {
            summary.objects_unchanged += 1;
            continue;
        }
        // Never read an object under a narrower window than before: its old rows stay covered.
        let window = match (previous.and_then(|e| e.window), job.window) {
            (Some(old), Some(new)) => Some(old.hull(&new)),
            _ if previous.is_some_and(|e| e.window.is_none()) => None,
            (_, new) => new,
        };
        while running.len() >= workers {
            if let Some(done) = running.join_next().await {
                finish(
                    done,
                    &mut groups,
                    &mut summary,
                    warehouse,
                    (&compacted, job.compression),
                )
                .await?;
            }
        }
        groups.begin(&folder);
        let (task_job, task_handle, task_warehouse) =
            (job.clone(), handle.clone(), warehouse.clone());
        running.spawn_blocking(move || {
            let read = read_with_retries(&task_job, object, window, &task_handle, &task_warehouse);
            (folder, read)
        });

        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            groups.checkpoint(warehouse).await?;
            last_checkpoint = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                objects = summary.objects_read,
                rows = summary.rows,
                quarantined = summary.quarantined,
                "ingest: progress"
            );
            last_progress = Instant::now();
        }
    }
    while let Some(done) = running.join_next().await {
        finish(
            done,
            &mut groups,
            &mut summary,
            warehouse,
            (&compacted, job.compression),
        )
        .await?;
    }
    match walker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => summary.list_error = Some(e.to_string()),
        Err(e) => summary.list_error = Some(format!("listing task failed: {e}")),
    }
    groups.finish(warehouse).await?;
    tracing::debug!(most_open = groups.most_open, "ingest: manifest groups");

    summary.seconds = started.elapsed().as_secs_f64();
    summary.mb_per_s = if summary.seconds > 0.0 {
        summary.bytes_read as f64 / (1024.0 * 1024.0) / summary.seconds
    } else {
        0.0
    };
    Ok(summary)
}

/// Records a finished object in the manifest and the summary, and removes parts it no longer has.
async fn finish(
    done: Result<Done, tokio::task::JoinError>,
    groups: &mut Groups,
    summary: &mut IngestSummary,
    warehouse: &Warehouse,
    (compacted, compression): (&BTreeSet<String>, Compression),
) -> Result<(), IngestError> {
    let (folder, outcome) = match done {
        Ok((folder, Ok(outcome))) => (folder, outcome),
        Ok((folder, Err(failed))) => {
            tracing::error!(object = %failed.uri, error = %failed.error, "ingest: object not read");
            summary.objects_failed.push(failed);
            return Ok(groups.end(warehouse, &folder, None).await?);
        }
        Err(e) => {
            // The group stays open (its read count is not known to drop); saved at the end.
            summary.objects_failed.push(FailedObject {
                uri: "(unknown)".into(),
                error: format!("reader task failed: {e}"),
            });
            return Ok(());
        }
    };
    let uri = outcome.object.uri.clone();
    let kept: BTreeSet<&String> = outcome.parts.iter().collect();
    let mut stale_failed = false;
    if let Some(old) = groups.get(&folder, &uri) {
        summary.objects_replaced += 1;
        // Its earlier rows inside compacted parts go as its stale parts do.
        let folders: BTreeSet<String> = old
            .parts
            .iter()
            .chain(outcome.parts.iter())
            .filter_map(|p| p.rsplit_once('/').map(|(f, _)| f.to_string()))
            .filter(|f| compacted.contains(f))
            .collect();
        if !folders.is_empty()
            && let Err(e) =
                crate::compact::forget_object(warehouse, &folders, &uri, compression).await
        {
            tracing::error!(object = %uri, error = %e, "ingest: earlier rows not removed from a compacted part");
            stale_failed = true;
        }
        for part in old.parts.iter().filter(|p| !kept.contains(p)) {
            match warehouse.delete(part).await {
                Ok(()) => summary.parts_removed += 1,
                Err(e) => {
                    tracing::error!(part = %part, error = %e, "ingest: stale part not removed");
                    stale_failed = true;
                }
            }
        }
    }
    if stale_failed {
        // Leave the old entry: the next run retries the object and the removal.
        summary.objects_failed.push(FailedObject {
            uri,
            error: "re-read, but a part of its previous version could not be removed".into(),
        });
        return Ok(groups.end(warehouse, &folder, None).await?);
    }
    summary.objects_read += 1;
    summary.bytes_read += outcome.object.size;
    summary.lines += outcome.lines;
    summary.rows += outcome.rows;
    summary.quarantined += outcome.quarantined;
    summary.out_of_window += outcome.out_of_window;
    summary.parts_written += outcome.parts.len() as u64;
    tracing::debug!(object = %uri, rows = outcome.rows, quarantined = outcome.quarantined, "ingest: object read");
    let entry = Entry {
        size: outcome.object.size,
        version: outcome.object.version,
        window: outcome.window,
        lines: outcome.lines,
        rows: outcome.rows,
        quarantined: outcome.quarantined,
        out_of_window: outcome.out_of_window,
        parts: outcome.parts,
        ingested_at: Utc::now().to_rfc3339(),
    };
    Ok(groups.end(warehouse, &folder, Some((uri, entry))).await?)
}

/// Why one read of an object stopped.
enum ReadFailure {
    /// The transfer failed; another attempt may succeed.
    Transient(String),
    /// Writing to the warehouse failed.
    Warehouse(String),
}

fn read_with_retries(
    job: &IngestJob,
    object: ObjectRef,
    window: Option<DateRange>,
    handle: &tokio::runtime::Handle,
    warehouse: &Warehouse,
) -> Result<ObjectOutcome, FailedObject> {
    let mut attempt = 1;
    loop {
        match read_object(job, &object, window, handle, warehouse) {
            Ok(outcome) => return Ok(outcome),
            Err(ReadFailure::Transient(error)) if attempt < READ_ATTEMPTS => {
                tracing::warn!(object = %object.uri, attempt, error = %error, "ingest: read failed, retrying");
                std::thread::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1)));
                attempt += 1;
            }
            Err(ReadFailure::Transient(error) | ReadFailure::Warehouse(error)) => {
                return Err(FailedObject {
                    uri: object.uri,
                    error,
                });
            }
        }
    }
}

/// Reads one object end to end: lines -> rows or quarantine -> Parquet parts.
fn read_object(
    job: &IngestJob,
    object: &ObjectRef,
    window: Option<DateRange>,
    handle: &tokio::runtime::Handle,
    warehouse: &Warehouse,
) -> Result<ObjectOutcome, ReadFailure> {
    let mut reader = job
        .source
        .open_blocking(object, handle)
        .map_err(|e| ReadFailure::Transient(e.to_string()))?;
    let info = path_info(&object.rel);
    let ctx = LineContext {
        source_uri: &object.uri,
        path_endpoint: info.endpoint.as_deref(),
        path_component: info.component.as_deref(),
        default_model: job.settings.default_model.as_deref(),
        model_from_payload: job.settings.model_from_payload,
        format: job.settings.format,
        model_names: Some(&job.settings.model_names),
    };
    let keep = job.settings.quarantine_raw_bytes;
    let mut writer = PartWriter {
        object,
        warehouse,
        handle,
        parts: Vec::new(),
        seq: 0,
        compression: job.compression,
    };
    let mut open: BTreeMap<(String, NaiveDate), CaptureBatch> = BTreeMap::new();
    let mut quarantine = QuarantineBatch::default();
    let (mut lines, mut rows, mut out_of_window) = (0u64, 0u64, 0u64);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let cap = job.settings.max_line_bytes;
        match (&mut reader)
            .take(cap as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => break,
            Ok(_) if buf.len() > cap && buf.last() != Some(&b'\n') => {
                // Longer than the cap: quarantined, the rest of it skipped unread into memory.
                lines += 1;
                let skipped = reader.skip_until(b'\n').unwrap_or(0);
                quarantine.push(
                    lines,
                    format!(
                        "the line is longer than {cap} bytes ({} bytes; ingest.max-line-bytes)",
                        buf.len() + skipped
                    ),
                    &buf,
                    keep,
                );
                continue;
            }
            Ok(_) => {}
            Err(e) if is_damaged_content(&e) => {
                // A truncated or corrupt gzip: keep what was read, quarantine the rest as one entry.
                quarantine.push(
                    lines + 1,
                    format!(
                        "the object is damaged after line {lines}: {e}; the rest is unreadable"
                    ),
                    &buf,
                    keep,
                );
                break;
            }
            Err(e) => {
                return Err(ReadFailure::Transient(format!(
                    "read failed after line {lines}: {e}"
                )));
            }
        }
        let line = trim_newline(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                quarantine.push(lines, format!("not UTF-8: {e}"), line, keep);
                continue;
            }
        };
        let decoded = match bedrock::body_paths(text) {
            // Bedrock kept a body in its own object: read it, then decode.
            Some((input, output)) => {
                let mut bodies = bedrock::Bodies::default();
                let mut failed = None;
                for (path, slot) in [(input, &mut bodies.input), (output, &mut bodies.output)] {
                    let Some(path) = path else { continue };
                    match job.source.read_body(&path, handle) {
                        Ok(bytes) => match bedrock::parse_body(&bytes) {
                            Ok(body) => *slot = Some(body),
                            Err(e) => failed = Some(format!("the body in `{path}` is {e}")),
                        },
                        Err(source::BodyError::Unreadable(reason)) => failed = Some(reason),
                        Err(source::BodyError::Transient(e)) => {
                            return Err(ReadFailure::Transient(e));
                        }
                    }
                }
                match failed {
                    Some(reason) => Err(reason),
                    None => bedrock::decode(text, &ctx, bodies),
                }
            }
            None => decode_line(text, lines, &ctx),
        };
        match decoded {
            Ok(capture) => {
                let date = DateTime::from_timestamp_micros(capture.captured_at_us)
                    .map_or(job.today, |t| t.date_naive());
                if window.is_some_and(|w| !w.contains(date)) {
                    out_of_window += 1;
                    continue;
                }
                rows += 1;
                let key = (capture.model.clone(), date);
                let batch = open.entry(key.clone()).or_default();
                batch.push(capture, lines);
                if batch.bytes >= PART_BYTES {
                    let full = std::mem::take(batch);
                    writer.write_captures(&key.0, key.1, full)?;
                }
            }
            Err(error) => quarantine.push(lines, error, line, keep),
        }
    }
    for ((model, date), batch) in open {
        if !batch.is_empty() {
            writer.write_captures(&model, date, batch)?;
        }
    }
    let quarantined = quarantine.len() as u64;
    if !quarantine.is_empty() {
        let date = info.date.unwrap_or(job.today);
        writer.write_quarantine(date, quarantine)?;
    }
    Ok(ObjectOutcome {
        object: object.clone(),
        window,
        lines,
        rows,
        quarantined,
        out_of_window,
        parts: writer.parts,
    })
}

fn trim_newline(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &buf[..end]
}

/// Errors that mean the bytes are bad (gzip truncated or corrupt), not that the transfer failed.
fn is_damaged_content(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::InvalidInput | ErrorKind::InvalidData
    )
}

/// Writes an object's parts under names derived from its URI, so a re-read overwrites them.
struct PartWriter<'a> {
    object: &'a ObjectRef,
    warehouse: &'a Warehouse,
    handle: &'a tokio::runtime::Handle,
    parts: Vec<String>,
    seq: u32,
    compression: Compression,
}

impl PartWriter<'_> {
    fn part_name(&mut self) -> String {
        let name = sha256_hex(format!("{}\0{}", self.object.uri, self.seq).as_bytes());
        self.seq += 1;
        format!("part-{}.parquet", &name[..16])
    }

    /// Encodes `frame` as Parquet and writes it as the next part under `folder`.
    fn put(
        &mut self,
        folder: String,
        frame: polars::error::PolarsResult<polars::frame::DataFrame>,
    ) -> Result<(), ReadFailure> {
        let encode = |e: polars::error::PolarsError| {
            ReadFailure::Warehouse(format!("cannot encode `{folder}` as Parquet: {e}"))
        };
        let bytes = write_parquet(&mut frame.map_err(encode)?, self.compression).map_err(encode)?;
        let key = format!("{folder}/{}", self.part_name());
        self.handle
            .block_on(self.warehouse.put(&key, bytes))
            .map_err(|e| ReadFailure::Warehouse(e.to_string()))?;
        self.parts.push(key);
        Ok(())
    }

    fn write_captures(
        &mut self,
        model: &str,
        date: NaiveDate,
        batch: CaptureBatch,
    ) -> Result<(), ReadFailure> {
        let folder = format!("captures/model={}/date={date}", partition_value(model));
        self.put(folder, batch.into_frame(&self.object.uri))
    }

    fn write_quarantine(
        &mut self,
        date: NaiveDate,
        batch: QuarantineBatch,
    ) -> Result<(), ReadFailure> {
        self.put(
            format!("quarantine/date={date}"),
            batch.into_frame(&self.object.uri),
        )
    }
}
