//! The ingest manifest: for every capture object read, the version read (size and ETag or
//! mtime), the window it was read under, its counts, and the warehouse parts holding its rows.
//! It is what makes ingest incremental and idempotent.
//!
//! Parts are named from the object's URI, so re-reading an object overwrites its own parts; parts
//! it no longer produces are deleted. A crash before the manifest is saved only means the object
//! is read again next time, onto the same part names: no duplicates either way.
//!
//! Layout: one file per (folder, capture day, shard), so it scales with the source and shards
//! never write the same file: `state/ingest/manifest/<h>/<day>/<I>-of-<N>.json`, where `<h>` is
//! the first 16 hex digits of the SHA-256 of the day's folder ([`day_folder`]: the path before
//! `yyyy/mm/dd/hh/` in the SageMaker layout, the object's folder otherwise) and `<day>` is the
//! date the path names (or `undated`). The listing meets the objects of one group one after
//! another, so ingest holds only the groups with reads in flight ([`Groups`]): memory is bounded
//! by `ingest.workers`, not by the number of objects. A group is read from all its files (an
//! earlier run may have used another N): of an object's entries the newest counts. An unsharded
//! ingest writes `0-of-1.json` and removes the group's other files, so changing N leaves nothing
//! behind for long. The single `state/ingest/manifest.json` of earlier versions is split into
//! groups the first time ingest runs.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::source::day_folder;
use crate::config::DateRange;
use crate::shard::Shard;
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

/// Where earlier versions kept the whole manifest in one file.
pub const LEGACY_KEY: &str = "state/ingest/manifest.json";
const ROOT: &str = "state/ingest/manifest";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("the ingest manifest `{uri}` is damaged: {message}")]
    Damaged { uri: String, message: String },
}

/// One manifest file: entries by object URI.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// By object URI.
    pub objects: BTreeMap<String, Entry>,
}

/// The manifest folder of the group an object (by URI) belongs to.
pub fn group_of(uri: &str) -> String {
    let (folder, date) = day_folder(uri);
    let day = date.map_or_else(|| "undated".to_string(), |d| d.to_string());
    format!("{ROOT}/{}/{day}", &sha256_hex(folder.as_bytes())[..16])
}

fn damaged(warehouse: &Warehouse, key: &str, e: impl std::fmt::Display) -> ManifestError {
    ManifestError::Damaged {
        uri: warehouse.uri(key),
        message: format!(
            "{e}; move it aside to re-read the objects it lists (parts are overwritten in place)"
        ),
    }
}

async fn read(warehouse: &Warehouse, key: &str) -> Result<Option<Manifest>, ManifestError> {
    match warehouse.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| damaged(warehouse, key, e)),
    }
}

async fn write(warehouse: &Warehouse, key: &str, manifest: &Manifest) -> Result<(), ManifestError> {
    let bytes = serde_json::to_vec(manifest).map_err(|e| damaged(warehouse, key, e))?;
    warehouse.put(key, bytes).await?;
    Ok(())
}

/// One group's entries, as this shard sees them.
#[derive(Debug, Default)]
struct Group {
    objects: BTreeMap<String, Entry>,
    /// Reads of its objects under way.
    in_flight: usize,
    dirty: bool,
    /// Files of the group written by other shard counts (removed by an unsharded save).
    others: Vec<String>,
}

/// The manifest groups an ingest run has open: those of the object being listed and those with
/// reads in flight.
pub struct Groups {
    shard: Shard,
    /// The source's root URI: an object's path under it decides its shard.
    root: String,
    /// `ingest.model-from-payload`, which ownership depends on.
    model_from_payload: bool,
    open: HashMap<String, Group>,
    /// The group of the object listed last: kept open while the listing is in it.
    current: Option<String>,
    /// The most groups open at once, for the benchmark and the summary.
    pub most_open: usize,
}

impl Groups {
    pub fn new(shard: Shard, source_root: &str, model_from_payload: bool) -> Groups {
        Groups {
            shard,
            root: source_root.trim_end_matches('/').to_string(),
            model_from_payload,
            open: HashMap::new(),
            current: None,
            most_open: 0,
        }
    }

    /// Splits the single manifest of earlier versions into group files, then removes it.
    pub async fn migrate(warehouse: &Warehouse) -> Result<u64, ManifestError> {
        let Some(legacy) = read(warehouse, LEGACY_KEY).await? else {
            return Ok(0);
        };
        let mut groups: BTreeMap<String, Manifest> = BTreeMap::new();
        let moved = legacy.objects.len() as u64;
        for (uri, entry) in legacy.objects {
            let group = groups.entry(group_of(&uri)).or_insert_with(|| Manifest {
                version: 1,
                ..Manifest::default()
            });
            group.objects.insert(uri, entry);
        }
        for (folder, manifest) in &groups {
            let key = format!("{folder}/{}.json", Shard::WHOLE.name());
            // Entries already in a group file (a migration that stopped half-way) are newer.
            let mut merged = read(warehouse, &key).await?.unwrap_or_default();
            merged.version = 1;
            for (uri, entry) in &manifest.objects {
                merged
                    .objects
                    .entry(uri.clone())
                    .or_insert_with(|| entry.clone());
            }
            write(warehouse, &key, &merged).await?;
        }
        warehouse.delete(LEGACY_KEY).await?;
        tracing::info!(
            objects = moved,
            groups = groups.len(),
            "ingest: split the manifest into per-day files"
        );
        Ok(moved)
    }

    /// Opens the group of `uri` (reading it on first use) and makes it the current one; saves
    /// and closes the groups the listing has left whose reads are done.
    pub async fn enter(
        &mut self,
        warehouse: &Warehouse,
        uri: &str,
    ) -> Result<String, ManifestError> {
        let folder = group_of(uri);
        if self.current.as_deref() != Some(folder.as_str()) {
            self.current = Some(folder.clone());
            self.close_idle(warehouse).await?;
        }
        if !self.open.contains_key(&folder) {
            let group = self.load(warehouse, &folder).await?;
            self.open.insert(folder.clone(), group);
            self.most_open = self.most_open.max(self.open.len());
        }
        Ok(folder)
    }

    async fn load(&self, warehouse: &Warehouse, folder: &str) -> Result<Group, ManifestError> {
        let mine = format!("{folder}/{}.json", self.shard.name());
        let mut group = Group::default();
        for key in warehouse.list(&format!("{folder}/")).await? {
            if !key.ends_with(".json") {
                continue;
            }
            let Some(manifest) = read(warehouse, &key).await? else {
                continue;
            };
            for (uri, entry) in manifest.objects {
                // Entries in other shards' files (another N) are ours when we own the object now.
                if key != mine
                    && !self
                        .shard
                        .owns_object(self.relative(&uri), self.model_from_payload)
                {
                    continue;
                }
                match group.objects.get(&uri) {
                    Some(seen) if seen.ingested_at >= entry.ingested_at => {}
                    _ => {
                        group.objects.insert(uri, entry);
                    }
                }
            }
            if key != mine {
                group.others.push(key);
            }
        }
        Ok(group)
    }

    /// An object's path under the source root, as [`Shard::owns_object`] takes it.
    fn relative<'a>(&self, uri: &'a str) -> &'a str {
        uri.strip_prefix(self.root.as_str())
            .map_or(uri, |rel| rel.trim_start_matches('/'))
    }

    /// The entry of `uri` in its (open) group.
    pub fn get(&self, folder: &str, uri: &str) -> Option<&Entry> {
        self.open.get(folder)?.objects.get(uri)
    }

    /// A read of an object of `folder` started.
    pub fn begin(&mut self, folder: &str) {
        if let Some(group) = self.open.get_mut(folder) {
            group.in_flight += 1;
        }
    }

    /// A read of an object of `folder` ended: with its new entry, or none (it failed).
    pub async fn end(
        &mut self,
        warehouse: &Warehouse,
        folder: &str,
        done: Option<(String, Entry)>,
    ) -> Result<(), ManifestError> {
        let Some(group) = self.open.get_mut(folder) else {
            return Ok(());
        };
        group.in_flight = group.in_flight.saturating_sub(1);
        if let Some((uri, entry)) = done {
            group.objects.insert(uri, entry);
            group.dirty = true;
        }
        if group.in_flight == 0 && self.current.as_deref() != Some(folder) {
            self.close(warehouse, folder).await?;
        }
        Ok(())
    }

    async fn close_idle(&mut self, warehouse: &Warehouse) -> Result<(), ManifestError> {
        let idle: Vec<String> = self
            .open
            .iter()
            .filter(|(f, g)| g.in_flight == 0 && self.current.as_deref() != Some(f.as_str()))
            .map(|(f, _)| f.clone())
            .collect();
        for folder in idle {
            self.close(warehouse, &folder).await?;
        }
        Ok(())
    }

    async fn close(&mut self, warehouse: &Warehouse, folder: &str) -> Result<(), ManifestError> {
        if let Some(mut group) = self.open.remove(folder) {
            self.save(warehouse, folder, &mut group).await?;
        }
        Ok(())
    }

    async fn save(
        &self,
        warehouse: &Warehouse,
        folder: &str,
        group: &mut Group,
    ) -> Result<(), ManifestError> {
        // An unsharded ingest consolidates a group written under another shard count.
        let consolidate = self.shard.is_whole() && !group.others.is_empty();
        if !group.dirty && !consolidate {
            return Ok(());
        }
        let manifest = Manifest {
            version: 1,
            objects: std::mem::take(&mut group.objects),
        };
        write(
            warehouse,
            &format!("{folder}/{}.json", self.shard.name()),
            &manifest,
        )
        .await?;
        group.objects = manifest.objects;
        group.dirty = false;
        if consolidate {
            for other in std::mem::take(&mut group.others) {
                warehouse.delete(&other).await?;
            }
        }
        Ok(())
    }

    /// Saves every open group that changed (a checkpoint), keeping them open.
    pub async fn checkpoint(&mut self, warehouse: &Warehouse) -> Result<(), ManifestError> {
        let folders: Vec<String> = self.open.keys().cloned().collect();
        for folder in folders {
            let Some(mut group) = self.open.remove(&folder) else {
                continue;
            };
            let saved = self.save(warehouse, &folder, &mut group).await;
            self.open.insert(folder, group);
            saved?;
        }
        Ok(())
    }

    /// Saves and closes everything (the end of a run).
    pub async fn finish(&mut self, warehouse: &Warehouse) -> Result<(), ManifestError> {
        self.current = None;
        self.checkpoint(warehouse).await?;
        self.open.clear();
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub size: u64,
    /// `etag:<etag>` or `mtime:<nanoseconds>`.
    pub version: String,
    /// The capture dates kept when it was read; `None` means every date.
    pub window: Option<DateRange>,
    pub lines: u64,
    pub rows: u64,
    pub quarantined: u64,
    pub out_of_window: u64,
    /// Warehouse keys of the parts holding its rows (captures and quarantine).
    pub parts: Vec<String>,
    pub ingested_at: String,
}

impl Entry {
    /// Whether this entry already holds what a read of the same object under `window` would.
    pub fn covers(&self, size: u64, version: &str, window: Option<&DateRange>) -> bool {
        if self.size != size || self.version != version {
            return false;
        }
        match (&self.window, window) {
            (None, _) => true,
            (Some(_), None) => self.out_of_window == 0,
            (Some(read), Some(wanted)) => read.covers(wanted) || self.out_of_window == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn entry(window: Option<DateRange>, out_of_window: u64) -> Entry {
        Entry {
            size: 10,
            version: "etag:a".into(),
            window,
            lines: 3,
            rows: 3,
            quarantined: 0,
            out_of_window,
            parts: vec![],
            ingested_at: String::new(),
        }
    }

    fn at(n: u32) -> Entry {
        Entry {
            ingested_at: format!("2026-11-0{n}T00:00:00+00:00"),
            ..entry(None, 0)
        }
    }

    #[tokio::test]
    async fn groups_split_the_legacy_manifest_and_follow_the_shard_count() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::Local {
            root: dir.path().to_path_buf(),
        };
        let root = "s3://src/cap";
        let uris: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "{root}/ep/c{}/2026/10/0{}/0{}/f{i}.jsonl",
                    i % 2,
                    1 + i % 3,
                    i % 5
                )
            })
            .collect();
        let legacy = Manifest {
            version: 1,
            objects: uris.iter().map(|u| (u.clone(), at(1))).collect(),
        };
        write(&warehouse, LEGACY_KEY, &legacy).await.unwrap();
        assert_eq!(Groups::migrate(&warehouse).await.unwrap(), 40);
        assert!(warehouse.get(LEGACY_KEY).await.unwrap().is_none());
        let files = warehouse.list(ROOT).await.unwrap();
        // Two component folders x three days.
        assert_eq!(files.len(), 6, "{files:?}");

        // Shard 1 of 2 sees exactly the entries of the objects it owns, and writes only its file.
        let shard = Shard::new(1, 2).unwrap();
        let mut groups = Groups::new(shard, root, false);
        let mut seen = 0;
        let mut touched = std::collections::BTreeSet::new();
        for uri in &uris {
            let rel = uri.strip_prefix("s3://src/cap/").unwrap();
            let folder = groups.enter(&warehouse, uri).await.unwrap();
            let owned = shard.owns_object(rel, false);
            assert_eq!(groups.get(&folder, uri).is_some(), owned, "{uri}");
            if owned {
                seen += 1;
                touched.insert(folder.clone());
                groups.begin(&folder);
                let done = Some((uri.clone(), at(2)));
                groups.end(&warehouse, &folder, done).await.unwrap();
            }
            assert!(
                groups.open.len() <= 2,
                "groups are closed as the listing leaves them"
            );
        }
        groups.finish(&warehouse).await.unwrap();
        assert!(seen > 5 && seen < 35, "{seen}");
        let files = warehouse.list(ROOT).await.unwrap();
        let written = files.iter().filter(|f| f.ends_with("/1-of-2.json")).count();
        assert_eq!(written, touched.len(), "a file for each group it read into");
        assert_eq!(
            files.iter().filter(|f| f.ends_with("/0-of-2.json")).count(),
            0
        );

        // An unsharded run reads both files, keeps the newest entry of each object, and folds
        // the group into one file.
        let mut whole = Groups::new(Shard::WHOLE, root, false);
        for uri in &uris {
            let folder = whole.enter(&warehouse, uri).await.unwrap();
            let rel = uri.strip_prefix("s3://src/cap/").unwrap();
            let newest = if shard.owns_object(rel, false) { 2 } else { 1 };
            assert_eq!(whole.get(&folder, uri).unwrap(), &at(newest), "{uri}");
        }
        whole.finish(&warehouse).await.unwrap();
        let files = warehouse.list(ROOT).await.unwrap();
        assert_eq!(files.len(), 6, "{files:?}");
        assert!(files.iter().all(|f| f.ends_with("/0-of-1.json")));
    }

    #[test]
    fn coverage_follows_version_and_window() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        let first = DateRange::new(d(1), d(1)).unwrap();
        let second = DateRange::new(d(2), d(2)).unwrap();
        assert!(entry(None, 0).covers(10, "etag:a", Some(&first)));
        assert!(!entry(None, 0).covers(10, "etag:b", None), "changed etag");
        assert!(!entry(None, 0).covers(11, "etag:a", None), "changed size");
        assert!(entry(Some(first), 0).covers(10, "etag:a", Some(&second)));
        assert!(!entry(Some(first), 2).covers(10, "etag:a", Some(&second)));
        assert!(!entry(Some(first), 2).covers(10, "etag:a", None));
        assert!(entry(Some(first), 2).covers(10, "etag:a", Some(&first)));
    }
}
