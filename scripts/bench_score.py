#!/usr/bin/env python3
"""Benchmark of the score stage against the judge stub (`evalwatch judge-stub`), Bedrock wire format.

    cargo build --release
    python3 scripts/bench_score.py                     # 100k rows at 200 ms + the 50 req/s ceiling
    python3 scripts/bench_score.py --rows 20000 --ceiling-rows 3000

Cases (each on a fresh warehouse, the captures ingested before the clock starts):
  latency-200ms   stub answers every call after 200 ms; concurrency 64; target 95% of 64/0.2 = 304/s,
                  under 1 ms of evalwatch CPU per judgment, under 500 MB peak RSS
  ceiling-50/s    the stub throttles past 50 calls/s; evalwatch configured with that quota
                  (requests-per-minute = 3000); target 90% of 50/s, no row lost
  ceiling-50/s-adaptive  the same ceiling with no quota configured: only the adaptive back-off
  capacity-30%    the stub throttles 30% of calls at random whatever the rate (Bedrock's capacity
                  throttling), 200 ms latency, concurrency 64, no quota: target >= 70% of the
                  latency-200ms case's goodput and no row in error

The stub runs in its own process, so the CPU and memory figures are evalwatch's alone. Prints a
markdown table; BENCHMARKS.md records it.

    python3 scripts/bench_score.py --cost

The judge bill instead: tokens and USD per 1,000 judged captures of the bundled sample
(2026-10-01..07, the `quality` rubric), Bedrock wire format against the stub (which counts 4 bytes
a token, the same way for every case), for (a) the AWS reference's method: three calls per
capture, one dimension each, the instructions repeated (three one-dimension rubrics cut from
`quality`); (b) evalwatch on demand, one call for every dimension; (c) (b) with prompt caching;
(d) Bedrock batch inference (the stub's batch control plane, S3 on ministack from the tests'
venv). Prices: --prices (see BENCHMARKS.md for their source).
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "evalwatch")
WORDS = (
    "account router password reset billing invoice refund shipping order delivery warranty "
    "screen battery charger laptop phone printer network cable update install driver error "
    "message restart settings profile email address login security backup cloud storage plan "
    "upgrade cancel subscription support ticket agent hours weekend store location return policy"
).split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentence(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(source, rows, seed=1):
    """Plain records over 2 models x 2 days, 100 files, every pair distinct."""
    rng = random.Random(seed)
    os.makedirs(source, exist_ok=True)
    per_file = max(1, rows // 100)
    written = 0
    file_no = 0
    while written < rows:
        with open(os.path.join(source, f"part-{file_no:03d}.jsonl"), "w") as f:
            for _ in range(min(per_file, rows - written)):
                model = "bench-a" if written % 2 == 0 else "bench-b"
                day = 1 + (written // 2) % 2
                prompt = f"#{written} " + " ".join(sentence(rng, rng.randint(6, 18)) for _ in range(rng.randint(1, 4)))
                response = " ".join(sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(2, 10)))
                f.write(json.dumps({
                    "request_id": f"bench-{written}",
                    "model": model,
                    "timestamp": f"2026-10-0{day}T{written % 24:02d}:00:00Z",
                    "prompt": prompt,
                    "response": response,
                }) + "\n")
                written += 1
        file_no += 1


def run_measured(cmd, env):
    """Runs cmd; returns (wall s, user+sys CPU s, peak RSS MB, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, out.decode()


def case(name, rows, latency_ms, max_rps, rpm, concurrency, work, throttle_rate=0.0):
    warehouse = os.path.join(work, f"wh-{name.replace('/', '')}")
    shutil.rmtree(warehouse, ignore_errors=True)
    source = os.path.join(work, f"source-{rows}")
    if not os.path.isdir(source):
        generate(source, rows)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    subprocess.run([BINARY, "--warehouse", warehouse, "ingest", "--source", source],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    port = free_port()
    stub_cmd = [BINARY, "judge-stub", "--listen", f"127.0.0.1:{port}", "--latency-ms", str(latency_ms),
                "--exit-after", "3600"]
    if max_rps:
        stub_cmd += ["--max-rps", str(max_rps)]
    if throttle_rate:
        stub_cmd += ["--throttle-rate", str(throttle_rate)]
    if max_rps or throttle_rate:
        stub_cmd += ["--max-consecutive-faults", "1000"]
    stub = subprocess.Popen(stub_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stub.stdout.readline()  # {"listening": ...}
    config = os.path.join(work, f"{name.replace('/', '')}.toml")
    with open(config, "w") as f:
        f.write(f"""[score]
rubric = "{ROOT}/rubrics/quality.toml"
[judge]
kind = "bedrock"
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
concurrency = {concurrency}
requests-per-minute = {rpm}
tokens-per-minute = 1000000000
max-attempts = 12
backoff-initial-ms = 100
backoff-max-ms = 5000
[aws]
region = "us-east-1"
endpoint-url = "http://127.0.0.1:{port}"
""")
    try:
        wall, cpu, rss, out = run_measured(
            [BINARY, "--config", config, "--warehouse", warehouse, "--log-format", "json", "score"], env)
    finally:
        stats = json.loads(subprocess.run(
            ["python3", "-c", f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/_stub/stats').read().decode())"],
            capture_output=True, text=True).stdout or "{}")
        stub.terminate()
        stub.wait()
    summary = json.loads(out.strip().splitlines()[-1])["score"]
    ok_rows = summary["rows_ok"]
    return {
        "case": name,
        "rows": rows,
        "judged": summary["judged"],
        "ok": ok_rows // 3,
        "errors": summary["rows_error"] // 3,
        "wall_s": wall,
        "per_s": summary["judged"] / wall,
        "stage_per_s": summary["judgments_per_s"],
        "cpu_ms_per": 1000.0 * cpu / max(1, summary["judged"]),
        "rss_mb": rss,
        "throttled": summary["throttled"],
        "calls": summary["calls"],
        "pacer_cuts": summary.get("pacer_cuts"),
        "pacer_restores": summary.get("pacer_restores"),
        "answered_twice": stats.get("answered_twice"),
    }


PRICES = {
    # Claude Sonnet 4.6 on Bedrock, USD per million tokens (BENCHMARKS.md says where from).
    "input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75,
    "batch_input": 1.5, "batch_output": 7.5,
}
COST_MODEL = "anthropic.claude-sonnet-4-6"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ministack():
    venvs = sorted(p for p in os.listdir(os.path.join(ROOT, "target")) if p.startswith("ministack-venv-"))
    if not venvs:
        sys.exit("ministack is installed by the tests: run ./scripts/test (or cargo test --test it ingest_s3) first")
    binary = os.path.join(ROOT, "target", venvs[-1], "bin", "ministack")
    port = free_port()
    env = dict(os.environ, GATEWAY_PORT=str(port), BIND_HOST="127.0.0.1", LOG_LEVEL="WARNING")
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(f"{url}/evalwatch-batch", method="PUT")).read()
    return proc, url


def one_dimension_rubrics(folder):
    """The AWS reference's method: one rubric (one call) per dimension of `quality`."""
    text = open(os.path.join(ROOT, "rubrics", "quality.toml")).read()
    head, *blocks = text.split("[[dimension]]")
    paths = []
    for block in blocks:
        name = block.split('name = "', 1)[1].split('"', 1)[0]
        lines = [("weight = 1.0" if l.startswith("weight = ") else l) for l in block.splitlines()]
        body = head.replace('id = "quality"', f'id = "quality-{name.replace("_", "-")}"')
        path = os.path.join(folder, f"quality-{name}.toml")
        with open(path, "w") as f:
            f.write(body + "[[dimension]]" + "\n".join(lines) + "\n")
        paths.append(path)
    return paths


def cost_table(args):
    work = os.path.join(args.work, "cost")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ministack, s3 = start_ministack()
    stub = subprocess.Popen([BINARY, "judge-stub", "--listen", "127.0.0.1:0", "--s3-endpoint", s3],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        stub_url = "http://" + json.loads(stub.stdout.readline())["listening"]
        base = os.path.join(work, "ingested")
        subprocess.run([BINARY, "--warehouse", base, "ingest", "--since", "2026-10-01", "--until", "2026-10-07"],
                       check=True, capture_output=True)
        p = PRICES

        def config(name, extra):
            path = os.path.join(work, f"{name}.toml")
            with open(path, "w") as f:
                f.write(
                    f'[judge]\nkind = "bedrock"\nmodel = "{COST_MODEL}"\nallow-unpinned = true\n'
                    f'requests-per-minute = 600000\ntokens-per-minute = 1000000000\nconcurrency = 32\n'
                    f'input-usd-per-million-tokens = {p["input"]}\noutput-usd-per-million-tokens = {p["output"]}\n'
                    f'cache-read-usd-per-million-tokens = {p["cache_read"]}\n'
                    f'cache-write-usd-per-million-tokens = {p["cache_write"]}\n'
                    f'batch-role-arn = "arn:aws:iam::000000000000:role/bedrock-batch"\n'
                    f'batch-s3-prefix = "s3://evalwatch-batch/{name}"\n'
                    f'batch-input-usd-per-million-tokens = {p["batch_input"]}\n'
                    f'batch-output-usd-per-million-tokens = {p["batch_output"]}\n{extra}\n'
                    f'[aws]\nregion = "us-east-1"\nendpoint-url = "{s3}"\ns3-force-path-style = true\n'
                    f'bedrock-endpoint-url = "{stub_url}"\n')
            return path

        def score(name, cfg, rubric=None, extra_args=()):
            warehouse = os.path.join(work, f"wh-{name}")
            if not os.path.exists(warehouse):
                shutil.copytree(base, warehouse)
            cmd = [BINARY, "--config", cfg, "--warehouse", warehouse, "score"] + list(extra_args)
            if rubric:
                cmd += ["--rubric", rubric]
            env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{name}: {out.stderr[-3000:]}")
            return json.loads(out.stdout)["score"]

        rows = []

        def add(label, summaries, calls_per):
            judged = max(s["sampled"] for s in summaries)
            tokens = lambda key: sum(s.get(key, 0) for s in summaries)
            inp, out_t = tokens("input_tokens"), tokens("output_tokens")
            read, write = tokens("cache_read_tokens"), tokens("cache_write_tokens")
            usd = sum(s["cost_usd"] or 0 for s in summaries)
            batch = [s["batch"] for s in summaries if s.get("batch")]
            if batch and batch[0]["collected"]["judged"]:
                inp = sum(b["collected"]["input_tokens"] for b in batch)
                out_t = sum(b["collected"]["output_tokens"] for b in batch)
            k = 1000 / judged
            rows.append((label, judged, calls_per, inp * k, read * k, write * k, out_t * k, usd * k))

        reference_rubrics = one_dimension_rubrics(work)
        plain = config("plain", "prompt-caching = false")
        add("(a) AWS reference: 3 calls, one dimension each, no cache",
            [score(f"ref-{i}", plain, rubric) for i, rubric in enumerate(reference_rubrics)], 3)
        add("(b) evalwatch on demand: 1 call, every dimension", [score("on-demand", plain)], 1)
        add("(c) (b) with prompt caching", [score("cached", config("cached", "prompt-caching = true"))], 1)
        add("(d) Bedrock batch inference", [score("batch", config("batch", 'mode = "batch"\nprompt-caching = false'),
                                               extra_args=["--wait", "600"])], 1)
        reference = rows[0][7]
        print(f"Prices (USD per million tokens): on demand {p['input']} in / {p['output']} out, cache read "
              f"{p['cache_read']}, cache write {p['cache_write']}, batch {p['batch_input']} in / {p['batch_output']} out\n")
        print("| method | captures judged | calls per capture | input tokens / 1k | cache read / 1k | cache write / 1k "
              "| output tokens / 1k | USD / 1k captures | vs (a) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, judged, calls, inp, read, write, out_t, usd in rows:
            print(f"| {label} | {judged} | {calls} | {inp:,.0f} | {read:,.0f} | {write:,.0f} | {out_t:,.0f} "
                  f"| {usd:.3f} | {usd / reference:.2f} ({reference / usd:.1f}x less) |")
    finally:
        stub.terminate()
        ministack.terminate()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ceiling-rows", type=int, default=5_000)
    parser.add_argument("--capacity-rows", type=int, default=3_000)
    parser.add_argument("--only", help="comma-separated case names (default: all)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "evalwatch-bench-score"))
    parser.add_argument("--cost", action="store_true", help="the judge-bill table instead (see above)")
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    os.makedirs(args.work, exist_ok=True)
    if args.cost:
        cost_table(args)
        return
    wanted = set(args.only.split(",")) if args.only else None

    def want(name):
        return wanted is None or name in wanted

    results = []
    unthrottled = None
    if want("latency-200ms"):
        unthrottled = case("latency-200ms", args.rows, 200, None, 600_000, 64, args.work)
        results.append((unthrottled, 0.95 * 64 / 0.2))
    if want("ceiling-50/s"):
        results.append((case("ceiling-50/s", args.ceiling_rows, 0, 50, 3000, 64, args.work), 0.9 * 50))
    if want("ceiling-50/s-adaptive"):
        results.append((case("ceiling-50/s-adaptive", args.ceiling_rows, 0, 50, 600_000, 64, args.work),
                        0.9 * 50))
    if want("capacity-30%"):
        capacity = case("capacity-30%", args.capacity_rows, 200, None, 600_000, 64, args.work, 0.3)
        baseline = unthrottled["per_s"] if unthrottled else 64 / 0.2
        capacity["of_unthrottled"] = capacity["per_s"] / baseline
        results.append((capacity, 0.7 * baseline))
    print("| case | rows | judged ok | errors | wall s | judgments/s | target /s | evalwatch CPU ms/judgment "
          "| peak RSS MB | throttled | calls | pacer cuts / restores |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, target in results:
        print(f"| {r['case']} | {r['rows']} | {r['ok']} | {r['errors']} | {r['wall_s']:.1f} | {r['per_s']:.1f} | "
              f"{target:.0f} | {r['cpu_ms_per']:.3f} | {r['rss_mb']:.0f} | {r['throttled']} | {r['calls']} | "
              f"{r['pacer_cuts']} / {r['pacer_restores']} |")
    for r, _ in results:
        if "of_unthrottled" in r:
            print(f"{r['case']}: {100 * r['of_unthrottled']:.1f}% of the unthrottled goodput")
    print(json.dumps([r for r, _ in results]))


if __name__ == "__main__":
    main()
