#!/usr/bin/env python3
"""Check that the warehouse's Hive-partitioned tables open as they are in the readers analysts use.

    python3 scripts/check_readers.py [WAREHOUSE]     # default: ./warehouse (after `evalwatch run`)

Installs polars, pyarrow and DuckDB into target/bench-venv on first use (not part of the test
suite: it downloads ~150 MB of wheels), then reads `captures/` with each and compares row counts.
Exits non-zero on any disagreement.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ["polars==2.1.0", "polars-runtime-32==2.1.0", "pyarrow==26.0.1", "duckdb"]

CHECK = r'''
import sys, duckdb, polars as pl, pyarrow.dataset as ds
table = sys.argv[1]
counts = {
    "polars": pl.scan_parquet(table + "/", hive_partitioning=True).select(pl.len()).collect().item(),
    "pyarrow": ds.dataset(table, format="parquet", partitioning="hive").count_rows(),
    "duckdb": duckdb.sql(f"select count(*) from read_parquet('{table}/**/*.parquet', hive_partitioning=true)").fetchall()[0][0],
}
models = duckdb.sql(f"select model, count(*) from read_parquet('{table}/**/*.parquet', hive_partitioning=true) group by 1 order by 1").fetchall()
print(counts, models)
sys.exit(0 if len(set(counts.values())) == 1 and counts["polars"] > 0 else 1)
'''


def main():
    warehouse = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "warehouse"))
    venv = os.path.join(ROOT, "target", "bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", "import polars, pyarrow, duckdb"], capture_output=True).returncode:
        subprocess.run([py, "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    sys.exit(subprocess.run([py, "-c", CHECK, os.path.join(warehouse, "captures")]).returncode)


if __name__ == "__main__":
    main()
