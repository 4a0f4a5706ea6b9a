//! The judge cache: every judgment an LLM judge returned, so a re-run, a backfill or a resumed
//! crash never pays for the same judgment twice.
//!
//! Layout: `state/judge-cache/<scope>/batch-<micros>-<pid>-<seq>.jsonl`, where `<scope>` is the
//! first 16 hex digits of sha256(rubric hash, judge id, judge params hash), so a run reads only
//! the judgments it can reuse. Each line is one [`CachedJudgment`]; its `key` is
//! sha256(content_hash, rubric hash, judge id, judge params hash) as DESIGN.md defines it.
//!
//! Writes are group commits: a writer task takes whatever judgments finished while the previous
//! batch was being written and writes them as one new object, so on a local disk every judgment is
//! on disk within milliseconds and on S3 batches grow with the load. A crash (even SIGKILL) loses
//! at most the judgments in flight: the calls under way and the answers of the batch being
//! written. (Making each task wait for its batch bounded that by `judge.concurrency` exactly, but
//! cost 4% of throughput at 200 ms latency, so the batch write stays asynchronous.) Objects are never appended to
//! or rewritten; [`compact`] merges many small batches into one at the end of a run.
//!
//! Only `ok` judgments are cached: a call that failed is tried again by the next run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

const ROOT: &str = "state/judge-cache";

/// Batches beyond this many in a scope are merged at the end of a run.
const COMPACT_ABOVE: usize = 16;

/// What one judge call decided about one captured pair, with what it cost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedJudgment {
    pub key: String,
    pub content_hash: String,
    /// Dimension -> level, in rubric order.
    pub levels: Vec<(String, u32)>,
    pub rationales: Vec<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt-cache tokens (none in entries written before prompt caching).
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    pub judged_at: String,
}

impl CachedJudgment {
    /// What a judge call decided, to be cached under `key`.
    pub fn new(
        key: String,
        content_hash: String,
        judgments: &[crate::judge::protocol::Judgment],
        outcome: &super::engine::PairOutcome,
        cost_usd: Option<f64>,
    ) -> CachedJudgment {
        CachedJudgment {
            key,
            content_hash,
            levels: judgments
                .iter()
                .map(|j| (j.dimension.clone(), j.level))
                .collect(),
            rationales: judgments.iter().map(|j| j.rationale.clone()).collect(),
            input_tokens: outcome.input_tokens,
            output_tokens: outcome.output_tokens,
            cache_read_tokens: outcome.cache_read_tokens,
            cache_write_tokens: outcome.cache_write_tokens,
            cost_usd,
            latency_ms: outcome.latency_ms,
            judged_at: chrono::Utc::now().to_rfc3339(),
        }
    }
}

/// Which judgments a cache scope holds.
#[derive(Debug, Clone)]
pub struct Scope {
    pub rubric_hash: String,
    pub judge: String,
    pub params_hash: String,
}

impl Scope {
    pub fn folder(&self) -> String {
        let id = sha256_hex(
            format!("{}\0{}\0{}", self.rubric_hash, self.judge, self.params_hash).as_bytes(),
        );
        format!("{ROOT}/{}", &id[..16])
    }

    /// The cache key of one captured pair.
    pub fn key(&self, content_hash: &str) -> String {
        sha256_hex(
            format!(
                "{content_hash}\0{}\0{}\0{}",
                self.rubric_hash, self.judge, self.params_hash
            )
            .as_bytes(),
        )
    }
}

/// Reads every judgment of a scope. A line that does not parse (a batch cut short by a crash on a
/// file system without atomic renames) is skipped with a warning: its judgment is simply redone.
pub async fn load(
    warehouse: &Warehouse,
    scope: &Scope,
) -> Result<(HashMap<String, CachedJudgment>, Vec<String>), WarehouseError> {
    let keys = warehouse.list(&format!("{}/", scope.folder())).await?;
    let mut entries = HashMap::new();
    let mut batches = Vec::new();
    for key in keys {
        if !key.ends_with(".jsonl") {
            continue;
        }
        let Some(bytes) = warehouse.get(&key).await? else {
            continue;
        };
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<CachedJudgment>(line) {
                Ok(entry) => {
                    entries.insert(entry.key.clone(), entry);
                }
                Err(e) => tracing::warn!(
                    "judge cache: `{}` line {} is unreadable and will be judged again: {e}",
                    warehouse.uri(&key),
                    n + 1
                ),
            }
        }
        batches.push(key);
    }
    Ok((entries, batches))
}

fn batch_name(folder: &str, kind: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{folder}/{kind}-{}-{}-{}.jsonl",
        chrono::Utc::now().timestamp_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn encode(entries: &[CachedJudgment]) -> Vec<u8> {
    let mut body = Vec::new();
    for entry in entries {
        if serde_json::to_writer(&mut body, entry).is_ok() {
            body.push(b'\n');
        }
    }
    body
}

/// The sending side of the writer task.
pub type CacheSender = mpsc::UnboundedSender<CachedJudgment>;

/// What the writer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    pub written: u64,
    pub batches: u64,
    pub failed: u64,
}

/// Starts the group-commit writer; it ends when every sender is dropped, after a last write.
pub fn spawn_writer(
    warehouse: Warehouse,
    scope: &Scope,
) -> (CacheSender, tokio::task::JoinHandle<WriterStats>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<CachedJudgment>();
    let folder = scope.folder();
    let task = tokio::spawn(async move {
        let mut stats = WriterStats::default();
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while let Ok(next) = rx.try_recv() {
                batch.push(next);
            }
            let key = batch_name(&folder, "batch");
            match warehouse.put(&key, encode(&batch)).await {
                Ok(()) => {
                    stats.written += batch.len() as u64;
                    stats.batches += 1;
                }
                Err(e) => {
                    // The judgments still reach `scores/`; only a later re-run would pay again.
                    stats.failed += batch.len() as u64;
                    tracing::warn!("judge cache: cannot write {} judgments: {e}", batch.len());
                }
            }
            batch.clear();
        }
        stats
    });
    (tx, task)
}

/// Merges a scope's batches into one object when there are many, then deletes the merged ones.
/// A crash between the two leaves duplicates, which [`load`] folds together.
pub async fn compact(warehouse: &Warehouse, scope: &Scope) -> Result<(), WarehouseError> {
    let (entries, batches) = load(warehouse, scope).await?;
    if batches.len() <= COMPACT_ABOVE {
        return Ok(());
    }
    let mut all: Vec<CachedJudgment> = entries.into_values().collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    warehouse
        .put(&batch_name(&scope.folder(), "compact"), encode(&all))
        .await?;
    for key in &batches {
        warehouse.delete(key).await?;
    }
    tracing::debug!(
        "judge cache: merged {} batches into one ({} judgments)",
        batches.len(),
        all.len()
    );
    Ok(())
}
