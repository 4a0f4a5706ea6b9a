//! The warehouse writer lock: one writing command at a time per warehouse (`run`, `ingest`,
//! `score`, `telemetry`, `analyse`, `publish`), whatever their windows, so two nightly jobs, a
//! backfill and a hand-run `score` never interleave their writes. Readers (`report`, `compare`
//! on files, `score --dry-run`, `publish --dry-run`) take none. A second writer exits 1 naming
//! the holder, or waits for it with `--wait-lock SECONDS`.
//!
//! Local warehouse: `state/locks/writer.lock`, held with the operating system's exclusive file
//! lock, which the kernel drops when the holder dies, so a crashed writer's lock is free at once;
//! the file (never deleted, so no two processes can hold locks on two different files of one
//! name) says who holds it, and is emptied on release. S3 warehouse: `state/locks/writer.json`,
//! created with a conditional write (`If-None-Match: *`), its heartbeat refreshed every 30 s with
//! a compare-and-swap on its ETag; one whose heartbeat is older than 5 minutes belongs to a writer
//! that is gone and is taken over (compare-and-swap again, so of two only one wins), its lease
//! generation raised. **Fencing**: the holder's warehouse refuses to write once the lease was
//! lost (a heartbeat found it taken over) or was last confirmed more than 4 minutes ago, before
//! anyone may take it over; so a writer paused past its lease never commits over the next one.
//! Release deletes the lock only if it is still ours.
//!
//! **Shards** (`run --map`, `ingest`/`score` with `--shard I/N`): a shard holds its own lock
//! (`state/locks/shard-<I>-of-<N>.*`, the same machinery), so a second process with an index
//! already running is refused, and the shards of one map step run side by side. They exclude
//! the unsharded writers: locally a shard also holds the writer lock *shared* (an unsharded
//! writer holds it exclusive), on S3 a shard refuses to start while `writer.json` is held and an
//! unsharded writer refuses to start while a shard's lock is live. (On S3 the two checks are not
//! one atomic step: a shard and an unsharded writer starting within the same second can both
//! start; the engines run the reduce after the map, so they do not.)

use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::shard::Shard;
use crate::warehouse::{Warehouse, WarehouseError};

/// How often an S3 lock's heartbeat is refreshed, and how old one may get before the lock counts
/// as abandoned.
const HEARTBEAT: Duration = Duration::from_secs(30);
const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(5);
/// How long after its last confirmed heartbeat a holder still writes: a minute short of
/// [`STALE_AFTER`], so it stops before anyone may take the lease over.
pub const FENCE_AFTER: Duration = Duration::from_secs(4 * 60);

/// How often a waiting writer (`--wait-lock`) tries again.
const WAIT_STEP: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another writer holds this warehouse's lock: {holder} (lock `{uri}`); wait for it to \
         finish, or pass --wait-lock SECONDS{hint}"
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
    /// The run id (or a fresh id for a single command).
    pub run_id: String,
    /// The command holding the lock (`run`, `score`, ...).
    #[serde(default)]
    pub command: String,
    /// Raised on every takeover: which lease of the lock this is.
    #[serde(default)]
    pub generation: u64,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` {} (lease {}) on {} (pid {}) since {}, last seen {}",
            if self.command.is_empty() {
                "run"
            } else {
                &self.command
            },
            self.run_id,
            self.generation,
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

/// A held lock; [`WriterLock::release`] frees it (a crash frees a local one too).
pub struct WriterLock {
    inner: Inner,
}

enum Inner {
    /// The file holding our name, and (for a shard) the writer lock held shared.
    Local {
        held: std::fs::File,
        shared: Option<std::fs::File>,
    },
    S3 {
        warehouse: Warehouse,
        key: String,
        etag: Arc<tokio::sync::Mutex<String>>,
        heartbeat: tokio::task::JoinHandle<()>,
    },
}

/// The writer lock's key.
pub fn key(local: bool) -> String {
    let ext = if local { "lock" } else { "json" };
    format!("state/locks/writer.{ext}")
}

const SHARD_LOCKS: &str = "state/locks/shard-";

/// A shard's lock key.
pub fn shard_key(shard: Shard, local: bool) -> String {
    let ext = if local { "lock" } else { "json" };
    format!("{SHARD_LOCKS}{}.{ext}", shard.name())
}

/// Takes the warehouse's writer lock for `command` (run `run_id`), or, for a shard, that
/// shard's lock; or says who holds it. With `wait`, tries again until it is free or `wait` has
/// passed.
pub async fn acquire(
    warehouse: &Warehouse,
    run_id: &str,
    command: &str,
    wait: Option<Duration>,
    shard: Option<Shard>,
) -> Result<WriterLock, LockError> {
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut announced = false;
    loop {
        let now = Utc::now();
        let me = Holder {
            run_id: run_id.to_string(),
            command: command.to_string(),
            generation: 1,
            host: host(),
            pid: std::process::id(),
            started_at: now,
            heartbeat_at: now,
        };
        let attempt = match (warehouse.local_root(), shard) {
            (Some(root), None) => acquire_local(root, &me),
            (Some(root), Some(shard)) => acquire_local_shard(root, shard, &me),
            (None, None) => acquire_s3_writer(warehouse, me).await,
            (None, Some(shard)) => acquire_s3_shard(warehouse, shard, me).await,
        };
        match attempt {
            Err(LockError::Held { holder, .. })
                if deadline.is_some_and(|d| tokio::time::Instant::now() < d) =>
            {
                if !announced {
                    tracing::info!(%holder, "waiting for the warehouse's writer lock");
                    announced = true;
                }
                tokio::time::sleep(WAIT_STEP).await;
            }
            other => return other,
        }
    }
}

fn open_lock_file(path: &std::path::Path) -> Result<std::fs::File, LockError> {
    let io = |source| LockError::Io {
        uri: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)
}

/// Who a lock file names, or what to say when it names nobody.
fn named_in(file: &mut std::fs::File, nobody: &str) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    serde_json::from_str::<Holder>(&text)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| nobody.to_string())
}

/// The shards whose local locks are held now, by name.
fn local_shard_holders(root: &std::path::Path) -> Vec<String> {
    let dir = root.join("state/locks");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut held = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("shard-") || !name.ends_with(".lock") {
            continue;
        }
        let Ok(mut file) = std::fs::File::open(entry.path()) else {
            continue;
        };
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock_shared() {
            held.push(format!("{} ({name})", named_in(&mut file, "a shard")));
        }
    }
    held.sort();
    held
}

/// Writes `me` into a lock file we hold; warns when it still named a writer that died.
fn claim(path: &std::path::Path, file: &mut std::fs::File, me: &Holder) -> Result<(), LockError> {
    let io = |source| LockError::Io {
        uri: path.display().to_string(),
        source,
    };
    // A finished run empties the file; a name still in it is a run that died holding it.
    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    if let Ok(gone) = serde_json::from_str::<Holder>(&previous) {
        tracing::warn!(previous = %gone, lock = %path.display(), "took over the lock of a process that ended without releasing it");
    }
    let text = serde_json::to_string(me).unwrap_or_default();
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

fn acquire_local(root: &std::path::Path, me: &Holder) -> Result<WriterLock, LockError> {
    let path = root.join(key(true));
    let mut file = open_lock_file(&path)?;
    if !os_lock(&file, &path, false)? {
        let shards = local_shard_holders(root);
        let holder = if shards.is_empty() {
            named_in(&mut file, "a process that has not written its name yet")
        } else {
            format!("the shards of a map step: {}", shards.join("; "))
        };
        return Err(LockError::Held {
            holder,
            uri: path.display().to_string(),
            hint: "",
        });
    }
    hold(&path, file, None, me)
}

/// Tries the operating system's lock on `file` (shared or exclusive); `false` when another
/// process holds it.
fn os_lock(file: &std::fs::File, path: &std::path::Path, shared: bool) -> Result<bool, LockError> {
    let attempt = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match attempt {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io {
            uri: path.display().to_string(),
            source,
        }),
    }
}

/// The lock held in `file` (our name written into it), with the writer lock held shared for a
/// shard.
fn hold(
    path: &std::path::Path,
    mut file: std::fs::File,
    shared: Option<std::fs::File>,
    me: &Holder,
) -> Result<WriterLock, LockError> {
    claim(path, &mut file, me)?;
    Ok(WriterLock {
        inner: Inner::Local { held: file, shared },
    })
}

fn acquire_local_shard(
    root: &std::path::Path,
    shard: Shard,
    me: &Holder,
) -> Result<WriterLock, LockError> {
    let writer_path = root.join(key(true));
    let mut writer = open_lock_file(&writer_path)?;
    let held = |path: &std::path::Path, holder| LockError::Held {
        holder,
        uri: path.display().to_string(),
        hint: "",
    };
    if !os_lock(&writer, &writer_path, true)? {
        let holder = named_in(&mut writer, "an unsharded writer");
        return Err(held(&writer_path, holder));
    }
    let path = root.join(shard_key(shard, true));
    let mut file = open_lock_file(&path)?;
    if !os_lock(&file, &path, false)? {
        let holder = named_in(&mut file, "a process that has not written its name yet");
        return Err(held(&path, format!("shard {shard}: {holder}")));
    }
    hold(&path, file, Some(writer), me)
}

/// The holder named by the S3 lock at `key`, if it is live (its heartbeat is recent).
async fn live_s3_holder(warehouse: &Warehouse, key: &str) -> Result<Option<String>, LockError> {
    let Some(bytes) = warehouse.get(key).await? else {
        return Ok(None);
    };
    Ok(match serde_json::from_slice::<Holder>(&bytes) {
        Ok(h) if Utc::now() - h.heartbeat_at <= STALE_AFTER => Some(h.to_string()),
        _ => None,
    })
}

async fn acquire_s3_writer(warehouse: &Warehouse, me: Holder) -> Result<WriterLock, LockError> {
    let lock = acquire_s3(warehouse, &key(false), me).await?;
    let mut shards = Vec::new();
    for shard_lock in warehouse.list(SHARD_LOCKS).await? {
        if let Some(holder) = live_s3_holder(warehouse, &shard_lock).await? {
            shards.push(format!("{holder} ({shard_lock})"));
        }
    }
    if shards.is_empty() {
        return Ok(lock);
    }
    lock.release().await?;
    Err(LockError::Held {
        holder: format!("the shards of a map step: {}", shards.join("; ")),
        uri: warehouse.uri(SHARD_LOCKS),
        hint: "; a lock whose heartbeat is 5 minutes old is taken over",
    })
}

async fn acquire_s3_shard(
    warehouse: &Warehouse,
    shard: Shard,
    me: Holder,
) -> Result<WriterLock, LockError> {
    let writer = key(false);
    if let Some(holder) = live_s3_holder(warehouse, &writer).await? {
        return Err(LockError::Held {
            holder,
            uri: warehouse.uri(&writer),
            hint: "; a lock whose heartbeat is 5 minutes old is taken over",
        });
    }
    acquire_s3(warehouse, &shard_key(shard, false), me).await
}

async fn acquire_s3(
    warehouse: &Warehouse,
    key: &str,
    mut me: Holder,
) -> Result<WriterLock, LockError> {
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
            me.generation = holder.as_ref().map_or(0, |h| h.generation) + 1;
            match warehouse.put_if(key, body(&me), Some(&old_etag)).await? {
                Some(etag) => {
                    tracing::warn!(previous = %described, generation = me.generation, "took over an abandoned writer lock");
                    etag
                }
                None => {
                    return Err(LockError::Held {
                        holder: "another writer that took over the same abandoned lock first"
                            .into(),
                        uri: warehouse.uri(key),
                        hint: "",
                    });
                }
            }
        }
    };
    // From here on the warehouse writes only while the lease is confirmed.
    let lease = warehouse.fence_with(key);
    let etag = Arc::new(tokio::sync::Mutex::new(etag));
    let heartbeat = {
        let (warehouse, key, etag) = (warehouse.clone(), key.to_string(), etag.clone());
        tokio::spawn(async move {
            let mut me = me;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                me.heartbeat_at = Utc::now();
                let mut current = etag.lock().await;
                match warehouse.put_if(&key, body(&me), Some(&current)).await {
                    Ok(Some(next)) => {
                        *current = next;
                        lease.confirm();
                    }
                    Ok(None) => {
                        lease.lose();
                        tracing::error!(
                            key,
                            "the writer lock was taken over by another writer; this one writes \
                             nothing more"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot refresh the writer lock's heartbeat")
                    }
                }
            }
        })
    };
    Ok(WriterLock {
        inner: Inner::S3 {
            warehouse: warehouse.clone(),
            key: key.to_string(),
            etag,
            heartbeat,
        },
    })
}

impl WriterLock {
    /// Frees the lock for the next run.
    pub async fn release(self) -> Result<(), LockError> {
        match self.inner {
            Inner::Local { held, shared } => {
                // The file stays (see the module docs), emptied: nobody holds it. The kernel
                // locks go with the handles.
                let _ = held.set_len(0);
                drop(held);
                drop(shared);
                Ok(())
            }
            Inner::S3 {
                warehouse,
                key,
                etag,
                heartbeat,
            } => {
                heartbeat.abort();
                let etag = etag.lock().await.clone();
                // Only our own lease: a lock taken over since is the next writer's.
                warehouse.delete_if(&key, &etag).await?;
                warehouse.unfence();
                Ok(())
            }
        }
    }
}
