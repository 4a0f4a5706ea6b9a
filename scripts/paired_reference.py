#!/usr/bin/env python3
"""Reference values for evalwatch's paired statistics (the `compare` command), computed
independently: scipy.stats.wilcoxon (its defaults: zeros dropped, two-sided, no continuity
correction, exact when n <= 50 without ties or zeros, an exhaustive sign-flip permutation test
when n <= 13 with them, else the tie-corrected normal approximation), the Wilson score interval
by statsmodels' `proportion_confint(method="wilson")`, and a paired percentile bootstrap of the
mean difference with the documented generator (splitmix64, index = ((x >> 11) * n) >> 53,
numpy's linear-interpolated quantiles; no library has this generator, so the bootstrap is the
one reference written out here).

    target/bench-venv/bin/python scripts/paired_reference.py > tests/data/paired_reference.json

(any venv with scipy, numpy and statsmodels:
`python3 -m venv V && V/bin/pip install scipy numpy statsmodels`).
"""
import json
import sys

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def paired_bootstrap(diffs, resamples, seed, level=0.95):
    n = len(diffs)
    state = seed
    means = []
    for _ in range(resamples):
        total = 0.0
        for _ in range(n):
            state, x = splitmix64(state)
            total += diffs[((x >> 11) * n) >> 53]
        means.append(total / n)
    alpha = (1 - level) / 2
    return float(np.mean(diffs)), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def wilson(k, n):
    return proportion_confint(k, n, alpha=0.05, method="wilson")


def rounded(a):
    return [round(float(x), 6) for x in a]


def main():
    rng = np.random.default_rng(20261128)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    cases = [
        ("continuous, n=30, no ties (exact)", rng.normal(0.05, 0.2, 30)),
        ("continuous, n=12, no ties (exact)", rng.normal(-0.1, 0.3, 12)),
        ("continuous, n=80 (normal)", rng.normal(0.02, 0.25, 80)),
        ("score levels, n=400, ties and zeros (normal)",
         rng.choice(levels, 400, p=[0.05, 0.1, 0.2, 0.3, 0.35]) - rng.choice(levels, 400, p=[0.04, 0.08, 0.18, 0.3, 0.4])),
        ("score levels, n=10, ties and zeros (permutation)",
         rng.choice(levels, 10) - rng.choice(levels, 10)),
        ("score levels, n=40, ties (normal)",
         np.array([0.25, -0.5, 0.25, 0.75, -0.25] * 8) + 0.0),
    ]
    out = {"wilcoxon": [], "bootstrap": [], "wilson": []}
    for name, d in cases:
        d = np.asarray(rounded(d))
        res = stats.wilcoxon(d)
        out["wilcoxon"].append({"name": name, "diffs": list(d), "statistic": float(res.statistic),
                                "p_value": float(res.pvalue)})
        mean, lo, hi = paired_bootstrap(list(d), 300, 7)
        out["bootstrap"].append({"name": name, "diffs": list(d), "resamples": 300, "seed": 7,
                                 "mean": mean, "ci_low": lo, "ci_high": hi})
    for k, n in [(0, 20), (3, 20), (10, 20), (20, 20), (412, 805), (1, 1000)]:
        lo, hi = wilson(k, n)
        out["wilson"].append({"k": k, "n": n, "low": float(lo), "high": float(hi)})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
