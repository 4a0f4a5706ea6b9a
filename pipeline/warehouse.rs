//! The warehouse: where every stage reads and writes its tables and state, a local folder or an S3
//! prefix, addressed by `/`-separated keys relative to its root (`captures/model=a/date=.../part-x.parquet`).
//!
//! Writes are atomic: locally a temp file in the same folder (a dot-name no reader picks up) renamed
//! over the target; on S3 a single PutObject, which is all-or-nothing. A crash never leaves a
//! half-written part that a reader would see.
//!
//! Never does: interpret what it stores. Stages own their tables; this module only moves bytes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::{AwsClients, sdk_error_text};
use crate::config::Location;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot {op} `{uri}`: {source}")]
    Io {
        op: &'static str,
        uri: String,
        source: std::io::Error,
    },
    #[error("cannot {op} `{uri}`: {message}")]
    S3 {
        op: &'static str,
        uri: String,
        message: String,
    },
    /// The writer lease is lost or unconfirmed: writing now could overwrite the next writer's.
    #[error("refusing to write `{uri}`: {reason}")]
    Fenced { uri: String, reason: String },
}

/// The writer lease an S3 warehouse writes under ([`crate::lock`]): none until a writer lock is
/// taken; then every `put` and `delete` checks it.
#[derive(Debug, Clone, Default)]
pub struct Fence(std::sync::Arc<std::sync::Mutex<Option<LeaseState>>>);

#[derive(Debug, Clone)]
struct LeaseState {
    lock_key: String,
    confirmed: std::time::Instant,
    lost: bool,
}

/// The holder's side of the lease: its heartbeat confirms or loses it.
#[derive(Debug, Clone)]
pub struct Lease(Fence);

impl Lease {
    pub fn confirm(&self) {
        if let Some(state) = self.0.state().as_mut() {
            state.confirmed = std::time::Instant::now();
        }
    }

    pub fn lose(&self) {
        if let Some(state) = self.0.state().as_mut() {
            state.lost = true;
        }
    }
}

impl Fence {
    fn state(&self) -> std::sync::MutexGuard<'_, Option<LeaseState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why writing `key` is refused now, if it is.
    fn refusal(&self, key: &str) -> Option<String> {
        let state = self.state();
        let lease = state.as_ref()?;
        if key == lease.lock_key {
            return None;
        }
        if lease.lost {
            return Some(
                "the writer lock was taken over by another writer; run again once it is done"
                    .into(),
            );
        }
        let age = lease.confirmed.elapsed();
        (age > crate::lock::FENCE_AFTER).then(|| {
            format!(
                "the writer lock's lease was last confirmed {}s ago (its heartbeat failed); \
                 another writer may take it over, so this one stops writing",
                age.as_secs()
            )
        })
    }
}

/// A warehouse root. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Warehouse {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        fence: Fence,
    },
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Warehouse {
    /// Opens the warehouse at `location`; builds the S3 client only for an `s3://` location.
    pub async fn open(location: &Location, aws: &AwsClients) -> Warehouse {
        match location {
            Location::Local(root) => Warehouse::Local { root: root.clone() },
            Location::S3 { bucket, prefix } => Warehouse::S3 {
                client: aws.s3().await,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                fence: Fence::default(),
            },
        }
    }

    /// A warehouse rooted at `folder` inside this one (a scratch area with its own tables and
    /// state, such as a comparison's).
    pub fn sub(&self, folder: &str) -> Warehouse {
        let folder = folder.trim_matches('/');
        match self {
            Warehouse::Local { root } => Warehouse::Local {
                root: root.join(folder),
            },
            Warehouse::S3 {
                client,
                bucket,
                prefix,
                fence,
            } => Warehouse::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    folder.to_string()
                } else {
                    format!("{prefix}/{folder}")
                },
                fence: fence.clone(),
            },
        }
    }

    /// The warehouse root as a user writes it.
    pub fn root_uri(&self) -> String {
        match self {
            Warehouse::Local { root } => root.display().to_string(),
            Warehouse::S3 { bucket, prefix, .. } => crate::config::s3_uri(bucket, prefix),
        }
    }

    /// The full URI of `key`, for messages and lineage.
    pub fn uri(&self, key: &str) -> String {
        match self {
            Warehouse::Local { root } => root.join(key).display().to_string(),
            Warehouse::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.s3_key(key)),
        }
    }

    /// S3: from now on `put` and `delete` write only while the lease of the writer lock at
    /// `lock_key` is confirmed (the returned [`Lease`]'s heartbeat) and not lost.
    pub fn fence_with(&self, lock_key: &str) -> Lease {
        let fence = match self {
            Warehouse::S3 { fence, .. } => fence.clone(),
            Warehouse::Local { .. } => Fence::default(),
        };
        *fence.state() = Some(LeaseState {
            lock_key: lock_key.to_string(),
            confirmed: std::time::Instant::now(),
            lost: false,
        });
        Lease(fence)
    }

    /// Ends the fencing (the lock was released).
    pub fn unfence(&self) {
        if let Warehouse::S3 { fence, .. } = self {
            *fence.state() = None;
        }
    }

    /// Refuses a write to `key` while the writer lease is lost or unconfirmed.
    fn fenced(&self, key: &str) -> Result<(), WarehouseError> {
        match self {
            Warehouse::S3 { fence, .. } => match fence.refusal(key) {
                None => Ok(()),
                Some(reason) => Err(WarehouseError::Fenced {
                    uri: self.uri(key),
                    reason,
                }),
            },
            Warehouse::Local { .. } => Ok(()),
        }
    }

    /// The local folder of the warehouse, if it is local.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Warehouse::Local { root } => Some(root),
            Warehouse::S3 { .. } => None,
        }
    }

    fn s3_key(&self, key: &str) -> String {
        match self {
            Warehouse::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{key}"),
            _ => key.to_string(),
        }
    }

    /// Writes `body` at `key` atomically, replacing what was there.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), WarehouseError> {
        match self {
            Warehouse::Local { root } => {
                let path = root.join(key);
                let io = |source| WarehouseError::Io {
                    op: "write",
                    uri: path.display().to_string(),
                    source,
                };
                let dir = path.parent().unwrap_or(root);
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
                let temp = dir.join(format!(
                    ".{name}.tmp-{}-{}",
                    std::process::id(),
                    TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                // Durable before visible: the data reaches the disk before the rename makes it
                // the part, and the rename reaches it before `put` returns (a power cut leaves
                // the old part or the new one, never an empty file under the part's name).
                let (target, folder) = (path.clone(), dir.to_path_buf());
                let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::io::Write;
                    let result = (|| {
                        let mut file = std::fs::File::create(&temp)?;
                        file.write_all(&body)?;
                        file.sync_all()?;
                        std::fs::rename(&temp, &target)?;
                        // The folder's entry; not every platform can open a folder to sync it.
                        if let Ok(folder) = std::fs::File::open(&folder) {
                            let _ = folder.sync_all();
                        }
                        Ok(())
                    })();
                    if result.is_err() {
                        let _ = std::fs::remove_file(&temp);
                    }
                    result
                })
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
                written.map_err(io)
            }
            Warehouse::S3 { client, bucket, .. } => {
                self.fenced(key)?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(self.s3_key(key))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| WarehouseError::S3 {
                        op: "write",
                        uri: self.uri(key),
                        message: sdk_error_text(&e),
                    })?;
                Ok(())
            }
        }
    }

    /// Reads `key`; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WarehouseError> {
        match self {
            Warehouse::Local { root } => match tokio::fs::read(root.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(WarehouseError::Io {
                    op: "read",
                    uri: self.uri(key),
                    source,
                }),
            },
            Warehouse::S3 { client, bucket, .. } => {
                let result = client
                    .get_object()
                    .bucket(bucket)
                    .key(self.s3_key(key))
                    .send()
                    .await;
                let output = match result {
                    Ok(output) => output,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(WarehouseError::S3 {
                            op: "read",
                            uri: self.uri(key),
                            message: sdk_error_text(&e),
                        });
                    }
                };
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| WarehouseError::S3 {
                        op: "read",
                        uri: self.uri(key),
                        message: e.to_string(),
                    })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
        }
    }

    /// S3 only: reads `key` with its ETag; `None` when it does not exist (or the warehouse is
    /// local, where locks use the file system's own).
    pub async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, WarehouseError> {
        let Warehouse::S3 { client, bucket, .. } = self else {
            return Ok(None);
        };
        let fail = |message: String| WarehouseError::S3 {
            op: "read",
            uri: self.uri(key),
            message,
        };
        let output = match client
            .get_object()
            .bucket(bucket)
            .key(self.s3_key(key))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(fail(sdk_error_text(&e))),
        };
        let etag = output.e_tag().unwrap_or_default().to_string();
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some((bytes.into_bytes().to_vec(), etag)))
    }

    /// S3 only: writes `key` if it does not exist (`expected` = `None`) or still has the ETag
    /// `expected`; the new ETag, or `None` when the condition failed.
    pub async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<Option<String>, WarehouseError> {
        let Warehouse::S3 { client, bucket, .. } = self else {
            return Err(WarehouseError::S3 {
                op: "write conditionally",
                uri: self.uri(key),
                message: "conditional writes are for S3 warehouses".into(),
            });
        };
        let request = client
            .put_object()
            .bucket(bucket)
            .key(self.s3_key(key))
            .body(ByteStream::from(body));
        let request = match expected {
            None => request.if_none_match("*"),
            Some(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(Some(output.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if matches!(status, Some(412 | 409 | 404)) {
                    Ok(None)
                } else {
                    Err(WarehouseError::S3 {
                        op: "write conditionally",
                        uri: self.uri(key),
                        message: sdk_error_text(&e),
                    })
                }
            }
        }
    }

    /// Deletes `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), WarehouseError> {
        match self {
            Warehouse::Local { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(WarehouseError::Io {
                    op: "delete",
                    uri: self.uri(key),
                    source,
                }),
            },
            Warehouse::S3 { client, bucket, .. } => {
                self.fenced(key)?;
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(self.s3_key(key))
                    .send()
                    .await
                    .map_err(|e| WarehouseError::S3 {
                        op: "delete",
                        uri: self.uri(key),
                        message: sdk_error_text(&e),
                    })?;
                Ok(())
            }
        }
    }

    /// S3 only: deletes `key` if it still has the ETag `expected` (read, compared, then deleted
    /// with `If-Match`); what is not there or changed is left alone.
    pub async fn delete_if(&self, key: &str, expected: &str) -> Result<(), WarehouseError> {
        let Warehouse::S3 { client, bucket, .. } = self else {
            return self.delete(key).await;
        };
        match self.get_tagged(key).await? {
            Some((_, etag)) if etag == expected => {}
            _ => return Ok(()),
        }
        match client
            .delete_object()
            .bucket(bucket)
            .key(self.s3_key(key))
            .if_match(expected)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(412 | 404)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(WarehouseError::S3 {
                op: "delete",
                uri: self.uri(key),
                message: sdk_error_text(&e),
            }),
        }
    }

    /// Every key under `prefix` (a folder such as `captures/`), sorted; temp files excluded.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, WarehouseError> {
        let mut keys = Vec::new();
        match self {
            Warehouse::Local { root } => {
                let start = root.join(prefix);
                let root = root.clone();
                keys = tokio::task::spawn_blocking(move || {
                    let mut keys = Vec::new();
                    walk_local(&root, &start, &mut keys).map(|()| keys)
                })
                .await
                .map_err(|e| WarehouseError::Io {
                    op: "list",
                    uri: self.uri(prefix),
                    source: std::io::Error::other(e),
                })?
                .map_err(|source| WarehouseError::Io {
                    op: "list",
                    uri: self.uri(prefix),
                    source,
                })?;
            }
            Warehouse::S3 { client, bucket, .. } => {
                let full = self.s3_key(prefix);
                let strip = self.s3_key("");
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| WarehouseError::S3 {
                        op: "list",
                        uri: self.uri(prefix),
                        message: sdk_error_text(&e),
                    })?;
                    for object in page.contents() {
                        if let Some(key) = object.key() {
                            keys.push(key.strip_prefix(&strip).unwrap_or(key).to_string());
                        }
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn walk_local(root: &Path, dir: &Path, keys: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk_local(root, &path, keys)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
            keys.push(parts.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_or_stale_lease_refuses_writes_but_not_the_lock_itself() {
        let fence = Fence::default();
        assert_eq!(fence.refusal("data/x"), None, "no lease: no fencing");
        *fence.state() = Some(LeaseState {
            lock_key: "state/locks/writer.json".into(),
            confirmed: std::time::Instant::now(),
            lost: false,
        });
        let lease = Lease(fence.clone());
        assert_eq!(fence.refusal("data/x"), None);
        lease.lose();
        assert!(fence.refusal("data/x").unwrap().contains("taken over"));
        assert_eq!(fence.refusal("state/locks/writer.json"), None);
        // Confirmed long ago: past the fence, though not known to be lost.
        *fence.state() = Some(LeaseState {
            lock_key: "state/locks/writer.json".into(),
            confirmed: std::time::Instant::now()
                - crate::lock::FENCE_AFTER
                - std::time::Duration::from_secs(1),
            lost: false,
        });
        assert!(fence.refusal("data/x").unwrap().contains("last confirmed"));
        lease.confirm();
        assert_eq!(fence.refusal("data/x"), None);
    }

    #[tokio::test]
    async fn local_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::Local {
            root: dir.path().to_path_buf(),
        };
        wh.put("a/b=1/x.parquet", b"one".to_vec()).await.unwrap();
        wh.put("a/b=1/x.parquet", b"two".to_vec()).await.unwrap();
        wh.put("a/c.json", b"{}".to_vec()).await.unwrap();
        assert_eq!(wh.get("a/b=1/x.parquet").await.unwrap().unwrap(), b"two");
        assert_eq!(wh.get("missing").await.unwrap(), None);
        assert_eq!(
            wh.list("a/").await.unwrap(),
            vec!["a/b=1/x.parquet".to_string(), "a/c.json".to_string()]
        );
        // no temp file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b=1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        wh.delete("a/c.json").await.unwrap();
        wh.delete("a/c.json").await.unwrap();
        assert_eq!(
            wh.list("").await.unwrap(),
            vec!["a/b=1/x.parquet".to_string()]
        );
    }
}
