//! People's labels, from JSON lines, CSV or Parquet. Fields: `dimension`, `label` (a level of that
//! dimension's scale: 1-5, 1-10, or 0/1 for a binary one), either `request_id` (a capture in the
//! warehouse) or `prompt` + `response`, and optionally `rater`. A preference between two replies
//! has `prompt` + `response_a` + `response_b` and `label` = `a`, `b` or `tie` (`dimension`
//! optional: the pairwise rubric's first). A row that is not such a label is reported with its
//! file and line (Parquet: row) and left out, never guessed.

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// What a label is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    /// A capture of the warehouse, by request id.
    Capture(String),
    /// A prompt and a reply given in the file.
    Text { prompt: String, response: String },
    /// A prompt and two replies, for a preference between them.
    Pair {
        prompt: String,
        response_a: String,
        response_b: String,
    },
}

impl Item {
    pub fn is_pair(&self) -> bool {
        matches!(self, Item::Pair { .. })
    }
}

/// A preference label as a level: reply A better -1, a tie 0, reply B better 1.
pub const PREFER_A: i64 = -1;
pub const TIE: i64 = 0;
pub const PREFER_B: i64 = 1;

/// One person's label of one item on one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Where it came from, for messages (`file:line`).
    pub at: String,
    pub item: Item,
    /// Empty for a preference that names none (the pairwise rubric's first dimension).
    pub dimension: String,
    /// A level of the dimension's scale; for a pair [`PREFER_A`], [`TIE`] or [`PREFER_B`].
    pub label: i64,
    pub rater: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "`{path}` has no usable label ({bad} bad rows); each needs `dimension`, `label`, and \
         `request_id` or `prompt` + `response`; a preference `prompt`, `response_a`, `response_b` \
         and `label` (`a`, `b` or `tie`)"
    )]
    Empty { path: PathBuf, bad: usize },
}

/// The labels of a file, and `file:line: reason` for every row that is not one.
#[derive(Debug, Default)]
pub struct Labels {
    pub labels: Vec<Label>,
    pub rejected: Vec<String>,
}

/// A row's fields by name, whatever the file format.
trait Row {
    fn text(&self, name: &str) -> Option<String>;
}

impl Row for serde_json::Value {
    fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(u8::from(*b).to_string()),
            _ => None,
        }
    }
}

impl Row for std::collections::HashMap<String, String> {
    fn text(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

fn label_of(row: &dyn Row, at: String) -> Result<Label, String> {
    let dimension = row.text("dimension").filter(|d| !d.trim().is_empty());
    let raw = row.text("label").ok_or("no `label`")?;
    if let (Some(prompt), Some(response_a), Some(response_b)) = (
        row.text("prompt"),
        row.text("response_a"),
        row.text("response_b"),
    ) {
        let label = match raw.trim().to_ascii_lowercase().as_str() {
            "a" | "model_a" | "response_a" => PREFER_A,
            "b" | "model_b" | "response_b" => PREFER_B,
            "tie" => TIE,
            _ => {
                return Err(format!(
                    "`label` = `{raw}` of a pair is not `a`, `b` or `tie` (the better reply)"
                ));
            }
        };
        return Ok(Label {
            at,
            item: Item::Pair {
                prompt,
                response_a,
                response_b,
            },
            dimension: dimension.unwrap_or_default(),
            label,
            rater: row.text("rater"),
        });
    }
    let dimension = dimension.ok_or("no `dimension`")?;
    let label = raw
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.fract() == 0.0 && v.is_finite())
        .map(|v| v as i64)
        .ok_or_else(|| format!("`label` = `{raw}` is not a whole number (a level of the scale)"))?;
    let item = match (
        row.text("request_id"),
        row.text("prompt"),
        row.text("response"),
    ) {
        (Some(id), _, _) if !id.is_empty() => Item::Capture(id),
        (_, Some(prompt), Some(response)) => Item::Text { prompt, response },
        _ => {
            return Err(
                "no `request_id`, and no `prompt` + `response` (or `response_a` + `response_b`)"
                    .into(),
            );
        }
    };
    Ok(Label {
        at,
        item,
        dimension,
        label,
        rater: row.text("rater"),
    })
}

/// Reads `path`: `.parquet`, `.csv`, or JSON lines otherwise.
pub fn read(path: &Path) -> Result<Labels, LabelsError> {
    let fail = |message: String| LabelsError::Read {
        path: path.to_path_buf(),
        message,
    };
    let mut out = Labels::default();
    let mut take = |result: Result<Label, String>, at: String| match result {
        Ok(label) => out.labels.push(label),
        Err(reason) => out.rejected.push(format!("{at}: {reason}")),
    };
    let name = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => {
            let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
            let df = ParquetReader::new(file)
                .finish()
                .map_err(|e| fail(e.to_string()))?;
            let columns: Vec<(String, Column)> = df
                .columns()
                .iter()
                .filter_map(|c| {
                    c.cast(&DataType::String)
                        .ok()
                        .map(|s| (c.name().to_string(), s))
                })
                .collect();
            for i in 0..df.height() {
                let row: std::collections::HashMap<String, String> = columns
                    .iter()
                    .filter_map(|(n, c)| {
                        c.str()
                            .ok()
                            .and_then(|s| s.get(i))
                            .map(|v| (n.clone(), v.to_string()))
                    })
                    .collect();
                let at = format!("{name}: row {}", i + 1);
                take(label_of(&row, at.clone()), at);
            }
        }
        Some("csv") => {
            let mut reader = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
            let headers = reader.headers().map_err(|e| fail(e.to_string()))?.clone();
            for (i, record) in reader.records().enumerate() {
                // Line 1 is the header.
                let at = format!("{name}:{}", i + 2);
                match record {
                    Ok(record) => {
                        let row: std::collections::HashMap<String, String> = headers
                            .iter()
                            .zip(record.iter())
                            .map(|(h, v)| (h.to_string(), v.to_string()))
                            .collect();
                        take(label_of(&row, at.clone()), at);
                    }
                    Err(e) => take(Err(format!("not a CSV record: {e}")), at),
                }
            }
        }
        _ => {
            let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let at = format!("{name}:{}", i + 1);
                let parsed = serde_json::from_str::<serde_json::Value>(line)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(|v| label_of(&v, at.clone()));
                take(parsed, at);
            }
        }
    }
    if out.labels.is_empty() {
        return Err(LabelsError::Empty {
            path: path.to_path_buf(),
            bad: out.rejected.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_and_csv_read_alike_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("l.jsonl");
        std::fs::write(
            &jsonl,
            "{\"request_id\":\"r1\",\"dimension\":\"safety\",\"label\":5,\"rater\":\"a\"}\n\
             {\"prompt\":\"p\",\"response\":\"r\",\"dimension\":\"safety\",\"label\":\"2\"}\n\
             {\"dimension\":\"safety\",\"label\":3}\n\
             {\"request_id\":\"r2\",\"dimension\":\"safety\",\"label\":2.5}\n\
             not json\n",
        )
        .unwrap();
        let labels = read(&jsonl).unwrap();
        assert_eq!(labels.labels.len(), 2);
        assert_eq!(labels.labels[0].item, Item::Capture("r1".into()));
        assert_eq!(labels.labels[0].rater.as_deref(), Some("a"));
        assert_eq!(labels.labels[1].label, 2);
        assert_eq!(labels.rejected.len(), 3);
        assert!(
            labels.rejected[0].contains("l.jsonl:3: no `request_id`, and no `prompt` + `response`")
        );
        assert!(labels.rejected[1].contains(":4: `label` = `2.5` is not a whole number"));
        assert!(labels.rejected[2].contains(":5: not JSON"));

        let csv = dir.path().join("l.csv");
        std::fs::write(
            &csv,
            "request_id,dimension,label,rater\nr1,safety,5,a\nr2,,4,b\n",
        )
        .unwrap();
        let labels = read(&csv).unwrap();
        assert_eq!(labels.labels.len(), 1);
        assert_eq!(labels.labels[0].label, 5);
        assert!(
            labels.rejected[0].contains("l.csv:3: no `dimension`"),
            "{:?}",
            labels.rejected
        );
    }

    #[test]
    fn a_preference_names_the_better_reply() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("p.jsonl");
        std::fs::write(
            &jsonl,
            "{\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"label\":\"B\"}\n\
             {\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"label\":\"model_a\",\"dimension\":\"preference\"}\n\
             {\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"label\":\"tie\"}\n\
             {\"prompt\":\"p\",\"response_a\":\"x\",\"response_b\":\"y\",\"label\":2}\n",
        )
        .unwrap();
        let labels = read(&jsonl).unwrap();
        let got: Vec<(i64, &str)> = labels
            .labels
            .iter()
            .map(|l| (l.label, l.dimension.as_str()))
            .collect();
        assert_eq!(got, [(PREFER_B, ""), (PREFER_A, "preference"), (TIE, "")]);
        assert!(labels.labels.iter().all(|l| l.item.is_pair()));
        assert!(
            labels.rejected[0]
                .contains("p.jsonl:4: `label` = `2` of a pair is not `a`, `b` or `tie`"),
            "{:?}",
            labels.rejected
        );
    }
}
