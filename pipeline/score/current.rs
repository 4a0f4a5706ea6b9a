//! Which score rows are current: **one capture, one rubric version, one judge id -> one current
//! judgment.** The rule is kept here, by the writer and for every reader (analyse, publish,
//! report, compare).
//!
//! - A rubric version has one content hash. [`check_rubric`] refuses to score a rubric whose hash
//!   differs from the one the warehouse recorded for its `id@version`
//!   (`state/rubrics/<id>@<version>.json`, or the `rubric_hash` of the version's earlier parts).
//! - A judge id has one part per (rubric version, model, date): [`part_key`] names it from the
//!   judge id alone, so scoring a day again with other judge parameters (max output tokens, the
//!   protocol version) writes over the older generation instead of beside it. A capture the newer
//!   generation did not judge yet (left by `--limit`) keeps its older rows in the new part, so
//!   every capture has exactly one judgment.
//! - Parts written before this rule were named from (rubric hash, judge id, params hash), so a
//!   folder can hold several generations of one judge. Readers take [`current_parts`]: the part
//!   named for the judge when there is one, otherwise the newest (by `scored_at`) of the parts
//!   with the judge's rows. The writer deletes those older parts once its own is written.

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rubric::{Rubric, RubricError};
use crate::schema;
use crate::table::{PartError, read_key};
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

/// The folder of one (rubric version, model, date) of the scores table.
pub fn folder(rubric_key: &str, model_segment: &str, date: NaiveDate) -> String {
    format!("scores/rubric={rubric_key}/model={model_segment}/date={date}")
}

/// The file name of `judge`'s part in a scores folder.
pub fn part_name(judge: &str) -> String {
    format!("part-{}.parquet", &sha256_hex(judge.as_bytes())[..16])
}

/// The key of `judge`'s part of one (rubric version, model, date).
pub fn part_key(rubric_key: &str, model_segment: &str, date: NaiveDate, judge: &str) -> String {
    format!(
        "{}/{}",
        folder(rubric_key, model_segment, date),
        part_name(judge)
    )
}

fn folder_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(folder, _)| folder)
}

/// When `key`'s part was written, if it holds rows of `judge`.
async fn generation(
    warehouse: &Warehouse,
    key: &str,
    judge: &str,
) -> Result<Option<i64>, PartError> {
    let columns = [
        (schema::scores::JUDGE, DataType::String),
        (schema::scores::SCORED_AT, DataType::Int64),
    ];
    let Some(df) = read_key(warehouse, key, &columns).await? else {
        return Ok(None);
    };
    let mine = df
        .column(schema::scores::JUDGE)
        .and_then(|c| c.str().cloned())
        .map(|c| c.iter().any(|j| j == Some(judge)))
        .unwrap_or(false);
    if !mine {
        return Ok(None);
    }
    let newest = df
        .column(schema::scores::SCORED_AT)
        .and_then(|c| c.i64().cloned())
        .ok()
        .and_then(|c| c.max())
        .unwrap_or(i64::MIN);
    Ok(Some(newest))
}

/// The current parts of `rubric`'s scores by `judge` on `days` ([`current_parts`] of the
/// `scores/rubric=<key>/` parts dated in `days`): what every reader of a window's scores reads.
pub async fn parts_of_days(
    warehouse: &Warehouse,
    rubric: &Rubric,
    judge: &str,
    days: &std::collections::BTreeSet<NaiveDate>,
) -> Result<Vec<String>, PartError> {
    let prefix = format!("scores/rubric={}/", rubric.key());
    let keys: Vec<String> = warehouse
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|k| {
            crate::table::PartKey::parse(k)
                .and_then(|p| p.date())
                .is_some_and(|d| days.contains(&d))
        })
        .collect();
    current_parts(warehouse, &keys, judge).await
}

/// Of the scores parts in `keys`, the ones a reader of `judge`'s scores reads: per folder, the
/// part named for the judge, or (in folders written before the rule) the newest part holding
/// the judge's rows. Folders with a single part are taken as they are (readers filter rows by
/// judge). Keeps the order of `keys`.
pub async fn current_parts(
    warehouse: &Warehouse,
    keys: &[String],
    judge: &str,
) -> Result<Vec<String>, PartError> {
    let mine = part_name(judge);
    let mut out = Vec::with_capacity(keys.len());
    let mut i = 0;
    while i < keys.len() {
        let folder = folder_of(&keys[i]);
        let mut j = i;
        while j < keys.len() && folder_of(&keys[j]) == folder {
            j += 1;
        }
        let group = &keys[i..j];
        i = j;
        if group.len() == 1 {
            out.push(group[0].clone());
            continue;
        }
        if let Some(named) = group.iter().find(|k| k.ends_with(&format!("/{mine}"))) {
            out.push(named.clone());
            continue;
        }
        let mut newest: Option<(i64, &String)> = None;
        for key in group {
            if let Some(at) = generation(warehouse, key, judge).await?
                && newest.is_none_or(|(t, _)| at > t)
            {
                newest = Some((at, key));
            }
        }
        if let Some((_, key)) = newest {
            out.push(key.clone());
        }
    }
    Ok(out)
}

/// Deletes the parts in `key`'s folder that hold rows of `judge` but are not `key`: earlier
/// generations, superseded by `key`. Returns how many were deleted.
pub async fn delete_superseded(
    warehouse: &Warehouse,
    key: &str,
    judge: &str,
) -> Result<usize, PartError> {
    let folder = folder_of(key);
    let mut deleted = 0;
    for sibling in warehouse.list(&format!("{folder}/")).await? {
        if sibling == key || folder_of(&sibling) != folder || !sibling.ends_with(".parquet") {
            continue;
        }
        if generation(warehouse, &sibling, judge).await?.is_some() {
            warehouse.delete(&sibling).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// What the warehouse records of a rubric version.
#[derive(Debug, Serialize, Deserialize)]
struct RubricRecord {
    rubric: String,
    hash: String,
}

fn record_key(rubric: &Rubric) -> String {
    format!(
        "state/rubrics/{}.json",
        crate::util::partition_value(&rubric.key())
    )
}

/// Why a rubric may not be scored into this warehouse.
#[derive(Debug, thiserror::Error)]
pub enum RubricCheckError {
    #[error(transparent)]
    Edited(#[from] RubricError),
    #[error(transparent)]
    Part(#[from] PartError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// Refuses `rubric` when the warehouse knows its version with another hash (recorded, or on
/// the version's earlier score parts); records the hash when the warehouse did not know it yet
/// (unless `dry_run`).
pub async fn check_rubric(
    warehouse: &Warehouse,
    rubric: &Rubric,
    dry_run: bool,
) -> Result<(), RubricCheckError> {
    let key = record_key(rubric);
    let edited = |recorded_in: String, recorded: String| {
        RubricCheckError::Edited(RubricError::Edited {
            key: rubric.key(),
            recorded_in,
            recorded,
            now: rubric.hash(),
        })
    };
    if let Some(bytes) = warehouse.get(&key).await? {
        let record: RubricRecord = serde_json::from_slice(&bytes).map_err(|e| PartError::Read {
            key: key.clone(),
            message: format!("not a rubric record: {e}"),
        })?;
        if record.hash != rubric.hash() {
            return Err(edited(warehouse.uri(&key), record.hash));
        }
        return Ok(());
    }
    // Warehouses scored before the record existed: the hash on an earlier part.
    let parts = warehouse
        .list(&format!("scores/rubric={}/", rubric.key()))
        .await?;
    if let Some(part) = parts.iter().find(|k| k.ends_with(".parquet")) {
        let columns = [(schema::scores::RUBRIC_HASH, DataType::String)];
        if let Some(df) = read_key(warehouse, part, &columns).await? {
            let recorded = df
                .column(schema::scores::RUBRIC_HASH)
                .ok()
                .and_then(|c| c.str().ok().and_then(|c| c.get(0).map(str::to_string)));
            if let Some(recorded) = recorded
                && recorded != rubric.hash()
            {
                return Err(edited(warehouse.uri(part), recorded));
            }
        }
    }
    if !dry_run {
        let record = RubricRecord {
            rubric: rubric.key(),
            hash: rubric.hash(),
        };
        warehouse
            .put(&key, serde_json::to_vec_pretty(&record).unwrap_or_default())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_has_one_part_name_whatever_its_parameters() {
        let date = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let a = part_key("quality@1.0.0", "chat-a", date, "bedrock:m");
        assert_eq!(a, part_key("quality@1.0.0", "chat-a", date, "bedrock:m"));
        assert_ne!(a, part_key("quality@1.0.0", "chat-a", date, "openai:m"));
        assert!(a.starts_with("scores/rubric=quality@1.0.0/model=chat-a/date=2026-10-01/part-"));
    }
}
