//! The run lock: one `evalwatch run` at a time per warehouse and window, so two nightly jobs (a
//! retry started while the first still runs, two schedulers) never interleave their writes.
//!
//! Local warehouse: `state/locks/run-<since>_<until>.lock`, held with the operating system's
//! exclusive file lock, which the kernel drops when the holder dies, so a crashed run's lock is
//! free at once; the file (never deleted, so no two processes can hold locks on two different
//! files of one name) says who holds it, and is emptied on release. S3 warehouse: `state/locks/run-<since>_<until>.json`,
//! created with a conditional write (`If-None-Match: *`), its heartbeat refreshed every 30 s;
//! one whose heartbeat is older than 5 minutes belongs to a run that is gone and is taken over
//! with a compare-and-swap on its ETag, so of two runs taking it over only one wins.

use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::DateRange;
use crate::warehouse::{Warehouse, WarehouseError};

/// How often an S3 lock's heartbeat is refreshed, and how old one may get before the lock counts
/// as abandoned.
const HEARTBEAT: Duration = Duration::from_secs(30);
const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another run holds the lock on this warehouse and window: {holder} (lock `{uri}`); wait \
         for it to finish{hint}"
    )]
    Held {
        holder: String,
        uri: String,
        hint: &'static str,
    },
    #[error("cannot take the run lock `{uri}`: {source}")]
    Io { uri: String, source: std::io::Error },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} on {} (pid {}) since {}, last seen {}",
            self.run_id,
            self.host,
            self.pid,
            self.started_at.to_rfc3339(),
            self.heartbeat_at.to_rfc3339()
        )
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A held lock; [`RunLock::release`] frees it (a crash frees a local one too).
pub struct RunLock {
    inner: Inner,
}

enum Inner {
    Local(std::fs::File),
    S3 {
        warehouse: Warehouse,
        key: String,
        heartbeat: tokio::task::JoinHandle<()>,
    },
}

/// The lock's key for `window`.
pub fn key(window: DateRange, local: bool) -> String {
    let ext = if local { "lock" } else { "json" };
    format!("state/locks/run-{}_{}.{ext}", window.since, window.until)
}

/// Takes the run lock of `window`, or says who holds it.
pub async fn acquire(
    warehouse: &Warehouse,
    window: DateRange,
    run_id: &str,
) -> Result<RunLock, LockError> {
    let now = Utc::now();
    let me = Holder {
        run_id: run_id.to_string(),
        host: host(),
        pid: std::process::id(),
        started_at: now,
        heartbeat_at: now,
    };
    match warehouse.local_root() {
        Some(root) => acquire_local(&root.join(key(window, true)), &me),
        None => acquire_s3(warehouse, &key(window, false), me).await,
    }
}

fn acquire_local(path: &std::path::Path, me: &Holder) -> Result<RunLock, LockError> {
    let io = |source| LockError::Io {
        uri: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str::<Holder>(&text)
                .map(|h| h.to_string())
                .unwrap_or_else(|_| "a process that has not written its name yet".into());
            return Err(LockError::Held {
                holder,
                uri: path.display().to_string(),
                hint: "",
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours. A finished run empties the file; a name still in it is a run that died holding it.
    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    if let Ok(gone) = serde_json::from_str::<Holder>(&previous) {
        tracing::warn!(previous = %gone, "run: took over the lock of a run that ended without releasing it");
    }
    let text = serde_json::to_string(me).unwrap_or_default();
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(RunLock {
        inner: Inner::Local(file),
    })
}

async fn acquire_s3(warehouse: &Warehouse, key: &str, me: Holder) -> Result<RunLock, LockError> {
    let body = |h: &Holder| serde_json::to_vec(h).unwrap_or_default();
    let etag = match warehouse.put_if(key, body(&me), None).await? {
        Some(etag) => etag,
        None => {
            let Some((bytes, old_etag)) = warehouse.get_tagged(key).await? else {
                // Released between our write and our read: one more try.
                return Box::pin(acquire_s3(warehouse, key, me)).await;
            };
            let holder: Option<Holder> = serde_json::from_slice(&bytes).ok();
            let stale = holder
                .as_ref()
                .is_none_or(|h| Utc::now() - h.heartbeat_at > STALE_AFTER);
            let described = holder
                .as_ref()
                .map_or_else(|| "an unreadable lock".to_string(), |h| h.to_string());
            if !stale {
                return Err(LockError::Held {
                    holder: described,
                    uri: warehouse.uri(key),
                    hint: "; a lock whose heartbeat is 5 minutes old is taken over",
                });
            }
            match warehouse.put_if(key, body(&me), Some(&old_etag)).await? {
                Some(etag) => {
                    tracing::warn!(previous = %described, "run: took over an abandoned lock");
                    etag
                }
                None => {
                    return Err(LockError::Held {
                        holder: "another run that took over the same abandoned lock first".into(),
                        uri: warehouse.uri(key),
                        hint: "",
                    });
                }
            }
        }
    };
    let heartbeat = {
        let (warehouse, key) = (warehouse.clone(), key.to_string());
        let etag = Arc::new(tokio::sync::Mutex::new(etag));
        tokio::spawn(async move {
            let mut me = me;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                me.heartbeat_at = Utc::now();
                let mut current = etag.lock().await;
                match warehouse.put_if(&key, body(&me), Some(&current)).await {
                    Ok(Some(next)) => *current = next,
                    Ok(None) => {
                        tracing::error!(key, "run: the lock was taken over by another run");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "run: cannot refresh the lock's heartbeat")
                    }
                }
            }
        })
    };
    Ok(RunLock {
        inner: Inner::S3 {
            warehouse: warehouse.clone(),
            key: key.to_string(),
            heartbeat,
        },
    })
}

impl RunLock {
    /// Frees the lock for the next run.
    pub async fn release(self) -> Result<(), LockError> {
        match self.inner {
            Inner::Local(file) => {
                // The file stays (see the module docs), emptied: nobody holds it. The kernel
                // lock goes with the handle.
                let _ = file.set_len(0);
                drop(file);
                Ok(())
            }
            Inner::S3 {
                warehouse,
                key,
                heartbeat,
            } => {
                heartbeat.abort();
                warehouse.delete(&key).await?;
                Ok(())
            }
        }
    }
}
