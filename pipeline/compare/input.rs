//! The two sides of a comparison from files: JSON lines or Parquet of plain records, one reply
//! per prompt. Fields: `prompt` (or `instruction`, AlpacaEval's name), `response` (or `output`),
//! and optionally `id`, `latency_ms`, `cost_usd`. Records are matched by the sha256 of their
//! prompt text; a line that is not such a record is reported with its file and line, never
//! dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::util::sha256_hex;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Warehouse(#[from] crate::warehouse::WarehouseError),
    #[error(
        "model `{model}` has no captures in {window}; hint: `evalwatch ingest` first, or check \
         the name (models are the `model=` folders of `captures/`)"
    )]
    NoCaptures { model: String, window: String },
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "`{path}` has no usable record ({bad} bad lines); each needs `prompt` (or `instruction`) \
         and `response` (or `output`)"
    )]
    Empty { path: PathBuf, bad: usize },
}

/// One reply to one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: Option<String>,
    pub prompt: String,
    pub response: String,
    pub latency_ms: Option<f64>,
    pub cost_usd: Option<f64>,
}

impl Record {
    /// What pairs records of the two sides: the prompt's sha256.
    pub fn prompt_hash(&self) -> String {
        sha256_hex(self.prompt.as_bytes())
    }
}

/// A side's records by prompt hash, and what could not be used.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub records: BTreeMap<String, Record>,
    /// `file:line: reason`, for every line that is not a usable record.
    pub rejected: Vec<String>,
    /// Records whose prompt appeared earlier in the same file (the first one is used).
    pub duplicates: usize,
}

fn field<'a>(value: &'a serde_json::Value, names: &[&str]) -> Option<&'a serde_json::Value> {
    names.iter().find_map(|n| value.get(*n))
}

fn record(value: &serde_json::Value) -> Result<Record, String> {
    let text = |names: &[&str]| -> Result<String, String> {
        match field(value, names) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("`{}` is not text: {other}", names[0])),
            None => Err(format!("no `{}` field", names.join("` or `"))),
        }
    };
    let number = |name: &str| value.get(name).and_then(|v| v.as_f64());
    Ok(Record {
        id: value.get("id").and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        prompt: text(&["prompt", "instruction"])?,
        response: text(&["response", "output"])?,
        latency_ms: number("latency_ms"),
        cost_usd: number("cost_usd"),
    })
}

fn add(side: &mut Side, r: Record) {
    match side.records.entry(r.prompt_hash()) {
        std::collections::btree_map::Entry::Occupied(_) => side.duplicates += 1,
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(r);
        }
    }
}

/// Reads one side: `.parquet` as a table, anything else as JSON lines (or one JSON array).
pub fn read(path: &Path) -> Result<Side, InputError> {
    let fail = |message: String| InputError::Read {
        path: path.to_path_buf(),
        message,
    };
    let mut side = Side::default();
    if path.extension().is_some_and(|e| e == "parquet") {
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let df = ParquetReader::new(file)
            .finish()
            .map_err(|e| fail(e.to_string()))?;
        let column = |names: &[&str]| -> Option<StringChunked> {
            names
                .iter()
                .find_map(|n| df.column(n).ok()?.str().ok().cloned())
        };
        let number = |name: &str| -> Option<Float64Chunked> {
            df.column(name)
                .ok()?
                .cast(&DataType::Float64)
                .ok()?
                .f64()
                .ok()
                .cloned()
        };
        let (Some(prompts), Some(responses)) = (
            column(&["prompt", "instruction"]),
            column(&["response", "output"]),
        ) else {
            return Err(fail(
                "needs a `prompt` (or `instruction`) and a `response` (or `output`) text column"
                    .into(),
            ));
        };
        let ids = column(&["id"]);
        let (latency, cost) = (number("latency_ms"), number("cost_usd"));
        for i in 0..df.height() {
            match (prompts.get(i), responses.get(i)) {
                (Some(p), Some(r)) => add(
                    &mut side,
                    Record {
                        id: ids.as_ref().and_then(|c| c.get(i)).map(str::to_string),
                        prompt: p.to_string(),
                        response: r.to_string(),
                        latency_ms: latency.as_ref().and_then(|c| c.get(i)),
                        cost_usd: cost.as_ref().and_then(|c| c.get(i)),
                    },
                ),
                _ => side.rejected.push(format!(
                    "{}: row {}: null prompt or response",
                    path.display(),
                    i + 1
                )),
            }
        }
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        if text.trim_start().starts_with('[') {
            let values: Vec<serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| fail(format!("not a JSON array: {e}")))?;
            for (i, v) in values.iter().enumerate() {
                match record(v) {
                    Ok(r) => add(&mut side, r),
                    Err(reason) => {
                        side.rejected
                            .push(format!("{}: item {}: {reason}", path.display(), i + 1))
                    }
                }
            }
        } else {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed: Result<serde_json::Value, String> =
                    serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"));
                match parsed.and_then(|v| record(&v)) {
                    Ok(r) => add(&mut side, r),
                    Err(reason) => {
                        side.rejected
                            .push(format!("{}:{}: {reason}", path.display(), i + 1))
                    }
                }
            }
        }
    }
    if side.records.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
            bad: side.rejected.len(),
        });
    }
    Ok(side)
}

/// One side from the warehouse: the captures of `model` on the days of `window` (a prompt asked
/// more than once counts once, its first capture).
pub async fn from_warehouse(
    warehouse: &crate::warehouse::Warehouse,
    model: &str,
    window: crate::config::DateRange,
) -> Result<Side, InputError> {
    let prefix = format!("captures/model={}/", crate::util::partition_value(model));
    let mut side = Side::default();
    for key in warehouse.list(&prefix).await? {
        let Some(part) = crate::table::PartKey::parse(&key) else {
            continue;
        };
        if !part.date().is_some_and(|d| window.contains(d)) {
            continue;
        }
        let Some(bytes) = warehouse.get(&key).await? else {
            continue;
        };
        let fail = |e: PolarsError| InputError::Read {
            path: PathBuf::from(warehouse.uri(&key)),
            message: e.to_string(),
        };
        let df = crate::table::read_part(
            bytes,
            &part,
            &[
                ("request_id", DataType::String),
                ("prompt", DataType::String),
                ("response", DataType::String),
                ("latency_ms", DataType::Float64),
            ],
        )
        .map_err(fail)?;
        let text = |n: &str| df.column(n).and_then(|c| c.str().cloned()).map_err(fail);
        let (ids, prompts, responses) = (text("request_id")?, text("prompt")?, text("response")?);
        let latency = df
            .column("latency_ms")
            .and_then(|c| c.f64().cloned())
            .map_err(fail)?;
        for i in 0..df.height() {
            if let (Some(p), Some(r)) = (prompts.get(i), responses.get(i)) {
                add(
                    &mut side,
                    Record {
                        id: ids.get(i).map(str::to_string),
                        prompt: p.to_string(),
                        response: r.to_string(),
                        latency_ms: latency.get(i),
                        cost_usd: None,
                    },
                );
            }
        }
    }
    if side.records.is_empty() {
        return Err(InputError::NoCaptures {
            model: model.to_string(),
            window: window.to_string(),
        });
    }
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_with_either_field_names_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("side.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"id\": 1, \"prompt\": \"hi\", \"response\": \"hello\", \"latency_ms\": 120}\n",
                "{\"instruction\": \"sum 2+2\", \"output\": \"4\"}\n",
                "not json\n",
                "{\"prompt\": \"hi\", \"response\": \"again\"}\n",
                "{\"prompt\": \"x\"}\n",
            ),
        )
        .unwrap();
        let side = read(&path).unwrap();
        assert_eq!(side.records.len(), 2);
        assert_eq!(side.duplicates, 1);
        assert_eq!(side.rejected.len(), 2);
        assert!(
            side.rejected[0].contains("side.jsonl:3: not JSON"),
            "{:?}",
            side.rejected
        );
        assert!(side.rejected[1].contains(":5: no `response` or `output` field"));
        let hi = &side.records[&sha256_hex(b"hi")];
        assert_eq!(hi.response, "hello");
        assert_eq!(hi.id.as_deref(), Some("1"));
        assert_eq!(hi.latency_ms, Some(120.0));
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "nope\n").unwrap();
        assert!(matches!(
            read(&empty),
            Err(InputError::Empty { bad: 1, .. })
        ));
    }
}
