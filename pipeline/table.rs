//! Pieces every table writer shares: Parquet encoding for the warehouse and column builders.
//! Stages call these; this module knows no stage.

use polars::polars_utils::compression::ZstdLevel;
use polars::prelude::*;

use crate::config::Compression;

/// Encodes a frame as Parquet for the warehouse. Snappy by default: on the ingest benchmark
/// (BENCHMARKS.md) it wrote ~20% faster than zstd level 1, which is ~30% smaller. String
/// statistics are cut to 64 bytes: min/max of free text are useless for pruning and would
/// otherwise put whole prompts into every footer.
pub fn write_parquet(df: &mut DataFrame, compression: Compression) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::with_capacity(1 << 20);
    let codec = match compression {
        Compression::Snappy => ParquetCompression::Snappy,
        Compression::Zstd => ParquetCompression::Zstd(Some(ZstdLevel::try_new(1)?)),
    };
    ParquetWriter::new(&mut buf)
        .with_compression(codec)
        .with_statistics(StatisticsOptions {
            binary_statistics_truncate_length: Some(64),
            ..StatisticsOptions::default()
        })
        .finish(df)?;
    Ok(buf)
}

/// A text column holding `value` on every one of `height` rows (stored once in memory).
pub fn text_constant(name: &str, value: &str, height: usize) -> Column {
    Column::new_scalar(
        name.into(),
        Scalar::new(DataType::String, AnyValue::StringOwned(value.into())),
        height,
    )
}

/// A UTC timestamp column from microseconds since the epoch.
pub fn utc_micros(name: &str, values: Vec<i64>) -> Column {
    Series::new(name.into(), values)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into()
}

/// A Date column holding one value.
pub fn date_constant(name: &str, date: chrono::NaiveDate, height: usize) -> Column {
    let days = (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days();
    Column::new_scalar(
        name.into(),
        Scalar::new(DataType::Date, AnyValue::Date(days as i32)),
        height,
    )
}

/// One part of a Hive-partitioned table: its key and the partition values in its path.
#[derive(Debug, Clone)]
pub struct PartKey {
    pub key: String,
    /// `(name, decoded value)` of each `name=value` folder, outermost first.
    pub partitions: Vec<(String, String)>,
}

impl PartKey {
    /// Parses `<table>/<name>=<value>/.../part-*.parquet`; `None` for anything else.
    pub fn parse(key: &str) -> Option<PartKey> {
        if !key.ends_with(".parquet") {
            return None;
        }
        let mut segments: Vec<&str> = key.split('/').collect();
        segments.pop();
        let partitions = segments
            .iter()
            .skip(1)
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), crate::util::partition_unescape(v)))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PartKey {
            key: key.to_string(),
            partitions,
        })
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.partitions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn date(&self) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(self.value("date")?, "%Y-%m-%d").ok()
    }
}

/// Why a part could not be read by its key.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error(transparent)]
    Warehouse(#[from] crate::warehouse::WarehouseError),
    #[error("cannot read `{key}`: {message}")]
    Read { key: String, message: String },
}

/// Reads the wanted columns of the part at `key` ([`read_part`]); `None` when it does not exist.
pub async fn read_key(
    warehouse: &crate::warehouse::Warehouse,
    key: &str,
    columns: &[(&str, DataType)],
) -> Result<Option<DataFrame>, PartError> {
    let read = |message: String| PartError::Read {
        key: key.to_string(),
        message,
    };
    let part =
        PartKey::parse(key).ok_or_else(|| read("not a part of a partitioned table".into()))?;
    let Some(bytes) = warehouse.get(key).await? else {
        return Ok(None);
    };
    read_part(bytes, &part, columns)
        .map(Some)
        .map_err(|e| read(e.to_string()))
}

/// Reads the wanted columns of one part (columns the part lacks come back as nulls of the given
/// type, so older parts read alongside newer ones), plus `model` (text) and `date` (Date)
/// columns from its path when the path has them.
pub fn read_part(
    bytes: Vec<u8>,
    part: &PartKey,
    columns: &[(&str, DataType)],
) -> PolarsResult<DataFrame> {
    let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
    let schema = reader.schema()?;
    let present: Vec<String> = columns
        .iter()
        .filter(|(name, _)| schema.contains(name))
        .map(|(name, _)| name.to_string())
        .collect();
    let mut df = reader.with_columns(Some(present)).finish()?;
    let height = df.height();
    let mut out = Vec::with_capacity(columns.len() + 2);
    for (name, dtype) in columns {
        match df.column(name) {
            Ok(c) => out.push(c.cast(dtype)?),
            Err(_) => out.push(Column::full_null((*name).into(), height, dtype)),
        }
    }
    if let Some(model) = part.value("model") {
        out.push(text_constant("model", model, height));
    }
    if let Some(date) = part.date() {
        out.push(date_constant("date", date, height));
    }
    df = DataFrame::new(height, out)?;
    Ok(df)
}
