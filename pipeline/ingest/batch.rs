//! Column buffers for the `captures` and `quarantine` tables, and their encoding as Parquet.
//!
//! Column names and types here are the table contract of DESIGN.md; `tests/it` reads them back
//! with polars to hold them to it.
//!
//! Partition columns (`model`, `date`) live in the path only, never inside the files: readers
//! (polars, DuckDB, pyarrow) add them from `model=.../date=...`, and pyarrow refuses a column
//! that is both in the file and in the path.

use polars::prelude::*;

use crate::schema;
use crate::table::{text_constant, utc_micros};

use super::decode::Capture;
use super::features;

/// Rows of `captures` for one (model, date) partition.
#[derive(Default)]
pub struct CaptureBatch {
    request_id: Vec<String>,
    inference_id: Vec<Option<String>>,
    endpoint: Vec<Option<String>>,
    variant: Vec<Option<String>>,
    captured_at: Vec<i64>,
    prompt: Vec<String>,
    messages: Vec<Option<String>>,
    response: Vec<String>,
    prompt_tokens: Vec<Option<i32>>,
    completion_tokens: Vec<Option<i32>>,
    latency_ms: Vec<Option<f64>>,
    finish_reason: Vec<Option<String>>,
    payload_model: Vec<Option<String>>,
    source_line: Vec<i64>,
    content_hash: Vec<String>,
    prompt_chars: Vec<i32>,
    response_chars: Vec<i32>,
    refusal: Vec<bool>,
    /// Approximate bytes held, to cut parts before memory grows.
    pub bytes: usize,
}

impl CaptureBatch {
    pub fn len(&self) -> usize {
        self.request_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.request_id.is_empty()
    }

    pub fn push(&mut self, c: Capture, source_line: u64) {
        self.bytes += c.prompt.len()
            + c.response.len()
            + c.messages.as_ref().map_or(0, String::len)
            + c.request_id.len()
            + 160;
        self.prompt_chars.push(features::chars(&c.prompt));
        self.response_chars.push(features::chars(&c.response));
        self.refusal.push(features::is_refusal(&c.response));
        self.request_id.push(c.request_id);
        self.inference_id.push(c.inference_id);
        self.endpoint.push(c.endpoint);
        self.variant.push(c.variant);
        self.captured_at.push(c.captured_at_us);
        self.prompt.push(c.prompt);
        self.messages.push(c.messages);
        self.response.push(c.response);
        self.prompt_tokens.push(c.prompt_tokens);
        self.completion_tokens.push(c.completion_tokens);
        self.latency_ms.push(c.latency_ms);
        self.finish_reason.push(c.finish_reason);
        self.payload_model.push(c.payload_model);
        self.source_line.push(source_line as i64);
        self.content_hash.push(c.content_hash);
    }

    /// The batch as a `captures` frame, every row carrying `source_uri`.
    pub fn into_frame(self, source_uri: &str) -> PolarsResult<DataFrame> {
        let height = self.len();
        DataFrame::new(
            height,
            vec![
                Column::new(schema::captures::REQUEST_ID.into(), self.request_id),
                Column::new(schema::captures::INFERENCE_ID.into(), self.inference_id),
                Column::new(schema::captures::ENDPOINT.into(), self.endpoint),
                Column::new(schema::captures::VARIANT.into(), self.variant),
                utc_micros(schema::captures::CAPTURED_AT, self.captured_at),
                Column::new(schema::captures::PROMPT.into(), self.prompt),
                Column::new(schema::captures::MESSAGES.into(), self.messages),
                Column::new(schema::captures::RESPONSE.into(), self.response),
                Column::new(schema::captures::PROMPT_TOKENS.into(), self.prompt_tokens),
                Column::new(
                    schema::captures::COMPLETION_TOKENS.into(),
                    self.completion_tokens,
                ),
                Column::new(schema::captures::LATENCY_MS.into(), self.latency_ms),
                Column::new(schema::captures::FINISH_REASON.into(), self.finish_reason),
                Column::new(schema::captures::PAYLOAD_MODEL.into(), self.payload_model),
                text_constant(schema::captures::SOURCE_URI, source_uri, height),
                Column::new(schema::captures::SOURCE_LINE.into(), self.source_line),
                Column::new(schema::captures::CONTENT_HASH.into(), self.content_hash),
                Column::new(schema::captures::PROMPT_CHARS.into(), self.prompt_chars),
                Column::new(schema::captures::RESPONSE_CHARS.into(), self.response_chars),
                Column::new(schema::captures::REFUSAL.into(), self.refusal),
            ],
        )
    }
}

/// Rows of `quarantine` for one object.
#[derive(Default)]
pub struct QuarantineBatch {
    source_line: Vec<i64>,
    error: Vec<String>,
    raw: Vec<String>,
    raw_bytes: Vec<i64>,
}

impl QuarantineBatch {
    pub fn len(&self) -> usize {
        self.error.len()
    }

    pub fn is_empty(&self) -> bool {
        self.error.is_empty()
    }

    /// Keeps the first `keep` bytes of a bad line (lossy for bytes that are not UTF-8).
    pub fn push(&mut self, source_line: u64, error: String, raw: &[u8], keep: usize) {
        let text = String::from_utf8_lossy(&raw[..raw.len().min(keep + 4)]);
        self.source_line.push(source_line as i64);
        self.error.push(error);
        self.raw
            .push(crate::util::truncate_utf8(&text, keep).to_string());
        self.raw_bytes.push(raw.len() as i64);
    }

    pub fn into_frame(self, source_uri: &str) -> PolarsResult<DataFrame> {
        let height = self.len();
        DataFrame::new(
            height,
            vec![
                text_constant(schema::quarantine::SOURCE_URI, source_uri, height),
                Column::new(schema::quarantine::SOURCE_LINE.into(), self.source_line),
                Column::new(schema::quarantine::ERROR.into(), self.error),
                Column::new(schema::quarantine::RAW.into(), self.raw),
                Column::new(schema::quarantine::RAW_BYTES.into(), self.raw_bytes),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_quarantine_have_the_schemas_columns() {
        let names = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let df = CaptureBatch::default().into_frame("x").unwrap();
        schema::check("captures", &df, &names(schema::captures::COLUMNS)).unwrap();
        let df = QuarantineBatch::default().into_frame("x").unwrap();
        schema::check("quarantine", &df, &names(schema::quarantine::COLUMNS)).unwrap();
    }
}
