#!/usr/bin/env python3
"""Benchmarks ingest at fleet scale: planning and manifest memory with 10^4, 10^5 and 10^6 source
objects, and ingest wall time with 1, 2 and 4 shard processes. Prints a table (for BENCHMARKS.md).

    cargo build --release && python3 scripts/bench_shards.py [--sizes 10000,100000,1000000]

Planning: a local folder in the SageMaker layout (`ep/<component>/yyyy/mm/dd/hh/<file>`) of empty
capture files (empty, so the first run costs listing, opening and the manifest, not decoding; an
empty file takes no disk blocks). The first `ingest` records every object; the second finds them
all unchanged: that run is pure planning (listing, manifest groups, comparisons). Peak memory is
the process's maximum RSS (`/usr/bin/time -v`).

Sharded ingest: the bundled sample's capture files copied under 20 components x 14 days (6,720
objects, real content, each file's lines repeated --repeat times), ingested into a fresh warehouse by 1 process, then by 2 and by 4 shard
processes started together (`ingest --shard I/N`); wall time is from the first start to the last
exit. Data lives under --work (default /tmp/evalwatch-bench-shards) and is reused.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "evalwatch"
SAMPLE = ROOT / "datasets" / "sample" / "capture" / "assistant-prod"


def layout(n):
    """(components, days, files per hour) giving about n objects."""
    for components in (5, 20, 50, 100):
        per_hour = max(1, round(n / (components * 14 * 24)))
        if per_hour <= 80:
            return components, 14, per_hour
    return 100, 14, max(1, round(n / (100 * 14 * 24)))


def make_empty_source(path, n):
    components, days, per_hour = layout(n)
    marker = path / ".complete"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(path, ignore_errors=True)
    count = 0
    for c in range(components):
        for d in range(1, days + 1):
            for h in range(24):
                folder = path / "ep" / f"model-{c:03d}" / "2026" / "10" / f"{d:02d}" / f"{h:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                for f in range(per_hour):
                    (folder / f"capture-{f:03d}.jsonl").touch()
                    count += 1
    marker.write_text(str(count))
    return count


def make_real_source(path, repeat):
    marker = path / ".complete"
    if marker.exists() and marker.read_text().startswith(f"{repeat}:"):
        return int(marker.read_text().split(":")[1])
    shutil.rmtree(path, ignore_errors=True)
    days = sorted((SAMPLE / "chat-a" / "2026" / "10").iterdir())
    count = 0
    for c in range(20):
        component = "chat-a" if c % 2 == 0 else "chat-b"
        for day in days:
            for hour in sorted(day.iterdir()):
                target = path / "ep" / f"model-{c:02d}" / "2026" / "10" / day.name / hour.name
                target.mkdir(parents=True, exist_ok=True)
                source_hour = SAMPLE / component / "2026" / "10" / day.name / hour.name
                for file in source_hour.iterdir():
                    (target / file.name).write_bytes(file.read_bytes() * repeat)
                    count += 1
    marker.write_text(f"{repeat}:{count}")
    return count


def rss_of(args, warehouse):
    """Runs evalwatch under /usr/bin/time -v; returns (seconds, max RSS MiB)."""
    cmd = ["/usr/bin/time", "-v", str(BIN), "--warehouse", str(warehouse)] + args
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    kb = next(
        int(line.split(":")[1])
        for line in out.stderr.splitlines()
        if "Maximum resident set size" in line
    )
    return seconds, kb / 1024


def manifest_size(warehouse):
    files = list((warehouse / "state" / "ingest" / "manifest").rglob("*.json"))
    return len(files), sum(f.stat().st_size for f in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--work", default="/tmp/evalwatch-bench-shards")
    parser.add_argument("--repeat", type=int, default=10, help="copies of each sample file's lines per object")
    args = parser.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run `cargo build --release` first")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    print("## Planning: ingest of N empty objects, then again with all unchanged\n")
    print("| objects | manifest files | manifest MiB | first run s | first run peak MiB | unchanged run s | unchanged run peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",") if s]:
        source = work / f"empty-{n}"
        objects = make_empty_source(source, n)
        warehouse = work / f"wh-empty-{n}"
        shutil.rmtree(warehouse, ignore_errors=True)
        first_s, first_rss = rss_of(["ingest", "--source", str(source)], warehouse)
        files, size = manifest_size(warehouse)
        again_s, again_rss = rss_of(["ingest", "--source", str(source)], warehouse)
        print(
            f"| {objects:,} | {files:,} | {size / 2**20:.1f} | {first_s:.1f} | {first_rss:.0f} "
            f"| {again_s:.1f} | {again_rss:.0f} |",
            flush=True,
        )
        shutil.rmtree(warehouse, ignore_errors=True)

    source = work / "real"
    objects = make_real_source(source, args.repeat)
    size = sum(f.stat().st_size for f in source.rglob("*.jsonl"))
    print(f"\n## Ingest of {objects:,} capture objects ({size / 2**20:.0f} MiB) by N shard processes at once\n")
    print("| shard processes | wall s | speed-up | rows |")
    print("|---:|---:|---:|---:|")
    base = None
    for shards in (1, 2, 4):
        warehouse = work / f"wh-real-{shards}"
        shutil.rmtree(warehouse, ignore_errors=True)
        start = time.perf_counter()
        procs = []
        for i in range(shards):
            cmd = [str(BIN), "--warehouse", str(warehouse), "ingest", "--source", str(source)]
            if shards > 1:
                cmd += ["--shard", f"{i}/{shards}"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        rows = 0
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                sys.exit(f"shard failed ({p.returncode}):\n{err[-3000:]}")
            rows += json.loads(out)["ingest"]["rows"]
        wall = time.perf_counter() - start
        base = base or wall
        print(f"| {shards} | {wall:.1f} | {base / wall:.2f}x | {rows:,} |", flush=True)
        shutil.rmtree(warehouse, ignore_errors=True)
    print(f"\n(cores: {os.cpu_count()}; evalwatch `ingest.workers` default)")


if __name__ == "__main__":
    main()
