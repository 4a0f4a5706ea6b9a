#!/usr/bin/env python3
"""Reference values for evalwatch's agreement statistics (`pipeline/agreement.rs`), computed by
the libraries people trust, called as they are (no formula re-typed here):

  - Cohen's kappa, unweighted / linear / quadratic: sklearn.metrics.cohen_kappa_score
  - ROC-AUC: sklearn.metrics.roc_auc_score
  - Krippendorff's alpha, ordinal: krippendorff.alpha (PyPI krippendorff 0.9.0)
  - Spearman's rho: scipy.stats.spearmanr

    python3 -m venv /tmp/ref-venv
    /tmp/ref-venv/bin/pip install scikit-learn==1.7.2 krippendorff==0.9.0 scipy numpy
    /tmp/ref-venv/bin/python scripts/agreement_reference.py > tests/data/agreement_reference.json

The output is committed; the Rust tests read it and must agree to 1e-9. Inputs are drawn once
from numpy's PCG64 with the seeds below (integers, or floats rounded to 6 decimals, so they survive
JSON exactly). An undefined statistic (a library's NaN) is written as null.
"""
import json
import math
import sys

import krippendorff
import numpy as np
import sklearn
from scipy import stats
from sklearn.metrics import cohen_kappa_score, roc_auc_score


def value(x):
    x = float(x)
    return None if math.isnan(x) else x


def noisy_copy(rng, labels, levels, flip):
    """labels with a share `flip` replaced by a neighbouring level (a rater's noise)."""
    out = []
    for x in labels:
        if rng.random() < flip:
            x = int(np.clip(x + rng.choice([-1, 1]), levels[0], levels[-1]))
        out.append(int(x))
    return out


def kappa_cases():
    cases = []
    for seed, n, levels, flip in [(1, 50, [1, 2, 3, 4, 5], 0.3), (2, 300, [1, 2, 3, 4, 5], 0.5),
                                  (3, 40, [0, 1], 0.2), (4, 120, [1, 2, 3], 0.6),
                                  (5, 25, [1, 2, 3, 4, 5], 0.9)]:
        rng = np.random.default_rng(seed)
        a = [int(x) for x in rng.choice(levels, size=n, p=None)]
        b = noisy_copy(rng, a, levels, flip)
        case = {"name": f"seed {seed}: {n} items on {levels}, {flip:.0%} noise", "a": a, "b": b}
        for key, weights in [("unweighted", None), ("linear", "linear"), ("quadratic", "quadratic")]:
            case[key] = value(cohen_kappa_score(a, b, weights=weights))
        cases.append(case)
    # A scale level nobody used: with the scale's levels as `labels` the weights keep its place.
    a = [1, 1, 2, 5, 5, 4, 2, 1, 5, 4]
    b = [1, 2, 2, 4, 5, 5, 1, 1, 5, 4]
    case = {"name": "labels 1..5 with 3 unused", "a": a, "b": b, "labels": [1, 2, 3, 4, 5]}
    for key, weights in [("unweighted", None), ("linear", "linear"), ("quadratic", "quadratic")]:
        case[key] = value(cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights=weights))
    cases.append(case)
    return cases


def alpha_cases():
    cases = []
    for seed, units, raters, levels, flip, missing in [(11, 30, 3, [1, 2, 3, 4, 5], 0.3, 0.0),
                                                       (12, 80, 5, [1, 2, 3, 4, 5], 0.5, 0.2),
                                                       (13, 20, 2, [0, 1], 0.6, 0.1),
                                                       (14, 60, 4, [1, 2, 3], 0.7, 0.3)]:
        rng = np.random.default_rng(seed)
        truth = [int(x) for x in rng.choice(levels, size=units)]
        data = []
        for _ in range(raters):
            row = noisy_copy(rng, truth, levels, flip)
            data.append([None if rng.random() < missing else x for x in row])
        matrix = np.array([[np.nan if x is None else x for x in row] for row in data], dtype=float)
        cases.append({
            "name": f"seed {seed}: {units} units x {raters} raters on {levels}, {flip:.0%} noise, "
                    f"{missing:.0%} missing",
            "raters": data,
            "ordinal": value(krippendorff.alpha(reliability_data=matrix,
                                                level_of_measurement="ordinal")),
        })
    return cases


def spearman_cases():
    cases = []
    for seed, n, ties in [(21, 30, False), (22, 100, True), (23, 12, True)]:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=n)
        y = 0.6 * x + rng.normal(size=n)
        if ties:
            x = np.round(x)
            y = np.round(y * 2) / 2
        x = [round(float(v), 6) for v in x]
        y = [round(float(v), 6) for v in y]
        cases.append({"name": f"seed {seed}: {n} pairs, ties {ties}", "x": x, "y": y,
                      "rho": value(stats.spearmanr(x, y).statistic)})
    return cases


def auc_cases():
    cases = []
    for seed, n, levels in [(31, 40, None), (32, 200, [0.0, 0.25, 0.5, 0.75, 1.0]), (33, 15, [0.0, 1.0])]:
        rng = np.random.default_rng(seed)
        labels = [int(x) for x in rng.integers(0, 2, size=n)]
        if levels is None:
            scores = [round(float(l * 0.8 + rng.normal()), 6) for l in labels]
        else:
            scores = [float(levels[int(np.clip(l * 2 + rng.integers(-1, 3), 0, len(levels) - 1))])
                      for l in labels]
        cases.append({"name": f"seed {seed}: {n} items, score levels {levels}", "labels": labels,
                      "scores": scores, "auc": value(roc_auc_score(labels, scores))})
    return cases


def main():
    out = {
        "generated_by": "scripts/agreement_reference.py",
        "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "krippendorff": "0.9.0", "scipy": __import__("scipy").__version__},
        "kappa": kappa_cases(),
        "alpha": alpha_cases(),
        "spearman": spearman_cases(),
        "roc_auc": auc_cases(),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
