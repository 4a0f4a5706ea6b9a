//! The ingest manifest (`state/ingest/manifest.json`): for every capture object read, the version
//! read (size and ETag or mtime), the window it was read under, its counts, and the warehouse parts
//! holding its rows. It is what makes ingest incremental and idempotent.
//!
//! Parts are named from the object's URI, so re-reading an object overwrites its own parts; parts
//! it no longer produces are deleted. A crash before the manifest is saved only means the object
//! is read again next time, onto the same part names: no duplicates either way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::DateRange;
use crate::warehouse::{Warehouse, WarehouseError};

pub const MANIFEST_KEY: &str = "state/ingest/manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("the ingest manifest `{uri}` is damaged: {message}")]
    Damaged { uri: String, message: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// By object URI.
    pub objects: BTreeMap<String, Entry>,
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

impl Manifest {
    pub async fn load(warehouse: &Warehouse) -> Result<Manifest, ManifestError> {
        match warehouse.get(MANIFEST_KEY).await? {
            None => Ok(Manifest {
                version: 1,
                objects: BTreeMap::new(),
            }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| ManifestError::Damaged {
                uri: warehouse.uri(MANIFEST_KEY),
                message: format!(
                    "{e}; move it aside to re-read every object (parts are overwritten in place)"
                ),
            }),
        }
    }

    pub async fn save(&self, warehouse: &Warehouse) -> Result<(), ManifestError> {
        let bytes = serde_json::to_vec(self).map_err(|e| ManifestError::Damaged {
            uri: warehouse.uri(MANIFEST_KEY),
            message: e.to_string(),
        })?;
        warehouse.put(MANIFEST_KEY, bytes).await?;
        Ok(())
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
