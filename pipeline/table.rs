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
