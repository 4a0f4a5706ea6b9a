#!/usr/bin/env python3
"""Writes tests/data/embedding_stats_reference.json: real prompt embeddings (all-MiniLM-L6-v2 by
sentence-transformers, from the pinned wheel) of two topics, and what scipy and scikit-learn
compute on them, for the Rust statistics of `pipeline/analyse/embedding.rs`:

- centroid distance: scipy.spatial.distance.cosine of the two sides' means;
- MMD: the unbiased squared MMD with sklearn.metrics.pairwise.rbf_kernel, gamma = 1 / (2 *
  median squared Euclidean distance of the pooled sample's pairs);
- domain classifier: sklearn LogisticRegression(C=1) (intercept not penalised), out-of-fold
  decision values with PredefinedSplit (item i of each side in fold i mod 5), roc_auc_score;
- k-means: sklearn KMeans(n_init=10, random_state=0) inertia per k, and silhouette_score of its
  labels.

    target/sentence-transformers-venv/bin/python scripts/embedding_stats_reference.py

The texts: the last human turn of 48 hh-rlhf harmless-base prompts (MIT, datasets/compare/) and
48 LLMBar Natural instructions (MIT, datasets/pairs/). The statistics are computed on the
vectors as written (rounded to 6 decimals), so Rust reads exactly what scikit-learn saw.
"""
import json
import os
import sys
import tempfile

import pinned_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_SIDE = 48
FOLDS = 5


def last_human_turn(conversation):
    turns = conversation.split("\n\nHuman: ")
    last = turns[-1]
    if last.startswith("Human: "):
        last = last[len("Human: "):]
    return last.split("\n\nAssistant:")[0].strip()


def texts():
    hh, llmbar = [], []
    with open(os.path.join(ROOT, "datasets", "compare", "baseline.jsonl")) as f:
        for line in f:
            hh.append(last_human_turn(json.loads(line)["prompt"]))
    with open(os.path.join(ROOT, "datasets", "pairs", "llmbar_natural.labels.jsonl")) as f:
        for line in f:
            llmbar.append(json.loads(line)["prompt"])
    return hh[:PER_SIDE], llmbar[:PER_SIDE]


def folds_of(labels):
    counters = {}
    out = []
    for label in labels:
        n = counters.get(label, 0)
        out.append(n % FOLDS)
        counters[label] = n + 1
    return out


def main():
    import numpy as np
    import scipy
    import sklearn
    from scipy.spatial.distance import cosine
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score, silhouette_score
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel
    from sklearn.model_selection import PredefinedSplit, cross_val_predict
    from sentence_transformers import SentenceTransformer

    a_texts, b_texts = texts()
    with tempfile.TemporaryDirectory() as tmp:
        model = SentenceTransformer(pinned_model.unpack(tmp), device="cpu")
        a = model.encode(a_texts, normalize_embeddings=True, convert_to_numpy=True)
        b = model.encode(b_texts, normalize_embeddings=True, convert_to_numpy=True)
    a = np.round(a.astype(np.float64), 6)
    b = np.round(b.astype(np.float64), 6)

    def mmd(x, y):
        pooled = np.vstack([x, y])
        d2 = euclidean_distances(pooled, squared=True)
        upper = d2[np.triu_indices(len(pooled), k=1)]
        gamma = 0.5 / np.median(upper)
        kxx = rbf_kernel(x, x, gamma=gamma)
        kyy = rbf_kernel(y, y, gamma=gamma)
        kxy = rbf_kernel(x, y, gamma=gamma)
        m, n = len(x), len(y)
        value = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())
        return float(value), float(gamma)

    def auc(x, y):
        pooled = np.vstack([x, y])
        labels = np.array([0] * len(x) + [1] * len(y))
        split = PredefinedSplit(folds_of(list(labels)))
        model = LogisticRegression(C=1.0, tol=1e-10, max_iter=100000)
        scores = cross_val_predict(model, pooled, labels, cv=split, method="decision_function")
        return float(roc_auc_score(labels, scores))

    half = PER_SIDE // 2
    shifted_mmd, gamma = mmd(a, b)
    same_mmd, same_gamma = mmd(a[:half], a[half:])
    pooled = np.vstack([a, b])
    kmeans = []
    for k in range(2, 7):
        fit = KMeans(n_clusters=k, n_init=10, random_state=0).fit(pooled)
        kmeans.append({
            "k": k,
            "inertia": float(fit.inertia_),
            "labels": [int(v) for v in fit.labels_],
            "silhouette": float(silhouette_score(pooled, fit.labels_)),
        })
    out = {
        "made_by": "scripts/embedding_stats_reference.py",
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "texts_a": a_texts,
        "texts_b": b_texts,
        "a": a.tolist(),
        "b": b.tolist(),
        "centroid_cosine": float(cosine(a.mean(axis=0), b.mean(axis=0))),
        "centroid_cosine_same": float(cosine(a[:half].mean(axis=0), a[half:].mean(axis=0))),
        "mmd2": shifted_mmd,
        "gamma": gamma,
        "mmd2_same": same_mmd,
        "gamma_same": same_gamma,
        "auc": auc(a, b),
        "auc_same": auc(a[:half], a[half:]),
        "kmeans": kmeans,
    }
    path = os.path.join(ROOT, "tests", "data", "embedding_stats_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}: {len(a)} + {len(b)} vectors; auc {out['auc']:.3f}, "
          f"same {out['auc_same']:.3f}; mmd2 {shifted_mmd:.4f}, same {same_mmd:.4f}")


if __name__ == "__main__":
    main()
