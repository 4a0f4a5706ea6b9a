//! Telemetry from files: CSV (with a header) or Parquet, in the telemetry schema.
//!
//! Columns: `ts` (RFC 3339 or Unix seconds; required), `model` (required), and any of
//! `gpu_util_pct`, `gpu_mem_pct`, `cpu_util_pct`, `invocations`, `errors_5xx`, `model_latency_ms`,
//! `gpus_allocated`, `instance_type`, `period_seconds`, `power_w`, `gpu`. An unknown column is an error naming it (a
//! typo would otherwise silently empty a metric); a row that cannot be read is rejected with its
//! file and line, and counted.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::{Read, Rejected, Sample, TelemetryError};
use crate::schema;

pub const COLUMNS: &[&str] = &[
    schema::telemetry::TS,
    schema::MODEL,
    schema::telemetry::GPU_UTIL_PCT,
    schema::telemetry::GPU_MEM_PCT,
    schema::telemetry::CPU_UTIL_PCT,
    schema::telemetry::INVOCATIONS,
    schema::telemetry::ERRORS_5XX,
    schema::telemetry::MODEL_LATENCY_MS,
    schema::telemetry::GPUS_ALLOCATED,
    schema::telemetry::INSTANCE_TYPE,
    schema::telemetry::PERIOD_SECONDS,
    schema::telemetry::POWER_W,
    schema::telemetry::GPU,
];

/// The files under `path` (itself if a file), sorted.
fn files(path: &Path) -> Result<Vec<PathBuf>, TelemetryError> {
    let fail = |e: std::io::Error| TelemetryError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(fail)? {
            let p = entry.map_err(fail)?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "csv" || e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses a timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix seconds.
pub fn parse_ts(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
            .ok_or_else(|| format!("`{text}` is out of range"));
    }
    Err(format!(
        "`{text}` is not a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix seconds)"
    ))
}

fn set(sample: &mut Sample, column: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    let number = || {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{column}` = `{value}` is not a number"))
    };
    match column {
        schema::telemetry::TS => sample.ts = parse_ts(value)?,
        schema::MODEL => sample.model = value.to_string(),
        schema::telemetry::GPU_UTIL_PCT => sample.gpu_util_pct = Some(number()?),
        schema::telemetry::GPU_MEM_PCT => sample.gpu_mem_pct = Some(number()?),
        schema::telemetry::CPU_UTIL_PCT => sample.cpu_util_pct = Some(number()?),
        schema::telemetry::INVOCATIONS => sample.invocations = Some(number()?),
        schema::telemetry::ERRORS_5XX => sample.errors_5xx = Some(number()?),
        schema::telemetry::MODEL_LATENCY_MS => sample.model_latency_ms = Some(number()?),
        schema::telemetry::GPUS_ALLOCATED => sample.gpus_allocated = Some(number()?),
        schema::telemetry::INSTANCE_TYPE => sample.instance_type = Some(value.to_string()),
        schema::telemetry::PERIOD_SECONDS => sample.period_seconds = Some(number()?),
        schema::telemetry::POWER_W => sample.power_w = Some(number()?),
        schema::telemetry::GPU => sample.gpu = Some(value.to_string()),
        _ => {}
    }
    Ok(())
}

fn check_columns(path: &Path, names: &[String]) -> Result<(), TelemetryError> {
    for name in names {
        if !COLUMNS.contains(&name.as_str()) {
            return Err(TelemetryError::Read {
                path: path.display().to_string(),
                message: format!(
                    "unknown column `{name}`; the telemetry columns are {}",
                    COLUMNS.join(", ")
                ),
            });
        }
    }
    for required in [schema::telemetry::TS, schema::MODEL] {
        if !names.iter().any(|n| n == required) {
            return Err(TelemetryError::Read {
                path: path.display().to_string(),
                message: format!("no `{required}` column"),
            });
        }
    }
    Ok(())
}

/// Files a parsed row: a sample, or a rejection with its location.
fn keep(out: &mut Read, location: String, sample: Sample, parsed: Result<(), String>) {
    match parsed {
        Err(reason) => out.rejected.push(Rejected { location, reason }),
        Ok(()) if sample.model.is_empty() => out.rejected.push(Rejected {
            location,
            reason: "empty `model`".into(),
        }),
        Ok(()) => out.samples.push(sample),
    }
}

fn read_csv(path: &Path, out: &mut Read) -> Result<(), TelemetryError> {
    let fail = |message: String| TelemetryError::Read {
        path: path.display().to_string(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| fail(e.to_string()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fail(e.to_string()))?
        .iter()
        .map(|h| h.to_string())
        .collect();
    check_columns(path, &headers)?;
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let location = format!("{}:{line}", path.display());
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                out.rejected.push(Rejected {
                    location,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if record.len() != headers.len() {
            out.rejected.push(Rejected {
                location,
                reason: format!("{} fields, the header has {}", record.len(), headers.len()),
            });
            continue;
        }
        let mut sample = Sample::default();
        let parsed = headers
            .iter()
            .zip(record.iter())
            .try_for_each(|(h, v)| set(&mut sample, h, v));
        keep(out, location, sample, parsed);
    }
    Ok(())
}

fn read_parquet(path: &Path, out: &mut Read) -> Result<(), TelemetryError> {
    let fail = |message: String| TelemetryError::Read {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| fail(e.to_string()))?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    check_columns(path, &names)?;
    // Every column as text, then through the same parser as CSV.
    let mut texts: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for name in &names {
        let column = df.column(name).map_err(|e| fail(e.to_string()))?;
        let column = match column.dtype() {
            DataType::Datetime(_, _) => column
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .and_then(|c| c.cast(&DataType::Int64))
                .map(|c| {
                    c.i64()
                        .map(|ca| {
                            ca.iter()
                                .map(|v| v.map(|us| format!("{}", us as f64 / 1e6)))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                }),
            _ => column.cast(&DataType::String).map(|c| {
                c.str()
                    .map(|ca| ca.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>())
                    .unwrap_or_default()
            }),
        }
        .map_err(|e| fail(e.to_string()))?;
        texts.push((name.clone(), column));
    }
    for row in 0..df.height() {
        let mut sample = Sample::default();
        let location = format!("{} row {}", path.display(), row + 1);
        let parsed = texts.iter().try_for_each(|(name, values)| {
            set(&mut sample, name, values[row].as_deref().unwrap_or(""))
        });
        keep(out, location, sample, parsed);
    }
    Ok(())
}

/// Reads every telemetry file under `path`.
pub fn read(path: &Path) -> Result<Read, TelemetryError> {
    if !path.exists() {
        return Err(TelemetryError::Read {
            path: path.display().to_string(),
            message: "no such file or folder; check `telemetry.path`".into(),
        });
    }
    let mut out = Read::default();
    for file in files(path)? {
        if file.extension().is_some_and(|e| e == "parquet") {
            read_parquet(&file, &mut out)?;
        } else {
            read_csv(&file, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_and_bad_rows_are_rejected_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "ts,model,gpu_util_pct,invocations\n\
             2026-10-01T00:00:00Z,chat-a,41.5,120\n\
             2026-10-01T00:05:00Z,chat-a,,130\n\
             yesterday,chat-a,40,1\n\
             2026-10-01T00:10:00Z,chat-a,lots,1\n\
             1790000000,chat-b,3,2\n",
        )
        .unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.samples.len(), 3);
        assert_eq!(read.samples[0].gpu_util_pct, Some(41.5));
        assert_eq!(read.samples[1].gpu_util_pct, None);
        assert_eq!(read.samples[2].model, "chat-b");
        assert_eq!(read.rejected.len(), 2);
        assert!(
            read.rejected[0].location.ends_with("t.csv:4"),
            "{:?}",
            read.rejected
        );
        assert!(read.rejected[1].reason.contains("`gpu_util_pct` = `lots`"));
    }

    #[test]
    fn an_unknown_column_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "ts,model,gpu_utl\n2026-10-01T00:00:00Z,a,1\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("unknown column `gpu_utl`"), "{err}");
        assert!(err.contains("t.csv"), "{err}");
    }
}
