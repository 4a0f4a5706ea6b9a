#!/usr/bin/env python3
"""Prints, as JSON, the columns DuckDB reads for each table of a local warehouse
(`read_parquet('<table>/**/*.parquet', hive_partitioning=true, union_by_name=true)`): name and
type, partition columns last. Used by tests/it/deploy.rs to check `evalwatch catalog --athena`
against a second reader of the same layout.

    duckdb_columns.py WAREHOUSE TABLE...
"""
import json
import sys

import duckdb


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    warehouse, tables = sys.argv[1], sys.argv[2:]
    out = {}
    for table in tables:
        rows = duckdb.sql(
            f"describe select * from read_parquet('{warehouse}/{table}/**/*.parquet', "
            "hive_partitioning=true, union_by_name=true)"
        ).fetchall()
        out[table] = [[name, kind] for name, kind, *_ in rows]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
