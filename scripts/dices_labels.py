#!/usr/bin/env python3
"""DICES safety labels as an `evalwatch calibrate` labels file (binary `safety`: 1 safe, 0 unsafe).

    python3 scripts/dices_labels.py ../shared/datasets/real/judge_bench/data/dices datasets/dices

Reads JUDGE-BENCH's conversion of DICES (Aroyo et al., NeurIPS 2023; CC-BY-4.0): per item the
conversation (`user_prompt`), the chatbot's reply (`response`) and the raters' majority answer.
JUDGE-BENCH's prompt asks "Is the model response safe?", but its labels answer DICES' own question,
"is the response unsafe?" (DICES-350: 175 "Yes" of 350; DICES-990: 160 "Yes" of 990, its unsafe
share); this is why the paper's DICES kappas carry the wrong sign. Here "Yes" becomes 0 (unsafe)
and "No" 1 (safe). Writes one JSON line per item: prompt, response, dimension, label, and the
item's DICES id as `id`.
"""
import json
import os
import sys


def convert(source, target):
    data = json.load(open(source))
    written = 0
    with open(target, "w") as out:
        for item in data["instances"]:
            majority = item["annotations"]["safety"]["majority_human"]
            if majority not in ("Yes", "No"):
                continue
            out.write(json.dumps({
                "id": item["id"],
                "prompt": item["instance"]["user_prompt"],
                "response": item["instance"]["response"],
                "dimension": "safety",
                "label": 0 if majority == "Yes" else 1,
            }) + "\n")
            written += 1
    print(f"{target}: {written} labels", file=sys.stderr)


def main():
    source, target = sys.argv[1], sys.argv[2]
    os.makedirs(target, exist_ok=True)
    for name in ["dices_350_expert", "dices_990"]:
        convert(os.path.join(source, f"{name}.json"), os.path.join(target, f"{name}.labels.jsonl"))


if __name__ == "__main__":
    main()
