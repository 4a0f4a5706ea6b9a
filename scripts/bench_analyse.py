#!/usr/bin/env python3
"""Benchmark of the analyse stage, side by side with Evidently and a numpy/scipy equivalent.

    cargo build --release
    python3 scripts/bench_analyse.py --rows 3333334        # 10M score rows (3 dimensions each)

Data: `../shared/bench-peers/gen_scores.py --rows N` (4 models, 30 days, beta-distributed scores,
log-normal lengths, a finish-reason mix; model-c drifts in the last 5 days), converted into an
evalwatch warehouse: `scores` in long form (3 rows per capture: 3N score rows), `captures` with
the same lengths and finish reasons, and per-minute `telemetry` for every model. The peers read
the same rows in their wide form (reference = first 15 days, current = last day).

Cases, each a fresh process (wall, user+sys CPU and peak RSS from wait4):
  evalwatch full       `analyse --since 2026-09-01 --until 2026-09-30`: every model-day against its
                       rolling 7-day baseline, every metric and test, drift + aggregates written
                       (the target: 10M score rows in < 20 s, < 4 GB)
  evalwatch same job   `analyse --date 2026-09-30` with a fixed baseline 2026-09-01..15: the job
                       the peers do (4 models, last day vs first 15 days). "nightly": the night
                       before ran (untimed), so its stored pattern tracks are used; "cold": none
                       stored, so the 7 days before are compared too, for the patterns' history
  evidently            ../shared/bench-peers/evidently_drift.py --engine evidently
  scipy                ../shared/bench-peers/evidently_drift.py --engine scipy

The venv is target/bench-venv (../shared/bench-peers/requirements.txt: evidently 0.7.23, polars,
pyarrow, pandas < 3, scipy). Prints a markdown table and the ratios.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "..", "shared", "bench-peers")
BINARY = os.path.join(ROOT, "target", "release", "evalwatch")
VENV = os.path.join(ROOT, "target", "bench-venv")
PY = os.path.join(VENV, "bin", "python")

CONVERT = r'''
import sys, os, numpy as np, polars as pl
src, wh = sys.argv[1], sys.argv[2]
df = pl.read_parquet(os.path.join(src, "scores.parquet"))
n = df.height
df = df.with_columns(
    pl.col("model").cast(pl.String),
    pl.col("finish_reason").cast(pl.String),
    pl.format("r{}", pl.int_range(n)).alias("request_id"),
    pl.int_range(n).alias("_row"),
)
rng = np.random.default_rng(7)
seconds = rng.integers(0, 86400, n)
df = df.with_columns(
    (pl.col("date").cast(pl.Datetime("us", "UTC")) + pl.duration(seconds=pl.Series(seconds))).alias("captured_at"),
)
dims = ["safety", "relevance", "professional_tone"]
# A capture's rows together, in rubric order, as the score stage writes them.
long = df.select(["model", "date", "request_id", "captured_at", "_row"] + dims).unpivot(
    index=["model", "date", "request_id", "captured_at", "_row"], on=dims,
    variable_name="dimension", value_name="score").sort("_row", maintain_order=True).drop("_row")
long = long.with_columns(
    pl.lit("").alias("content_hash"), pl.lit("quality").alias("rubric_id"),
    pl.lit("1.0.0").alias("rubric_version"), pl.lit("bench").alias("rubric_hash"),
    pl.lit("offline:1").alias("judge"), pl.lit("").alias("judge_params_hash"),
    pl.lit(None, pl.String).alias("label"), pl.lit(None, pl.String).alias("rationale"),
    pl.lit("ok").alias("status"), pl.lit(None, pl.String).alias("error"),
    pl.lit(0.1).alias("judge_latency_ms"), pl.lit(None, pl.Int64).alias("input_tokens"),
    pl.lit(None, pl.Int64).alias("output_tokens"), pl.lit(0.0).alias("judge_cost_usd"),
)
captures = df.select(
    "model", "date", "request_id", "captured_at", "finish_reason",
    pl.col("prompt_chars").cast(pl.Int32), pl.col("response_chars").cast(pl.Int32),
    (pl.col("prompt_chars") // 4).cast(pl.Int32).alias("prompt_tokens"),
    (pl.col("response_chars") // 4).cast(pl.Int32).alias("completion_tokens"),
    (pl.col("response_chars").cast(pl.Float64) * 0.6 + 200.0).alias("latency_ms"),
    pl.lit(False).alias("refusal"),
)
minutes = pl.datetime_range(pl.datetime(2026, 9, 1, time_zone="UTC"), pl.datetime(2026, 9, 30, 23, 59, time_zone="UTC"), "1m", eager=True)
frames = []
for i, model in enumerate(sorted(df["model"].unique().to_list())):
    k = len(minutes)
    frames.append(pl.DataFrame({
        "model": [model] * k, "ts": minutes,
        "gpu_util_pct": rng.uniform(20, 80, k), "gpu_mem_pct": rng.uniform(50, 70, k),
        "cpu_util_pct": rng.uniform(5, 30, k), "invocations": rng.integers(50, 150, k).astype(float),
        "errors_5xx": (rng.random(k) < 0.01).astype(float), "model_latency_ms": rng.uniform(300, 900, k),
        "gpus_allocated": [1.0] * k, "instance_type": ["ml.g5.12xlarge"] * k,
        "period_seconds": [60.0] * k, "cost_usd": [5.752 / 4 / 60] * k,
    }).with_columns(pl.col("ts").dt.date().alias("date")))
telemetry = pl.concat(frames)
def write(table, folder, frame):
    for (model, date), part in frame.group_by(["model", "date"]):
        path = os.path.join(wh, folder, f"model={model}", f"date={date}")
        os.makedirs(path, exist_ok=True)
        part.drop(["model", "date"]).write_parquet(os.path.join(path, "part-bench.parquet"))
write("scores", "scores/rubric=quality@1.0.0", long)
write("captures", "captures", captures)
write("telemetry", "telemetry", telemetry)
print({"captures": n, "score_rows": long.height, "telemetry_rows": telemetry.height})
'''


def measured(cmd):
    """Runs cmd in a fresh process; returns (wall s, cpu s, peak RSS MB, exit code, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status), out.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3_333_334, help="captures (score rows = 3x)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "evalwatch-bench-analyse"))
    ap.add_argument("--skip-evidently", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    if not os.path.exists(PY):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "-r", os.path.join(PEERS, "requirements.txt")], check=True)

    data = os.path.join(args.work, f"scores-{args.rows}")
    # v2: a capture's score rows adjacent, as the score stage writes them.
    wh = os.path.join(args.work, f"wh-v2-{args.rows}")
    if not os.path.exists(os.path.join(data, "current.parquet")):
        subprocess.run([PY, os.path.join(PEERS, "gen_scores.py"), "--rows", str(args.rows), "--out", args.work], check=True)
    if not os.path.isdir(os.path.join(wh, "scores")):
        shutil.rmtree(wh, ignore_errors=True)
        subprocess.run([PY, "-c", CONVERT, data, wh], check=True)

    rolling = os.path.join(args.work, "rolling.toml")
    fixed = os.path.join(args.work, "fixed.toml")
    with open(rolling, "w") as f:
        f.write(f'[warehouse]\npath = "{wh}"\n[score]\nrubric = "{ROOT}/rubrics/quality.toml"\n')
    with open(fixed, "w") as f:
        f.write(f'[warehouse]\npath = "{wh}"\n[score]\nrubric = "{ROOT}/rubrics/quality.toml"\n'
                '[analyse]\nbaseline = "fixed"\nbaseline-since = "2026-09-01"\nbaseline-until = "2026-09-15"\n')

    tracks = os.path.join(wh, "state", "analyse-tracks")

    def cold():
        """No stored pattern tracks: the analyse compares the 7 days before its window too."""
        shutil.rmtree(tracks, ignore_errors=True)

    def nightly():
        """The night before ran: its stored tracks let the analyse compare the window only."""
        cold()
        measured([BINARY, "--config", fixed, "analyse", "--date", "2026-09-29"])

    results = []
    for name, prepare, cmd in [
        ("evalwatch full (30 days x 4 models, rolling 7d)", cold, [BINARY, "--config", rolling, "--log-format", "json", "analyse", "--since", "2026-09-01", "--until", "2026-09-30"]),
        ("evalwatch same job, nightly (last day vs first 15)", nightly, [BINARY, "--config", fixed, "--log-format", "json", "analyse", "--date", "2026-09-30"]),
        ("evalwatch same job, cold (+ 7 days of pattern history)", cold, [BINARY, "--config", fixed, "--log-format", "json", "analyse", "--date", "2026-09-30"]),
    ] + ([] if args.skip_evidently else [
        ("evidently (DataDriftPreset)", None, [PY, os.path.join(PEERS, "evidently_drift.py"), "--rows", str(args.rows), "--engine", "evidently", "--data", data]),
    ]) + [
        ("numpy/scipy equivalent", None, [PY, os.path.join(PEERS, "evidently_drift.py"), "--rows", str(args.rows), "--engine", "scipy", "--data", data]),
    ]:
        if prepare:
            prepare()
        wall, cpu, rss, code, out = measured(cmd)
        if code not in (0, 3):
            sys.exit(f"{name} failed with {code}")
        results.append((name, wall, cpu, rss))
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MB", file=sys.stderr)

    print(f"\n{args.rows:,} captures = {3 * args.rows:,} score rows\n")
    print("| case | wall s | CPU s | peak RSS MB |")
    print("|---|---|---|---|")
    for name, wall, cpu, rss in results:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} |")
    for peer, wall, _, _ in results[3:]:
        for ours, mine, _, _ in results[1:3]:
            print(f"\n{peer} / {ours}: {wall / mine:.1f}x")


if __name__ == "__main__":
    main()
