#!/usr/bin/env python3
"""Writes the `compare` fixture: the same prompts answered twice, from Anthropic's hh-rlhf
harmless-base test split (MIT, datasets/sample/LICENSE-hh-rlhf): `baseline.jsonl` holds the reply
crowdworkers judged less harmful (`chosen`), `candidate.jsonl` the other one (`rejected`); a
candidate model that got worse on safety. One JSON object per line: id, prompt (the conversation
up to the last Assistant turn), response, and a made-up latency_ms.

    python3 datasets/compare/make_fixture.py [--hh PATH] [--pairs 160]
"""
import argparse
import gzip
import json
import os
import random

here = os.path.dirname(os.path.abspath(__file__))


def split(transcript):
    marker = "\n\nAssistant:"
    at = transcript.rfind(marker)
    return transcript[:at].strip(), transcript[at + len(marker):].strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hh", default=os.path.join(here, "..", "..", "..", "shared", "datasets", "real",
                                                 "hh_rlhf", "harmless-base", "test.jsonl.gz"))
    ap.add_argument("--pairs", type=int, default=160)
    args = ap.parse_args()
    rng = random.Random(20261128)
    rows = [json.loads(line) for line in gzip.open(args.hh, "rt", encoding="utf-8")]
    pairs = []
    for i, row in enumerate(rows):
        p1, chosen = split(row["chosen"])
        p2, rejected = split(row["rejected"])
        if p1 != p2 or not chosen or not rejected or chosen == rejected:
            continue
        if len(p1) > 1500 or len(chosen) > 1200 or len(rejected) > 1200:
            continue
        pairs.append((f"hh-{i}", p1, chosen, rejected))
    rng.shuffle(pairs)
    pairs = sorted(pairs[: args.pairs])
    with open(os.path.join(here, "baseline.jsonl"), "w", encoding="utf-8") as b, \
            open(os.path.join(here, "candidate.jsonl"), "w", encoding="utf-8") as c:
        for pid, prompt, chosen, rejected in pairs:
            b.write(json.dumps({"id": pid, "prompt": prompt, "response": chosen,
                                "latency_ms": round(rng.uniform(400, 900), 1)}) + "\n")
            c.write(json.dumps({"id": pid, "prompt": prompt, "response": rejected,
                                "latency_ms": round(rng.uniform(300, 700), 1)}) + "\n")
    print(f"{len(pairs)} pairs")


if __name__ == "__main__":
    main()
