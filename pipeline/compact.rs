//! `evalwatch compact`: a `captures` partition's small parts (one per capture object, so a
//! fleet's night can leave thousands) merged into one, without any evalwatch reader ever seeing a
//! capture twice or not at all, and with re-ingest of a changed object still replacing its rows.
//!
//! Reads: the partition's parts, and the compaction records. Writes: `compact-<h>.parquet` in the
//! partition, and its record `state/compactions/<partition folder>.json`. Never does: change a
//! row, or touch `scores/` (score parts are one per judge and partition already).
//!
//! The protocol, for a partition with small visible parts S:
//! 1. write the merged part C (readers ignore a `compact-*` part no record names);
//! 2. write the record: `parts` (the committed compacted parts, now with C and without S) and
//!    `replaces` S (readers skip them from here on);
//! 3. delete S, then write the record with `replaces` empty.
//!
//! A crash after 1 leaves an ignored C (overwritten by the next compaction of the same S); after
//! 2, parts that readers skip: [`finish_pending`] (at the start of `compact` and `ingest`)
//! deletes them and clears `replaces`, so an object re-read later may write parts of those names
//! again. Readers of `captures` take [`visible`] of their listing. Plain Parquet readers
//! (polars, DuckDB, Athena) see the folder as it is: both S and C only in the moment between
//! steps 1 and 3.
//!
//! Re-ingest: when ingest re-reads an object, [`forget_object`] rewrites each compacted part of
//! the partitions the object had rows in without that object's rows (by `source_uri`), after its
//! new parts are written, as ingest deletes an object's stale parts today.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Compression, DateRange};
use crate::schema;
use crate::table::write_parquet;
use crate::util::{partition_value, sha256_hex};
use crate::warehouse::{Warehouse, WarehouseError};

const RECORDS: &str = "state/compactions";
const PREFIX: &str = "compact-";

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(
        "the compaction record `{uri}` is damaged: {message}; move it aside and delete the `compact-*` parts it names to start over"
    )]
    Damaged { uri: String, message: String },
    #[error("cannot merge the parts of `{partition}`: {message}")]
    Merge { partition: String, message: String },
}

/// What the warehouse records of a partition's compactions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The committed compacted parts of the partition (keys).
    pub parts: Vec<String>,
    /// Parts merged into one of `parts` and not deleted yet: readers skip them.
    pub replaces: Vec<String>,
}

fn record_key(folder: &str) -> String {
    format!("{RECORDS}/{folder}.json")
}

fn folder_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(folder, _)| folder)
}

fn is_compacted(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(PREFIX))
}

async fn read_record(warehouse: &Warehouse, folder: &str) -> Result<Option<Record>, CompactError> {
    let key = record_key(folder);
    match warehouse.get(&key).await? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| CompactError::Damaged {
                    uri: warehouse.uri(&key),
                    message: e.to_string(),
                })
        }
    }
}

async fn write_record(
    warehouse: &Warehouse,
    folder: &str,
    record: &Record,
) -> Result<(), CompactError> {
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    warehouse.put(&record_key(folder), bytes).await?;
    Ok(())
}

/// Every partition's record, by partition folder.
async fn records(
    warehouse: &Warehouse,
    table: &str,
) -> Result<BTreeMap<String, Record>, CompactError> {
    let mut out = BTreeMap::new();
    for key in warehouse.list(&format!("{RECORDS}/{table}/")).await? {
        let Some(folder) = key
            .strip_prefix(&format!("{RECORDS}/"))
            .and_then(|k| k.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some(record) = read_record(warehouse, folder).await? {
            out.insert(folder.to_string(), record);
        }
    }
    Ok(out)
}

/// The parts of a `captures` listing a reader reads: without the parts a committed compaction
/// replaced, and without compacted parts no record names. Keeps the order of `keys`.
pub async fn visible(
    warehouse: &Warehouse,
    keys: Vec<String>,
) -> Result<Vec<String>, CompactError> {
    let records = records(warehouse, schema::captures::TABLE).await?;
    Ok(keys
        .into_iter()
        .filter(|key| match records.get(folder_of(key)) {
            Some(record) if is_compacted(key) => record.parts.contains(key),
            Some(record) => !record.replaces.contains(key),
            None => !is_compacted(key),
        })
        .collect())
}

/// The `captures` parts a reader reads ([`visible`] of the table's listing).
pub async fn captures(warehouse: &Warehouse) -> Result<Vec<String>, CompactError> {
    let keys = warehouse
        .list(&format!("{}/", schema::captures::TABLE))
        .await?;
    visible(warehouse, keys).await
}

/// The `captures` partition folders with compacted parts (for ingest's re-reads).
pub async fn compacted_folders(warehouse: &Warehouse) -> Result<BTreeSet<String>, CompactError> {
    Ok(records(warehouse, schema::captures::TABLE)
        .await?
        .into_iter()
        .filter(|(_, r)| !r.parts.is_empty())
        .map(|(folder, _)| folder)
        .collect())
}

/// Finishes compactions a crash interrupted after their record: deletes the parts they replaced
/// and clears `replaces`. Returns how many it finished.
pub async fn finish_pending(warehouse: &Warehouse) -> Result<u64, CompactError> {
    let mut finished = 0;
    for (folder, mut record) in records(warehouse, schema::captures::TABLE).await? {
        if record.replaces.is_empty() {
            continue;
        }
        for key in &record.replaces {
            warehouse.delete(key).await?;
        }
        record.replaces.clear();
        write_record(warehouse, &folder, &record).await?;
        finished += 1;
    }
    if finished > 0 {
        tracing::info!(
            partitions = finished,
            "compact: finished interrupted compactions"
        );
    }
    Ok(finished)
}

/// Removes `uri`'s rows from the compacted parts of `folders` (the partitions it had rows in),
/// when it is read again. Returns how many parts were rewritten.
pub async fn forget_object(
    warehouse: &Warehouse,
    folders: &BTreeSet<String>,
    uri: &str,
    compression: Compression,
) -> Result<u64, CompactError> {
    let mut rewritten = 0;
    for folder in folders {
        let Some(record) = read_record(warehouse, folder).await? else {
            continue;
        };
        for part in &record.parts {
            let Some(bytes) = warehouse.get(part).await? else {
                continue;
            };
            let merge = |e: PolarsError| CompactError::Merge {
                partition: folder.clone(),
                message: e.to_string(),
            };
            let df = ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .map_err(merge)?;
            let keep = df
                .column(schema::captures::SOURCE_URI)
                .and_then(|c| c.str().cloned())
                .map_err(merge)?
                .not_equal(uri);
            if keep.all() {
                continue;
            }
            let mut kept = df.filter(&keep).map_err(merge)?;
            let bytes = write_parquet(&mut kept, compression).map_err(merge)?;
            warehouse.put(part, bytes).await?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactJob {
    /// Partitions of these dates; `None`: every date.
    pub window: Option<DateRange>,
    /// Only this model's partitions.
    pub model: Option<String>,
    /// Parts at least this big are left as they are.
    pub max_part_bytes: u64,
    pub compression: Compression,
}

/// What `compact` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactSummary {
    pub partitions: u64,
    pub partitions_compacted: u64,
    pub parts_merged: u64,
    pub parts_written: u64,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Compactions a crash had interrupted, finished first.
    pub finished_pending: u64,
    pub seconds: f64,
}

/// Runs `compact` over the `captures` partitions the job names.
pub async fn compact(
    job: CompactJob,
    warehouse: &Warehouse,
) -> Result<CompactSummary, CompactError> {
    let started = std::time::Instant::now();
    let mut summary = CompactSummary {
        finished_pending: finish_pending(warehouse).await?,
        ..CompactSummary::default()
    };
    let keys = warehouse
        .list(&format!("{}/", schema::captures::TABLE))
        .await?;
    let keys = visible(warehouse, keys).await?;
    let wanted_model = job.model.as_deref().map(partition_value);
    let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys.into_iter().filter(|k| k.ends_with(".parquet")) {
        let Some(part) = crate::table::PartKey::parse(&key) else {
            continue;
        };
        let date_ok = part
            .date()
            .is_some_and(|d: NaiveDate| job.window.is_none_or(|w| w.contains(d)));
        let model_ok = wanted_model
            .as_deref()
            .is_none_or(|m| part.value("model") == Some(m));
        if date_ok && model_ok {
            partitions
                .entry(folder_of(&key).to_string())
                .or_default()
                .push(key);
        }
    }
    summary.partitions = partitions.len() as u64;
    for (folder, parts) in partitions {
        compact_partition(&job, warehouse, &folder, parts, &mut summary).await?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

async fn compact_partition(
    job: &CompactJob,
    warehouse: &Warehouse,
    folder: &str,
    parts: Vec<String>,
    summary: &mut CompactSummary,
) -> Result<(), CompactError> {
    let merge = |e: PolarsError| CompactError::Merge {
        partition: folder.to_string(),
        message: e.to_string(),
    };
    let mut small = Vec::new();
    let mut frames = Vec::new();
    let mut bytes_before = 0;
    for key in parts {
        let Some(bytes) = warehouse.get(&key).await? else {
            continue;
        };
        if bytes.len() as u64 >= job.max_part_bytes {
            continue;
        }
        bytes_before += bytes.len() as u64;
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .map_err(merge)?;
        frames.push(df);
        small.push(key);
    }
    if small.len() < 2 {
        return Ok(());
    }
    let mut merged = concat_diagonal(frames).map_err(merge)?;
    let bytes = write_parquet(&mut merged, job.compression).map_err(merge)?;
    let mut names = small.clone();
    names.sort();
    let part = format!(
        "{folder}/{PREFIX}{}.parquet",
        &sha256_hex(names.join("\0").as_bytes())[..16]
    );
    summary.bytes_after += bytes.len() as u64;
    warehouse.put(&part, bytes).await?;

    let mut record = read_record(warehouse, folder).await?.unwrap_or_default();
    record.parts.retain(|p| !small.contains(p));
    record.parts.push(part);
    record.replaces = small.clone();
    write_record(warehouse, folder, &record).await?;
    for key in &small {
        warehouse.delete(key).await?;
    }
    record.replaces.clear();
    write_record(warehouse, folder, &record).await?;

    summary.partitions_compacted += 1;
    summary.parts_merged += small.len() as u64;
    summary.parts_written += 1;
    summary.rows += merged.height() as u64;
    summary.bytes_before += bytes_before;
    tracing::debug!(
        partition = folder,
        parts = small.len(),
        rows = merged.height(),
        "compact: merged"
    );
    Ok(())
}

/// The frames one under the other. Parts written by different versions may differ in columns:
/// the union, in order of first appearance, with nulls where a part lacks one.
fn concat_diagonal(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut columns: Vec<(PlSmallStr, DataType)> = Vec::new();
    for df in &frames {
        for column in df.columns() {
            if !columns.iter().any(|(name, _)| name == column.name()) {
                columns.push((column.name().clone(), column.dtype().clone()));
            }
        }
    }
    let mut merged: Option<DataFrame> = None;
    for df in frames {
        let height = df.height();
        let aligned: Vec<Column> = columns
            .iter()
            .map(|(name, dtype)| match df.column(name) {
                Ok(c) => c.cast(dtype),
                Err(_) => Ok(Column::full_null(name.clone(), height, dtype)),
            })
            .collect::<PolarsResult<_>>()?;
        let aligned = DataFrame::new(height, aligned)?;
        match merged.as_mut() {
            None => merged = Some(aligned),
            Some(all) => {
                all.vstack_mut(&aligned)?;
            }
        }
    }
    let mut merged = merged.unwrap_or_default();
    merged.rechunk_mut();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(folder: &str, name: &str) -> String {
        format!("{folder}/{name}")
    }

    #[tokio::test]
    async fn readers_see_each_row_once_at_every_step_of_a_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::Local {
            root: dir.path().to_path_buf(),
        };
        let folder = "captures/model=a/date=2026-10-01";
        let originals = vec![
            key(folder, "part-aaa.parquet"),
            key(folder, "part-bbb.parquet"),
        ];
        let compacted = key(folder, "compact-0123456789abcdef.parquet");
        let all = || {
            let mut keys = originals.clone();
            keys.push(compacted.clone());
            keys
        };
        // Step 1 done: the merged part is there, no record names it.
        assert_eq!(visible(&warehouse, all()).await.unwrap(), originals);
        // Step 2 done: the record names it and what it replaces.
        let record = Record {
            parts: vec![compacted.clone()],
            replaces: originals.clone(),
        };
        write_record(&warehouse, folder, &record).await.unwrap();
        assert_eq!(
            visible(&warehouse, all()).await.unwrap(),
            vec![compacted.clone()]
        );
        // A crash here: the next compact or ingest deletes the replaced parts and clears the list.
        for key in &originals {
            warehouse.put(key, b"x".to_vec()).await.unwrap();
        }
        assert_eq!(finish_pending(&warehouse).await.unwrap(), 1);
        for key in &originals {
            assert!(warehouse.get(key).await.unwrap().is_none(), "{key}");
        }
        let cleared = read_record(&warehouse, folder).await.unwrap().unwrap();
        assert!(cleared.replaces.is_empty());
        // An object read again writes a part of an old name: visible again beside the merge.
        let again = vec![originals[0].clone(), compacted.clone()];
        assert_eq!(visible(&warehouse, again.clone()).await.unwrap(), again);
        // Other partitions are not affected.
        let other = vec![key("captures/model=b/date=2026-10-01", "part-ccc.parquet")];
        assert_eq!(visible(&warehouse, other.clone()).await.unwrap(), other);
    }
}
