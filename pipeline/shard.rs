//! Shards: one nightly run split over N processes (a Kubernetes Indexed Job, an AWS Batch array
//! job), with the warehouse carrying the data between the map step and the reduce step. No
//! scheduler of our own: the engine starts the processes, this module says what each one owns.
//!
//! - Ownership is a pure function of the data, so a retried index redoes exactly its own share:
//!   score shard `I` of `N` judges the `captures` partitions whose (model, date) hashes to `I`
//!   modulo `N` (score parts are per partition and judge, so no two shards write one); ingest
//!   shard `I` reads the source objects of those partitions where the object's path names its
//!   partition (the SageMaker layout `<endpoint>/<component>/yyyy/mm/dd/hh/`, the component being
//!   the model), so a shard judges what it read itself, and any other object by the hash of its
//!   path under the source root. Rows of a partition that another shard read (a record naming
//!   another model, a flat folder) may arrive after the owner judged it: the reduce runs the
//!   score stage over the window once more, unsharded, which judges just those (every judgment
//!   the shards made comes from the judge cache, free).
//! - The index comes from `--shard I/N`, or from the engine: `JOB_COMPLETION_INDEX` (Kubernetes
//!   Indexed Job; the count from `EVALWATCH_SHARDS`, since a pod cannot read its Job's
//!   completions) or `AWS_BATCH_JOB_ARRAY_INDEX` with `AWS_BATCH_JOB_ARRAY_SIZE` (AWS Batch).
//! - `run --map` commits a marker per shard and window (`state/shards/<window>/<I>-of-<N>.json`,
//!   deleted when the shard starts, written when it finished well); `run --reduce` checks that all
//!   N are there, names the missing ones otherwise, and consumes them once the reduce succeeded.
//!
//! Reads / writes: the markers under `state/shards/`. Never does: decide what a stage writes.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::config::DateRange;
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

/// The engines' variables, in the order they are looked at.
pub const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
pub const BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
pub const BATCH_SIZE: &str = "AWS_BATCH_JOB_ARRAY_SIZE";
/// The shard count where the engine does not say it (Kubernetes: the Job's `completions`).
pub const SHARDS_VAR: &str = "EVALWATCH_SHARDS";

const MARKERS: &str = "state/shards";
/// How often `run --reduce --wait-shards` looks for the missing markers.
const WAIT_STEP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{what}: `{text}` is not a shard; write I/N with 0 <= I < N (e.g. 0/4)")]
    Parse { what: String, text: String },
    #[error(
        "{var}={index} says this is shard {index} of an indexed job, but not how many shards \
         there are; set {SHARDS_VAR} to the Job's completions or pass --shard {index}/N"
    )]
    NoCount { var: &'static str, index: String },
    #[error(
        "{count} shard(s) expected for the window {window}, but {missing} did not commit \
         (markers under `{folder}`); run those indexes again (`run --map --shard I/{count}`), \
         then the reduce"
    )]
    Missing {
        window: String,
        count: u32,
        missing: String,
        folder: String,
    },
    #[error(
        "no shard committed the window {window} (no marker under `{folder}`); run the map step \
         first, or pass --shards N to name how many to wait for"
    )]
    NoneCommitted { window: String, folder: String },
    #[error(
        "the shards of the window {window} disagree on their count ({counts}); run the map step \
         again with one N, or pass --shards N"
    )]
    Counts { window: String, counts: String },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// Shard `index` of `count` (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where a text falls among `count` buckets: the first 8 bytes of its SHA-256, modulo `count`.
pub fn bucket(text: &str, count: u32) -> u32 {
    let digest = sha256_hex(text.as_bytes());
    let h = u64::from_str_radix(&digest[..16], 16).unwrap_or(0);
    (h % u64::from(count.max(1))) as u32
}

impl Shard {
    /// The whole: one process owns everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (count >= 1 && index < count).then_some(Shard { index, count })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str, what: &str) -> Result<Shard, ShardError> {
        let error = || ShardError::Parse {
            what: what.to_string(),
            text: text.to_string(),
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(error)?;
        let (i, n) = (
            i.trim().parse().map_err(|_| error())?,
            n.trim().parse().map_err(|_| error())?,
        );
        Shard::new(i, n).ok_or_else(error)
    }

    /// `--shard` when given, else what the engine's variables say (`env` reads one), else none.
    pub fn resolve(
        flag: Option<Shard>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Shard>, ShardError> {
        if flag.is_some() {
            return Ok(flag);
        }
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let (index_var, index) = match (var(K8S_INDEX), var(BATCH_INDEX)) {
            (Some(i), _) => (K8S_INDEX, i),
            (None, Some(i)) => (BATCH_INDEX, i),
            (None, None) => return Ok(None),
        };
        let count = var(SHARDS_VAR).or_else(|| {
            (index_var == BATCH_INDEX)
                .then(|| var(BATCH_SIZE))
                .flatten()
        });
        let Some(count) = count else {
            return Err(ShardError::NoCount {
                var: index_var,
                index,
            });
        };
        Shard::parse(
            &format!("{}/{}", index.trim(), count.trim()),
            &format!("{index_var} and the shard count"),
        )
        .map(Some)
    }

    /// `I-of-N`, as file names use it.
    pub fn name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether this shard reads the source object at `rel` (its path under the source root):
    /// the owner of the partition its path names (unless the model comes from the payload),
    /// else by the hash of the path.
    pub fn owns_object(&self, rel: &str, model_from_payload: bool) -> bool {
        if self.count == 1 {
            return true;
        }
        let info = crate::ingest::source::path_info(rel);
        match (info.component, info.date) {
            (Some(component), Some(date)) if !model_from_payload => {
                self.owns_partition(&crate::util::partition_value(&component), date)
            }
            _ => bucket(rel, self.count) == self.index,
        }
    }

    /// Whether this shard judges the `captures` partition of (`model_segment`, `date`).
    pub fn owns_partition(&self, model_segment: &str, date: chrono::NaiveDate) -> bool {
        self.count == 1 || bucket(&format!("{model_segment}\0{date}"), self.count) == self.index
    }

    /// This shard's share of a rate or budget shared by all shards.
    pub fn share(&self, total: f64) -> f64 {
        total / f64::from(self.count)
    }
}

/// What a shard's map step committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub shard: Shard,
    pub window: String,
    pub run_id: String,
    pub finished_at: String,
    /// The stage summaries of the map step.
    pub stages: serde_json::Value,
}

fn folder(window: &DateRange) -> String {
    format!("{MARKERS}/{}", window.to_string().replace("..", "_"))
}

fn marker_key(window: &DateRange, shard: Shard) -> String {
    format!("{}/{}.json", folder(window), shard.name())
}

/// Forgets that `shard` committed `window`: called when its map step starts, so a reduce never
/// counts a shard that is being redone.
pub async fn clear(
    warehouse: &Warehouse,
    window: &DateRange,
    shard: Shard,
) -> Result<(), ShardError> {
    warehouse.delete(&marker_key(window, shard)).await?;
    Ok(())
}

/// Records that `shard` finished its map step for `window`.
pub async fn commit(
    warehouse: &Warehouse,
    marker: &Marker,
    window: &DateRange,
) -> Result<(), ShardError> {
    let bytes = serde_json::to_vec_pretty(marker).unwrap_or_default();
    warehouse
        .put(&marker_key(window, marker.shard), bytes)
        .await?;
    Ok(())
}

/// The markers of `window`, when all `count` shards committed it (`count`: as given, or as the
/// markers say); which are missing otherwise.
pub async fn committed(
    warehouse: &Warehouse,
    window: &DateRange,
    count: Option<u32>,
) -> Result<Vec<Marker>, ShardError> {
    let folder = folder(window);
    let mut markers = Vec::new();
    for key in warehouse.list(&format!("{folder}/")).await? {
        let Some(bytes) = warehouse.get(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<Marker>(&bytes) {
            Ok(marker) => markers.push(marker),
            Err(e) => {
                tracing::warn!(key, error = %e, "reduce: an unreadable shard marker is left out")
            }
        }
    }
    let count = match count {
        Some(n) => n,
        None => {
            let mut counts: Vec<u32> = markers.iter().map(|m| m.shard.count).collect();
            counts.sort_unstable();
            counts.dedup();
            match counts.as_slice() {
                [] => {
                    return Err(ShardError::NoneCommitted {
                        window: window.to_string(),
                        folder: warehouse.uri(&folder),
                    });
                }
                [n] => *n,
                many => {
                    return Err(ShardError::Counts {
                        window: window.to_string(),
                        counts: many
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
    };
    markers.retain(|m| m.shard.count == count);
    markers.sort_by_key(|m| m.shard.index);
    markers.dedup_by_key(|m| m.shard.index);
    let missing: Vec<String> = (0..count)
        .filter(|i| !markers.iter().any(|m| m.shard.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(ShardError::Missing {
            window: window.to_string(),
            count,
            missing: missing.join(", "),
            folder: warehouse.uri(&folder),
        });
    }
    Ok(markers)
}

/// [`committed`], looking again every few seconds until `wait` has passed.
pub async fn wait_committed(
    warehouse: &Warehouse,
    window: &DateRange,
    count: Option<u32>,
    wait: Option<Duration>,
) -> Result<Vec<Marker>, ShardError> {
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut announced = false;
    loop {
        match committed(warehouse, window, count).await {
            Err(ShardError::Missing { .. } | ShardError::NoneCommitted { .. })
                if deadline.is_some_and(|d| tokio::time::Instant::now() + WAIT_STEP < d) =>
            {
                if !announced {
                    tracing::info!(window = %window, "reduce: waiting for the shards to commit");
                    announced = true;
                }
                tokio::time::sleep(WAIT_STEP).await;
            }
            other => return other,
        }
    }
}

/// Removes the markers a finished reduce used, so a later reduce of the same window waits for
/// a new map step.
pub async fn consume(
    warehouse: &Warehouse,
    window: &DateRange,
    markers: &[Marker],
) -> Result<(), ShardError> {
    for marker in markers {
        warehouse.delete(&marker_key(window, marker.shard)).await?;
    }
    Ok(())
}

/// A marker for `shard`, finished now.
pub fn marker(shard: Shard, window: &DateRange, run_id: &str, stages: serde_json::Value) -> Marker {
    Marker {
        shard,
        window: window.to_string(),
        run_id: run_id.to_string(),
        finished_at: Utc::now().to_rfc3339(),
        stages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn shards_parse_and_come_from_the_engines() {
        assert_eq!(
            Shard::parse("2/4", "--shard").unwrap(),
            Shard::new(2, 4).unwrap()
        );
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(Shard::parse(bad, "--shard").is_err(), "{bad}");
        }
        let flag = Shard::new(1, 2);
        assert_eq!(
            Shard::resolve(flag, env(&[(K8S_INDEX, "3")])).unwrap(),
            flag
        );
        assert_eq!(Shard::resolve(None, env(&[])).unwrap(), None);
        let k8s = env(&[(K8S_INDEX, "3"), (SHARDS_VAR, "4")]);
        assert_eq!(Shard::resolve(None, k8s).unwrap(), Shard::new(3, 4));
        let batch = env(&[(BATCH_INDEX, "0"), (BATCH_SIZE, "8")]);
        assert_eq!(Shard::resolve(None, batch).unwrap(), Shard::new(0, 8));
        let err = Shard::resolve(None, env(&[(K8S_INDEX, "3")])).unwrap_err();
        assert!(err.to_string().contains(SHARDS_VAR), "{err}");
        assert!(Shard::resolve(None, env(&[(K8S_INDEX, "5"), (SHARDS_VAR, "4")])).is_err());
    }

    #[test]
    fn every_object_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).unwrap()).collect();
        let mut per_shard = [0usize; 4];
        for n in 0..4000 {
            let rel = format!("exports/batch-{}/file-{n}.jsonl", n % 7);
            let owners: Vec<&Shard> = shards
                .iter()
                .filter(|s| s.owns_object(&rel, false))
                .collect();
            assert_eq!(owners.len(), 1, "{rel}");
            per_shard[owners[0].index as usize] += 1;
            assert!(Shard::WHOLE.owns_object(&rel, false));
        }
        // Balanced within a few percent.
        assert!(
            per_shard.iter().all(|n| (900..1100).contains(n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn a_sagemaker_object_belongs_to_the_shard_that_judges_its_partition() {
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        for component in ["chat-a", "chat-b", "Chat B v2"] {
            for d in 1..=14 {
                let rel = format!("ep/{component}/2026/10/{d:02}/07/x.jsonl");
                let segment = crate::util::partition_value(component);
                for i in 0..4 {
                    let shard = Shard::new(i, 4).unwrap();
                    assert_eq!(
                        shard.owns_object(&rel, false),
                        shard.owns_partition(&segment, day(d)),
                        "{rel}"
                    );
                }
                // With the model from the payload the path says nothing: by the path's hash.
                let owners = (0..4)
                    .filter(|i| Shard::new(*i, 4).unwrap().owns_object(&rel, true))
                    .count();
                assert_eq!(owners, 1);
            }
        }
    }
}
