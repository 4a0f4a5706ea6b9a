#!/usr/bin/env python3
"""Benchmark of `evalwatch compare`.

    cargo build --release
    python3 scripts/bench_compare.py [--prompts 1000] [--large 100000]

Cases (fresh warehouses; wall, CPU and peak RSS of the evalwatch process from wait4):
  stub-200ms  --prompts pairs x 2 models judged by the Bedrock judge (Converse, the real SDK)
              against `evalwatch judge-stub --latency-ms 200`, concurrency 16, `--pairwise`:
              2 x prompts pointwise calls + 2 x prompts pairwise calls; the target is a wall time
              close to (calls / concurrency) x 200 ms
  offline-large  --large pairs judged by the offline scorer, `--pairwise`: the figures (bootstrap
              or normal intervals, Wilcoxon, pairwise, length control) for that many pairs; the
              target is under 2 s (`figures_seconds` in the summary)
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "evalwatch")
WORDS = ("account router password reset billing invoice refund shipping order delivery warranty "
         "screen battery charger laptop phone printer network cable update install driver error "
         "message restart settings profile email address login security backup cloud storage plan").split()


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_sides(folder, n, seed=7):
    rng = random.Random(seed)
    base, cand = os.path.join(folder, "baseline.jsonl"), os.path.join(folder, "candidate.jsonl")
    with open(base, "w") as b, open(cand, "w") as c:
        for i in range(n):
            prompt = f"Human: request {i}: " + text(rng, rng.randint(6, 20))
            b.write(json.dumps({"id": i, "prompt": prompt, "response": text(rng, rng.randint(10, 60)),
                                "latency_ms": rng.uniform(300, 900)}) + "\n")
            c.write(json.dumps({"id": i, "prompt": prompt, "response": text(rng, rng.randint(10, 80)),
                                "latency_ms": rng.uniform(250, 800)}) + "\n")
    return base, cand


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measured(cmd):
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return (time.monotonic() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0,
            os.waitstatus_to_exitcode(status), out.decode())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--large", type=int, default=100_000)
    args = ap.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="evalwatch-bench-compare-")
    rows = []

    # 1. Against the Converse stub at 200 ms.
    os.makedirs(os.path.join(work, "small"))
    base, cand = write_sides(os.path.join(work, "small"), args.prompts)
    port = free_port()
    stub = subprocess.Popen([BINARY, "judge-stub", "--listen", f"127.0.0.1:{port}", "--latency-ms", "200",
                             "--exit-after", "3600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stub.stdout.readline()
    config = os.path.join(work, "stub.toml")
    with open(config, "w") as f:
        f.write(f"""[warehouse]
path = "{work}/wh-stub"
[score]
rubric = "{ROOT}/rubrics/quality.toml"
[judge]
kind = "bedrock"
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
concurrency = 16
requests-per-minute = 1000000
tokens-per-minute = 1000000000
[aws]
region = "us-east-1"
endpoint-url = "http://127.0.0.1:{port}"
""")
    env_cmd = [BINARY, "--config", config, "--log-format", "json", "compare", "--pairwise",
               "--baseline-file", base, "--candidate-file", cand]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    try:
        wall, cpu, rss, code, out = measured(env_cmd)
    finally:
        stub.terminate()
        stub.wait()
    if code not in (0, 3):
        sys.exit(f"compare against the stub failed ({code})")
    s = json.loads(out.strip().splitlines()[-1])["compare"]
    calls = s["judge_calls"]
    ideal = calls / 16 * 0.2
    rows.append((f"stub 200 ms, {args.prompts} prompts x 2 models, pairwise", calls, wall, ideal,
                 s["judge_seconds"], s["figures_seconds"], cpu, rss))

    # 2. Many pairs, offline: the statistics.
    os.makedirs(os.path.join(work, "large"))
    base, cand = write_sides(os.path.join(work, "large"), args.large, seed=11)
    wall, cpu, rss, code, out = measured([BINARY, "--warehouse", f"{work}/wh-large", "--log-format", "json",
                                          "compare", "--pairwise", "--baseline-file", base,
                                          "--candidate-file", cand])
    if code not in (0, 3):
        sys.exit(f"offline compare failed ({code})")
    s = json.loads(out.strip().splitlines()[-1])["compare"]
    rows.append((f"offline, {args.large:,} pairs, pairwise", s["judge_calls"], wall, None,
                 s["judge_seconds"], s["figures_seconds"], cpu, rss))

    print("| case | judge calls | wall s | ideal s (calls/16 x 0.2) | judging s | figures s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, calls, wall, ideal, judging, figures, cpu, rss in rows:
        ideal_text = f"{ideal:.1f}" if ideal else "-"
        print(f"| {name} | {calls} | {wall:.1f} | {ideal_text} | {judging:.1f} | {figures:.2f} | {cpu:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
