#!/usr/bin/env python3
"""Writes `llmbar_natural.jsonl`: LLMBar's Natural set (Zeng et al. 2024, MIT; via JUDGE-BENCH,
github.com/dmg-illc/JUDGE-BENCH, data/llmbar/data-natural.json): 100 instructions, two outputs
each, and the expert's choice of the better one (`a` or `b`). The compare tests replay those
choices through the judge stub as recorded pairwise verdicts.

    python3 datasets/compare/make_llmbar.py [--src PATH]
"""
import argparse
import json
import os

here = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(here, "..", "..", "..", "shared", "datasets", "real",
                                                  "judge_bench", "data", "llmbar", "data-natural.json"))
    args = ap.parse_args()
    data = json.load(open(args.src, encoding="utf-8"))
    n = 0
    with open(os.path.join(here, "llmbar_natural.jsonl"), "w", encoding="utf-8") as out:
        for item in data["instances"]:
            inst = item["instance"]
            label = item["annotations"]["quality_single_turn"]["majority_human"]
            out.write(json.dumps({"id": item["id"], "instruction": inst["input"], "output_a": inst["output_a"],
                                  "output_b": inst["output_b"], "better": "a" if label == "model_a" else "b"}) + "\n")
            n += 1
    print(f"{n} items")


if __name__ == "__main__":
    main()
