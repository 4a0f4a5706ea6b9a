//! Capture sources: a local folder tree or an S3 prefix, listed lazily (page by page, folder by
//! folder) and read as streams.
//!
//! With a date window, folders whose path names dates outside it (`.../yyyy/mm/dd/hh/`, the
//! SageMaker layout) are never listed: on S3 the walk goes folder by folder with a `/` delimiter
//! until it reaches a day inside the window, then lists that day flat.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use chrono::NaiveDate;
use tokio::sync::mpsc;

use crate::aws::sdk_error_text;
use crate::config::DateRange;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot list `{uri}`: {message}")]
    List { uri: String, message: String },
    #[error("cannot read `{uri}`: {message}")]
    Read { uri: String, message: String },
}

/// One capture object (file) found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Full URI: a local path or `s3://bucket/key`.
    pub uri: String,
    /// Path relative to the source root, `/`-separated.
    pub rel: String,
    pub size: u64,
    /// What changes when the content does: the S3 ETag, or the local modification time.
    pub version: String,
}

/// Why a body a record points to was not read.
#[derive(Debug)]
pub enum BodyError {
    /// It cannot be read from here, or is not there: the line is quarantined with this.
    Unreadable(String),
    /// The transfer failed: the object is read again.
    Transient(String),
}

#[derive(Debug, Clone)]
pub enum Source {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

/// Where the SageMaker layout puts things: `<endpoint>/<component>/yyyy/mm/dd/hh/<file>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathInfo {
    pub endpoint: Option<String>,
    pub component: Option<String>,
    pub date: Option<NaiveDate>,
}

/// Reads the SageMaker layout from a relative path, where it is one.
pub fn path_info(rel: &str) -> PathInfo {
    let segments: Vec<&str> = rel.split('/').collect();
    // The file name is last; the four date-and-hour folders come right before it.
    if segments.len() < 5 {
        return PathInfo::default();
    }
    let n = segments.len();
    let (y, m, d, h) = (
        segments[n - 5],
        segments[n - 4],
        segments[n - 3],
        segments[n - 2],
    );
    let numeric = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !(numeric(y, 4) && numeric(m, 2) && numeric(d, 2) && numeric(h, 2)) {
        return PathInfo {
            date: date_prefix(&segments[..n - 1]).map(|(since, _)| since),
            ..PathInfo::default()
        };
    }
    let date = NaiveDate::from_ymd_opt(
        y.parse().unwrap_or(0),
        m.parse().unwrap_or(0),
        d.parse().unwrap_or(0),
    );
    let (endpoint, component) = if n >= 7 {
        (Some(segments[n - 7]), Some(segments[n - 6]))
    } else if n == 6 {
        (None, Some(segments[n - 6]))
    } else {
        (None, None)
    };
    PathInfo {
        endpoint: endpoint.map(str::to_string),
        component: component.map(str::to_string),
        date,
    }
}

/// The folder that holds an object's capture day, and that day: for the SageMaker layout the
/// path before `yyyy/mm/dd/hh/`, otherwise the object's own folder; the date its path names.
/// Objects of one (folder, day) are listed one after another, so the ingest manifest keeps
/// one file per (folder, day).
pub fn day_folder(path: &str) -> (String, Option<NaiveDate>) {
    let segments: Vec<&str> = path.split('/').collect();
    let n = segments.len();
    let numeric = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let hourly = n >= 5
        && numeric(segments[n - 5], 4)
        && numeric(segments[n - 4], 2)
        && numeric(segments[n - 3], 2)
        && numeric(segments[n - 2], 2);
    let keep = if hourly { n - 5 } else { n.saturating_sub(1) };
    (segments[..keep].join("/"), path_info(path).date)
}

/// The dates a folder path can hold, judged by a `yyyy[/mm[/dd]]` run in its segments:
/// `Some((first, last))`, or `None` when the path names no date.
fn date_prefix(segments: &[&str]) -> Option<(NaiveDate, NaiveDate)> {
    let numeric = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let start = segments
        .iter()
        .position(|s| numeric(s, 4) && (1970..=2200).contains(&s.parse::<i32>().unwrap_or(0)))?;
    let year: i32 = segments[start].parse().ok()?;
    let month = segments
        .get(start + 1)
        .filter(|s| numeric(s, 2))
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|m| (1..=12).contains(m));
    let day = month.and_then(|_| {
        segments
            .get(start + 2)
            .filter(|s| numeric(s, 2))
            .and_then(|s| s.parse::<u32>().ok())
    });
    match (month, day) {
        (None, _) => Some((
            NaiveDate::from_ymd_opt(year, 1, 1)?,
            NaiveDate::from_ymd_opt(year, 12, 31)?,
        )),
        (Some(m), None) => {
            let first = NaiveDate::from_ymd_opt(year, m, 1)?;
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, m + 1, 1)?
            };
            Some((first, next.pred_opt()?))
        }
        (Some(m), Some(d)) => {
            let day = NaiveDate::from_ymd_opt(year, m, d)?;
            Some((day, day))
        }
    }
}

/// Whether a file name is a capture file this stage reads.
fn is_capture_file(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".jsonl")
            || name.ends_with(".jsonl.gz")
            || name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".ndjson"))
}

/// How a folder relates to the window.
enum Prune {
    /// Names no date, or dates partly inside: look inside.
    Descend,
    /// A single day inside the window: everything below is wanted.
    Inside,
    /// All its dates are outside: skip it unlisted.
    Outside,
}

fn prune(rel_dir: &str, window: &DateRange) -> Prune {
    let segments: Vec<&str> = rel_dir.split('/').filter(|s| !s.is_empty()).collect();
    match date_prefix(&segments) {
        None => Prune::Descend,
        Some((first, last)) => {
            let span = DateRange {
                since: first,
                until: last,
            };
            if !span.intersects(window) {
                Prune::Outside
            } else if window.covers(&span) && first == last {
                Prune::Inside
            } else {
                Prune::Descend
            }
        }
    }
}

impl Source {
    /// The source root as a user writes it.
    pub fn root_uri(&self) -> String {
        match self {
            Source::Local { root } => root.display().to_string(),
            Source::S3 { bucket, prefix, .. } => crate::config::s3_uri(bucket, prefix),
        }
    }

    /// Sends every capture object under the source (pruned by `window`) to `tx`, as it is found.
    /// Stops early, without error, when the receiver is gone.
    pub async fn walk(
        &self,
        window: Option<DateRange>,
        tx: mpsc::Sender<ObjectRef>,
    ) -> Result<(), SourceError> {
        match self {
            Source::Local { root } => {
                let root = root.clone();
                let uri = self.root_uri();
                tokio::task::spawn_blocking(move || {
                    if !root.is_dir() {
                        return Err(SourceError::List {
                            uri,
                            message: "no such folder".into(),
                        });
                    }
                    walk_local(&root, &root, window.as_ref(), &tx)
                })
                .await
                .map_err(|e| SourceError::List {
                    uri: self.root_uri(),
                    message: e.to_string(),
                })?
            }
            Source::S3 {
                client,
                bucket,
                prefix,
            } => {
                let root = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                let walker = S3Walker {
                    client,
                    bucket,
                    root: &root,
                    tx: &tx,
                };
                match window {
                    None => walker.list_flat(&root).await,
                    Some(window) => walker.walk(&window).await,
                }
            }
        }
    }

    /// Opens an object for reading on a blocking thread, decompressing gzip (detected by its
    /// magic bytes). `handle` drives the S3 stream underneath.
    /// The bytes of an object a record points to (a Bedrock body kept apart): `s3://bucket/key`
    /// through an S3 source's client, a local path from a folder source.
    pub fn read_body(
        &self,
        path: &str,
        handle: &tokio::runtime::Handle,
    ) -> Result<Vec<u8>, BodyError> {
        match (self, path.strip_prefix("s3://")) {
            (Source::S3 { client, .. }, Some(rest)) => {
                let (bucket, key) = rest
                    .split_once('/')
                    .ok_or_else(|| BodyError::Unreadable(format!("`{path}` names no key")))?;
                let output =
                    match handle.block_on(client.get_object().bucket(bucket).key(key).send()) {
                        Ok(output) => output,
                        Err(e) => {
                            let text = sdk_error_text(&e);
                            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                            return Err(if missing {
                                BodyError::Unreadable(format!("`{path}` is not there: {text}"))
                            } else {
                                BodyError::Transient(format!("cannot read `{path}`: {text}"))
                            });
                        }
                    };
                handle
                    .block_on(output.body.collect())
                    .map(|b| b.into_bytes().to_vec())
                    .map_err(|e| BodyError::Transient(format!("cannot read `{path}`: {e}")))
            }
            (Source::Local { .. }, Some(_)) => Err(BodyError::Unreadable(format!(
                "the body is in `{path}`, which a local source cannot read: ingest from the \
                 bucket (`s3://...`)"
            ))),
            (_, None) => std::fs::read(path)
                .map_err(|e| BodyError::Unreadable(format!("cannot read `{path}`: {e}"))),
        }
    }

    pub fn open_blocking(
        &self,
        object: &ObjectRef,
        handle: &tokio::runtime::Handle,
    ) -> Result<Box<dyn BufRead + Send>, SourceError> {
        let read_err = |message: String| SourceError::Read {
            uri: object.uri.clone(),
            message,
        };
        let raw: Box<dyn Read + Send> = match self {
            Source::Local { root } => {
                let file = std::fs::File::open(root.join(&object.rel))
                    .map_err(|e| read_err(e.to_string()))?;
                Box::new(file)
            }
            Source::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = if prefix.is_empty() {
                    object.rel.clone()
                } else {
                    format!("{prefix}/{}", object.rel)
                };
                let output = handle
                    .block_on(client.get_object().bucket(bucket).key(&key).send())
                    .map_err(|e| read_err(sdk_error_text(&e)))?;
                let reader = output.body.into_async_read();
                Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
                    reader,
                    handle.clone(),
                ))
            }
        };
        let mut buffered = BufReader::with_capacity(256 * 1024, raw);
        let head = buffered.fill_buf().map_err(|e| read_err(e.to_string()))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
            Ok(Box::new(BufReader::with_capacity(256 * 1024, decoder)))
        } else {
            Ok(Box::new(buffered))
        }
    }
}

fn walk_local(
    root: &std::path::Path,
    dir: &std::path::Path,
    window: Option<&DateRange>,
    tx: &mpsc::Sender<ObjectRef>,
) -> Result<(), SourceError> {
    let list_err = |e: std::io::Error| SourceError::List {
        uri: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(list_err)?
        .collect::<Result<_, _>>()
        .map_err(list_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map(|p| {
                p.iter()
                    .map(|s| s.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|_| name.clone());
        let file_type = entry.file_type().map_err(list_err)?;
        if file_type.is_dir() {
            if let Some(window) = window
                && matches!(prune(&rel, window), Prune::Outside)
            {
                continue;
            }
            walk_local(root, &path, window, tx)?;
        } else if is_capture_file(&name) {
            if let Some(window) = window
                && let Some(date) = path_info(&rel).date
                && !window.contains(date)
            {
                continue;
            }
            let meta = entry.metadata().map_err(list_err)?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let object = ObjectRef {
                uri: path.display().to_string(),
                rel,
                size: meta.len(),
                version: format!("mtime:{mtime}"),
            };
            if tx.blocking_send(object).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

struct S3Walker<'a> {
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    /// The source prefix with its trailing `/`, or empty.
    root: &'a str,
    tx: &'a mpsc::Sender<ObjectRef>,
}

impl S3Walker<'_> {
    fn list_err(&self, prefix: &str, e: String) -> SourceError {
        SourceError::List {
            uri: format!("s3://{}/{}", self.bucket, prefix),
            message: e,
        }
    }

    /// Sends the object if it is a capture file; `false` when the receiver is gone.
    async fn send(&self, object: &aws_sdk_s3::types::Object) -> bool {
        let Some(key) = object.key() else {
            return true;
        };
        let name = key.rsplit('/').next().unwrap_or(key);
        if !is_capture_file(name) {
            return true;
        }
        let rel = key.strip_prefix(self.root).unwrap_or(key).to_string();
        let object = ObjectRef {
            uri: format!("s3://{}/{}", self.bucket, key),
            rel,
            size: object.size().unwrap_or(0).max(0) as u64,
            version: format!(
                "etag:{}",
                object.e_tag().unwrap_or_default().trim_matches('"')
            ),
        };
        self.tx.send(object).await.is_ok()
    }

    /// Everything under `prefix`, page by page (ListObjectsV2 returns at most 1,000 keys a page).
    async fn list_flat(&self, prefix: &str) -> Result<(), SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.list_err(prefix, sdk_error_text(&e)))?;
            for object in page.contents() {
                if !self.send(object).await {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Folder by folder, skipping folders whose dates fall outside `window`.
    async fn walk(&self, window: &DateRange) -> Result<(), SourceError> {
        let mut stack = vec![self.root.to_string()];
        while let Some(prefix) = stack.pop() {
            let mut folders = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(self.bucket)
                .prefix(&prefix)
                .delimiter("/")
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.list_err(&prefix, sdk_error_text(&e)))?;
                for object in page.contents() {
                    let in_window = object
                        .key()
                        .and_then(|k| path_info(k.strip_prefix(self.root).unwrap_or(k)).date)
                        .is_none_or(|date| window.contains(date));
                    if in_window && !self.send(object).await {
                        return Ok(());
                    }
                }
                for common in page.common_prefixes() {
                    if let Some(p) = common.prefix() {
                        folders.push(p.to_string());
                    }
                }
            }
            // Depth-first in key order: push in reverse so the first folder is walked first.
            for folder in folders.into_iter().rev() {
                let rel = folder.strip_prefix(self.root).unwrap_or(&folder);
                match prune(rel, window) {
                    Prune::Outside => {}
                    Prune::Descend => stack.push(folder),
                    Prune::Inside => {
                        // A day inside the window: list it flat, hours and all, in few requests.
                        self.list_flat(&folder).await?;
                        if self.tx.is_closed() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn sagemaker_paths_are_understood() {
        let info = path_info("ep/chat-a/2026/10/03/17/12-30-001-uuid.jsonl");
        assert_eq!(info.endpoint.as_deref(), Some("ep"));
        assert_eq!(info.component.as_deref(), Some("chat-a"));
        assert_eq!(info.date, Some(d(2026, 10, 3)));
        assert_eq!(
            path_info("x/ep/AllTraffic/2026/10/03/17/f.jsonl")
                .component
                .as_deref(),
            Some("AllTraffic")
        );
        assert_eq!(path_info("flat.jsonl"), PathInfo::default());
        assert_eq!(
            path_info("logs/2026/10/05/f.jsonl").date,
            Some(d(2026, 10, 5))
        );
    }

    #[test]
    fn objects_are_grouped_by_folder_and_day() {
        let (folder, date) = day_folder("s3://b/cap/ep/comp/2026/10/01/07/x.jsonl");
        assert_eq!(
            (folder.as_str(), date),
            ("s3://b/cap/ep/comp", Some(d(2026, 10, 1)))
        );
        let (folder, date) = day_folder("/data/flat/x.jsonl");
        assert_eq!((folder.as_str(), date), ("/data/flat", None));
    }

    #[test]
    fn folders_outside_the_window_are_pruned() {
        let window = DateRange::new(d(2026, 10, 2), d(2026, 10, 3)).unwrap();
        assert!(matches!(prune("ep/c", &window), Prune::Descend));
        assert!(matches!(prune("ep/c/2025", &window), Prune::Outside));
        assert!(matches!(prune("ep/c/2026", &window), Prune::Descend));
        assert!(matches!(prune("ep/c/2026/09", &window), Prune::Outside));
        assert!(matches!(prune("ep/c/2026/10", &window), Prune::Descend));
        assert!(matches!(prune("ep/c/2026/10/01", &window), Prune::Outside));
        assert!(matches!(prune("ep/c/2026/10/02", &window), Prune::Inside));
        assert!(matches!(
            prune("ep/c/2026/10/02/05", &window),
            Prune::Inside
        ));
    }

    #[test]
    fn capture_file_names() {
        assert!(is_capture_file("a.jsonl"));
        assert!(is_capture_file("a.jsonl.gz"));
        assert!(!is_capture_file(".a.jsonl"));
        assert!(!is_capture_file("README.md"));
    }
}
