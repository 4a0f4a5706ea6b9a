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
            } => Warehouse::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    folder.to_string()
                } else {
                    format!("{prefix}/{folder}")
                },
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
                if let Err(e) = tokio::fs::write(&temp, &body).await {
                    let _ = tokio::fs::remove_file(&temp).await;
                    return Err(io(e));
                }
                tokio::fs::rename(&temp, &path).await.map_err(io)
            }
            Warehouse::S3 { client, bucket, .. } => {
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
