#!/usr/bin/env python3
"""Reference values for evalwatch's drift statistics, computed independently with scipy.

    python3 -m venv /tmp/scipy-venv && /tmp/scipy-venv/bin/pip install scipy numpy
    /tmp/scipy-venv/bin/python scripts/stats_reference.py > tests/data/stats_reference.json

The output is committed; `pipeline/analyse/stats.rs` tests read it and must agree to 1e-9 where the
method is exact (everything below but the KS p-value's finite-sample form, see `ks`).

Inputs are fixed vectors drawn once from numpy's PCG64 with the seeds below, rounded to 6 decimals
so they survive JSON exactly. Each case records the inputs and what scipy (or the formula, for PSI
and the bootstrap) says.
"""
import json
import sys

import numpy as np
from scipy import special, stats
from scipy.spatial import distance

EPS = 1e-4  # PSI: proportion used for an empty bin


def rounded(a):
    return [round(float(x), 6) for x in a]


def edges_of(baseline, max_bins=10):
    """Bin edges from the baseline: its distinct values when few, else its deciles (deduplicated).
    A value v falls in the first bin whose edge is >= v; values above the last edge in the last bin."""
    distinct = np.unique(baseline)
    if len(distinct) <= max_bins:
        return [float(x) for x in distinct[:-1]]
    qs = np.quantile(baseline, [i / max_bins for i in range(1, max_bins)], method="linear")
    return [float(x) for x in np.unique(qs)]


def proportions(values, edges):
    idx = np.searchsorted(np.asarray(edges), np.asarray(values), side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return counts / counts.sum()


# PSI has no implementation in scipy, scikit-learn or statsmodels (it is a credit-scoring
# convention, sum((c - b) * ln(c / b)) over bins): this is the one statistic written out here.
def psi(b, c):
    b = np.where(b == 0, EPS, b)
    c = np.where(c == 0, EPS, c)
    return float(np.sum((c - b) * np.log(c / b)))


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return state, z ^ (z >> 31)


def bootstrap_mean_delta(base, cur, resamples, seed, level=0.95):
    """Percentile bootstrap of mean(cur) - mean(base): per resample, n_base then n_cur indices drawn
    as ((splitmix64 >> 11) * n) >> 53; the interval is numpy's linear-interpolated quantiles."""
    state = seed
    deltas = []
    for _ in range(resamples):
        sb = 0.0
        for _ in range(len(base)):
            state, x = splitmix64(state)
            sb += base[((x >> 11) * len(base)) >> 53]
        sc = 0.0
        for _ in range(len(cur)):
            state, x = splitmix64(state)
            sc += cur[((x >> 11) * len(cur)) >> 53]
        deltas.append(sc / len(cur) - sb / len(base))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(deltas), [alpha, 1 - alpha], method="linear")
    return float(np.mean(cur) - np.mean(base)), float(lo), float(hi)


def ks(a, b):
    """D from scipy; p by the Kolmogorov limiting distribution with Stephens' small-sample factor,
    which is what evalwatch documents (scipy's ks_2samp p is recorded alongside, for information)."""
    res = stats.ks_2samp(a, b)
    n1, n2 = len(a), len(b)
    en = n1 * n2 / (n1 + n2)
    z = (np.sqrt(en) + 0.12 + 0.11 / np.sqrt(en)) * res.statistic
    return float(res.statistic), float(special.kolmogorov(z)), float(res.pvalue)


def main():
    rng = np.random.default_rng(20261128)
    cases = []
    # Continuous features (lengths), a shifted and a same-distribution pair, and small samples.
    pairs = [
        ("lognormal shift", rng.lognormal(5.0, 0.6, 400), rng.lognormal(5.15, 0.6, 300)),
        ("same distribution", rng.normal(0.0, 1.0, 500), rng.normal(0.0, 1.0, 450)),
        ("small samples", rng.normal(0.0, 1.0, 25), rng.normal(0.8, 1.0, 20)),
        # Rubric scores: levels 1..5 normalised to 0..1 (few distinct values).
        ("score levels", rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], 300, p=[0.02, 0.03, 0.1, 0.25, 0.6]),
         rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], 120, p=[0.06, 0.08, 0.16, 0.25, 0.45])),
    ]
    for name, base, cur in pairs:
        base, cur = np.asarray(rounded(base)), np.asarray(rounded(cur))
        edges = edges_of(base)
        pb, pc = proportions(base, edges), proportions(cur, edges)
        d, p, p_scipy = ks(base, cur)
        delta, lo, hi = bootstrap_mean_delta(list(base), list(cur), 200, 42)
        cases.append({
            "name": name,
            "baseline": list(base),
            "current": list(cur),
            "edges": edges,
            "p_baseline": list(pb),
            "p_current": list(pc),
            "psi": psi(pb, pc),
            "js": float(distance.jensenshannon(pb, pc, base=2)),
            "ks_d": d,
            "ks_p": p,
            "ks_p_scipy_ks_2samp": p_scipy,
            "wasserstein": float(stats.wasserstein_distance(base, cur)),
            "mean_delta": delta,
            "bootstrap_resamples": 200,
            "bootstrap_seed": 42,
            "ci_low": lo,
            "ci_high": hi,
        })
    tables = [
        ("2x2 with Yates", [[40, 60], [25, 75]]),
        ("3 categories", [[120, 30, 50], [80, 45, 25]]),
        ("2x4 finish reasons", [[500, 20, 5, 1], [420, 60, 9, 3]]),
        ("2x2 small diff", [[3, 97], [2, 98]]),
    ]
    chi = []
    for name, table in tables:
        res = stats.chi2_contingency(np.asarray(table, dtype=float))
        chi.append({"name": name, "table": table, "statistic": float(res.statistic),
                    "p_value": float(res.pvalue), "dof": int(res.dof)})
    ps = [0.001, 0.04, 0.03, 0.2, 0.8, 0.012, 0.049, 0.5]
    bh = [float(x) for x in stats.false_discovery_control(ps, method="bh")]
    kolmogorov = [{"y": y, "q": float(special.kolmogorov(y))} for y in [0.05, 0.2, 0.5, 0.8, 1.0, 1.36, 2.0, 3.0]]
    gamma = [{"x": x, "k": k, "sf": float(stats.chi2.sf(x, k))} for x, k in
             [(0.5, 1), (3.84, 1), (10.0, 2), (7.8, 3), (30.0, 10), (150.0, 100), (0.01, 5)]]
    json.dump({
        "generated_by": "scripts/stats_reference.py",
        "scipy": __import__("scipy").__version__,
        "numpy": np.__version__,
        "psi_epsilon": EPS,
        "cases": cases,
        "chi2": chi,
        "bh": {"p": ps, "adjusted": bh},
        "kolmogorov": kolmogorov,
        "chi2_sf": gamma,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
