#!/usr/bin/env python3
"""Ingest benchmark: evalwatch vs the straightforward Python ingest, same data, same run.

    python3 scripts/bench_ingest.py [--total-mb 1024] [--repeat 3] [--peers ../shared/bench-peers]

What it does:
  1. makes a venv under target/bench-venv with numpy and pyarrow (the peers' needs), once;
  2. generates --total-mb of SageMaker data capture JSONL with the peers' gen_capture.py
     (OpenAI chat payloads, half the files BASE64), unless it is already there;
  3. builds evalwatch in release mode;
  4. runs, --repeat times each, alternating, through the peers' bench.py (fresh process,
     GNU time -v for wall time and peak RSS):
       - evalwatch ingest into an empty local warehouse (captures + quarantine + manifest),
       - python_ingest.py --engine python (json + base64 + sha256 + pyarrow, one Parquet file);
  5. prints a markdown table: median wall time, MB/s, peak RSS, and the ratio.

Both read the page cache (the data was just written or read); both write Parquet to the same disk.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def venv_python():
    venv = os.path.join(ROOT, "target", "bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        sh([sys.executable, "-m", "venv", venv])
    probe = subprocess.run([py, "-c", "import numpy, pyarrow"], capture_output=True)
    if probe.returncode != 0:
        sh([py, "-m", "pip", "install", "--quiet", "numpy==2.4.6", "pyarrow==26.0.1"])
    return py


def input_mb(root):
    total = 0
    for d, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files if f.endswith(".jsonl"))
    return total / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total-mb", type=float, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "bench-peers"))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "evalwatch-bench"))
    args = ap.parse_args()

    peers = os.path.abspath(args.peers)
    if not os.path.exists(os.path.join(peers, "bench.py")):
        sys.exit(f"no peer scripts at {peers}; pass --peers")
    py = venv_python()
    capture = os.path.join(args.work, "capture")
    marker = os.path.join(args.work, f"capture-{args.total_mb:g}mb.done")
    if not os.path.exists(marker):
        shutil.rmtree(capture, ignore_errors=True)
        sh([py, os.path.join(peers, "gen_capture.py"), "--out", capture,
            "--total-mb", str(args.total_mb)])
        open(marker, "w").close()
    mb = input_mb(capture)

    sh(["cargo", "build", "--release", "--locked"], cwd=ROOT)
    binary = os.path.join(ROOT, "target", "release", "evalwatch")
    config = os.path.join(args.work, "bench.toml")
    with open(config, "w") as f:
        # The generator puts four models in one AllTraffic folder, named only by the payload.
        f.write("[ingest]\nmodel-from-payload = true\n")
    warehouse = os.path.join(args.work, "warehouse")
    results = os.path.join(args.work, "results.jsonl")
    if os.path.exists(results):
        os.remove(results)

    evalwatch_cmd = ["sh", "-c",
                     f"rm -rf '{warehouse}' && exec '{binary}' --config '{config}' "
                     f"--warehouse '{warehouse}' ingest --source '{capture}'"]
    python_cmd = [py, os.path.join(peers, "python_ingest.py"), "--engine", "python",
                  "--capture", capture, "--out", os.path.join(args.work, "py-out", "captures.parquet")]
    labels = {"evalwatch ingest": evalwatch_cmd, "python ingest (json+base64+pyarrow)": python_cmd}
    for _ in range(args.repeat):
        for label, cmd in labels.items():
            sh([py, os.path.join(peers, "bench.py"), "--label", label, "--repeat", "1",
                "--results", results, "--"] + cmd, stdout=subprocess.DEVNULL)

    runs = {}
    with open(results) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("rc") == 0:
                runs.setdefault(rec["label"], []).append(rec)
    rows = []
    for label in labels:
        recs = runs.get(label, [])
        if not recs:
            rows.append((label, None, None, None, 0))
            continue
        wall = statistics.median(r["wall_s"] for r in recs)
        rss = max(r.get("maxrss_mb", 0) for r in recs)
        rows.append((label, wall, mb / wall, rss, len(recs)))
    base = rows[1][1]
    print(f"\ninput: {mb:.0f} MB of capture JSONL in {capture}; {os.cpu_count()} CPUs; "
          f"median of {args.repeat}, alternating\n")
    print("| ingest | runs | wall s (median) | MB/s | peak RSS MB | speed vs Python |")
    print("|---|---|---|---|---|---|")
    for label, wall, rate, rss, n in rows:
        if wall is None:
            print(f"| {label} | 0 | failed | | | |")
            continue
        ratio = base / wall if base else float("nan")
        print(f"| {label} | {n} | {wall:.1f} | {rate:.0f} | {rss:.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
