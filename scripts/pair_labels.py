#!/usr/bin/env python3
"""People's preferences between two replies as `evalwatch calibrate` labels files: one JSON line
per pair with `id`, `prompt`, `response_a`, `response_b`, `label` (`a` or `b`: the better reply).

    python3 scripts/pair_labels.py                      # the committed files in datasets/pairs/
    python3 scripts/pair_labels.py --hh-all /tmp/hh.labels.jsonl   # every hh-rlhf test pair

- `datasets/pairs/llmbar_natural.labels.jsonl`: LLMBar's Natural set (Zeng et al., "Evaluating
  Large Language Models at Evaluating Instruction Following", ICLR 2024; MIT, princeton-nlp/LLMBar,
  as distributed by JUDGE-BENCH, data/llmbar/data-natural.json): 100 instructions, two outputs,
  the expert's choice (`majority_human`, `model_a` / `model_b`), in the given order, so the
  figures sit next to JUDGE-BENCH's published ones for LLM judges on the same items.
- `datasets/pairs/hh_rlhf_harmless.labels.jsonl`: Anthropic's hh-rlhf harmless-base test split
  (MIT, datasets/sample/LICENSE-hh-rlhf): transcripts whose `chosen` and `rejected` share the
  conversation and differ in the last Assistant reply; crowdworkers chose `chosen` as the less
  harmful. Which one is reply A is drawn per pair (seed 20261130), so that "always A" is worth
  nothing. The committed file holds 300 pairs drawn with the same seed (replies up to 1,200
  characters); `--hh-all` writes every such pair (2,303) for the README's figures.
"""
import argparse
import gzip
import json
import os
import random
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.path.join(root, "..", "shared", "datasets", "real")


def split(transcript):
    marker = "\n\nAssistant:"
    at = transcript.rfind(marker)
    return transcript[:at].strip(), transcript[at + len(marker):].strip()


def llmbar(source, target):
    data = json.load(open(source, encoding="utf-8"))
    with open(target, "w", encoding="utf-8") as out:
        for item in data["instances"]:
            inst = item["instance"]
            choice = item["annotations"]["quality_single_turn"]["majority_human"]
            out.write(json.dumps({"id": item["id"], "prompt": inst["input"], "response_a": inst["output_a"],
                                  "response_b": inst["output_b"], "label": "a" if choice == "model_a" else "b"})
                      + "\n")
    print(f"{target}: {len(data['instances'])} pairs", file=sys.stderr)


def hh(source, target, limit):
    rng = random.Random(20261130)
    rows = [json.loads(line) for line in gzip.open(source, "rt", encoding="utf-8")]
    pairs = []
    for i, row in enumerate(rows):
        p1, chosen = split(row["chosen"])
        p2, rejected = split(row["rejected"])
        if p1 != p2 or not chosen or not rejected or chosen == rejected:
            continue
        if limit and (len(p1) > 1500 or len(chosen) > 1200 or len(rejected) > 1200):
            continue
        pairs.append((f"hh-{i}", p1, chosen, rejected, rng.random() < 0.5))
    if limit:
        pairs = sorted(random.Random(20261130).sample(pairs, limit))
    with open(target, "w", encoding="utf-8") as out:
        for pid, prompt, chosen, rejected, chosen_first in pairs:
            a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
            out.write(json.dumps({"id": pid, "prompt": prompt, "response_a": a, "response_b": b,
                                  "label": "a" if chosen_first else "b"}) + "\n")
    print(f"{target}: {len(pairs)} pairs", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmbar", default=os.path.join(shared, "judge_bench", "data", "llmbar", "data-natural.json"))
    ap.add_argument("--hh", default=os.path.join(shared, "hh_rlhf", "harmless-base", "test.jsonl.gz"))
    ap.add_argument("--hh-all", metavar="OUT", help="write every hh-rlhf test pair to OUT instead")
    args = ap.parse_args()
    if args.hh_all:
        hh(args.hh, args.hh_all, 0)
        return
    target = os.path.join(root, "datasets", "pairs")
    os.makedirs(target, exist_ok=True)
    llmbar(args.llmbar, os.path.join(target, "llmbar_natural.labels.jsonl"))
    hh(args.hh, os.path.join(target, "hh_rlhf_harmless.labels.jsonl"), 300)


if __name__ == "__main__":
    main()
