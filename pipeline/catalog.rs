//! `evalwatch catalog --athena`: the warehouse's tables as `CREATE EXTERNAL TABLE` statements
//! with partition projection, so Athena (and Trino, Spark with the Glue catalog) query a
//! warehouse of any size without crawlers or `MSCK REPAIR`.
//!
//! Reads: one part of each table (its Parquet schema: the columns as the writers wrote them,
//! every table's listed in [`crate::schema`]) and the table's partition folders (the values of
//! `model=` and `rubric=` seen). Writes: nothing; the statements go to stdout.
//! Never does: guess a column; a table with no part yet is left out, said so in a comment.
//!
//! Partitions: `date` is projected as a date (`yyyy-MM-dd`, from 2020-01-01 to now), `model` and
//! `rubric` as the values found (an `enum`: run `catalog` again when a model appears).

use std::collections::BTreeSet;

use polars::prelude::*;

use crate::schema;
use crate::warehouse::{Warehouse, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("cannot read the Parquet schema of `{key}`: {message}")]
    Schema { key: String, message: String },
}

/// A table: its folder and its partition keys, in path order.
struct Table {
    name: &'static str,
    partitions: &'static [&'static str],
}

const TABLES: [Table; 9] = [
    Table {
        name: schema::captures::TABLE,
        partitions: &["model", "date"],
    },
    Table {
        name: schema::quarantine::TABLE,
        partitions: &["date"],
    },
    Table {
        name: schema::scores::TABLE,
        partitions: &["rubric", "model", "date"],
    },
    Table {
        name: schema::telemetry::TABLE,
        partitions: &["model", "date"],
    },
    Table {
        name: schema::embeddings::TABLE,
        partitions: &["model", "date"],
    },
    Table {
        name: schema::drift::TABLE,
        partitions: &["date"],
    },
    Table {
        name: schema::aggregates::TABLE,
        partitions: &["date"],
    },
    Table {
        name: schema::topics::TABLE,
        partitions: &["date"],
    },
    Table {
        name: schema::calibration::TABLE,
        partitions: &["rubric"],
    },
];

/// The Hive type of a Parquet column as polars reads it.
pub fn hive_type(dtype: &DataType) -> String {
    match dtype {
        DataType::String => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Date => "date".into(),
        DataType::Datetime(_, _) => "timestamp".into(),
        DataType::List(inner) => format!("array<{}>", hive_type(inner)),
        _ => "string".into(),
    }
}

/// The columns of a Parquet part: (name, Hive type).
pub fn columns_of(bytes: Vec<u8>, key: &str) -> Result<Vec<(String, String)>, CatalogError> {
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| CatalogError::Schema {
            key: key.to_string(),
            message: e.to_string(),
        })?;
    Ok(df
        .schema()
        .iter()
        .map(|(name, dtype)| (name.to_string(), hive_type(dtype)))
        .collect())
}

/// The value of `name=` in a key's path, if any.
fn partition_value(key: &str, name: &str) -> Option<String> {
    key.split('/')
        .find_map(|segment| segment.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

/// `CREATE EXTERNAL TABLE` statements for every table of the warehouse, in database `database`.
pub async fn athena(warehouse: &Warehouse, database: &str) -> Result<String, CatalogError> {
    let root = warehouse.root_uri();
    let root = root.trim_end_matches('/');
    let mut out = format!(
        "-- evalwatch warehouse {root}: Athena DDL with partition projection (evalwatch catalog \
         --athena).\nCREATE DATABASE IF NOT EXISTS `{database}`;\n"
    );
    for table in &TABLES {
        let keys: Vec<String> = warehouse
            .list(&format!("{}/", table.name))
            .await?
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        let Some(newest) = keys.last() else {
            out.push_str(&format!(
                "\n-- `{}`: no part written yet; run `catalog` again once it has one.\n",
                table.name
            ));
            continue;
        };
        let Some(bytes) = warehouse.get(newest).await? else {
            continue;
        };
        let columns = columns_of(bytes, newest)?;
        let location = format!("{root}/{}/", table.name);
        out.push_str(&format!(
            "\nCREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{}` (\n",
            table.name
        ));
        out.push_str(
            &columns
                .iter()
                .map(|(name, kind)| format!("  `{name}` {kind}"))
                .collect::<Vec<_>>()
                .join(",\n"),
        );
        out.push_str("\n)\nPARTITIONED BY (");
        out.push_str(
            &table
                .partitions
                .iter()
                .map(|p| {
                    let kind = if *p == "date" { "date" } else { "string" };
                    format!("`{p}` {kind}")
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str(&format!(
            ")\nSTORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES (\n  'projection.enabled' = 'true'"
        ));
        for p in table.partitions {
            if *p == "date" {
                out.push_str(
                    ",\n  'projection.date.type' = 'date',\n  'projection.date.format' = \
                     'yyyy-MM-dd',\n  'projection.date.range' = '2020-01-01,NOW',\n  \
                     'projection.date.interval' = '1',\n  'projection.date.interval.unit' = 'DAYS'",
                );
            } else {
                let values: BTreeSet<String> =
                    keys.iter().filter_map(|k| partition_value(k, p)).collect();
                out.push_str(&format!(
                    ",\n  'projection.{p}.type' = 'enum',\n  'projection.{p}.values' = '{}'",
                    values.into_iter().collect::<Vec<_>>().join(",")
                ));
            }
        }
        let template: String = table
            .partitions
            .iter()
            .map(|p| format!("{p}=${{{p}}}/"))
            .collect();
        out.push_str(&format!(
            ",\n  'storage.location.template' = '{location}{template}'\n);\n"
        ));
    }
    Ok(out)
}
