"""Bootstrap confidence intervals over the test set and paired comparisons of
runs on the same test examples (over all their seeds, Holm-corrected when
many are made). The learning curves are curves.py's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INVALID = "<invalid>"


# --- metrics on integer-coded predictions (fast enough for 1000s of resamples)

def _encode(preds: list[str], refs: list[str], labels: list[str]):
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    p = np.array([index.get(x, k) for x in preds])   # k = invalid / unknown
    r = np.array([index[x] for x in refs])
    return p, r, k


def _macro_f1(p: np.ndarray, r: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present in gold or validly predicted (as the
    classification_report module computes it)."""
    tp = np.bincount(r[p == r], minlength=k + 1)[:k]
    pred = np.bincount(p, minlength=k + 1)[:k]
    gold = np.bincount(r, minlength=k + 1)[:k]
    seen = (gold + pred) > 0
    denom = pred + gold
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1[seen].mean()) if seen.any() else 0.0


METRICS = {
    "accuracy": lambda p, r, k: float((p == r).mean()) if len(r) else 0.0,
    "f1_macro": _macro_f1,
}


def bootstrap_ci(preds: list[str], refs: list[str], labels: list[str], metric: str = "f1_macro",
                 n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(point estimate, low, high): percentile bootstrap over test examples."""
    p, r, k = _encode(preds, refs, labels)
    fn = METRICS[metric]
    point = fn(p, r, k)
    rng = np.random.default_rng(seed)
    n = len(r)
    stats = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = rng.integers(0, n, n)
        stats[b] = fn(p[idx], r[idx], k)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return point, float(lo), float(hi)


@dataclass
class PairedResult:
    metric: str
    a: float
    b: float
    diff: float          # a - b
    ci_low: float
    ci_high: float
    p_value: float       # two-sided paired bootstrap
    mcnemar_p: float     # exact McNemar on per-example correctness

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs."""
    n01 = int(np.sum(a_correct & ~b_correct))
    n10 = int(np.sum(~a_correct & b_correct))
    n = n01 + n10
    if n == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_test(a_preds: list[str], b_preds: list[str], refs: list[str], labels: list[str],
                metric: str = "f1_macro", n_resamples: int = 2000, seed: int = 0) -> PairedResult:
    """Is run A better than run B on the same test examples? Paired bootstrap of
    the metric difference (resampling examples, both runs together); the
    p-value is twice the share of resamples on the other side of zero."""
    pa, r, k = _encode(a_preds, refs, labels)
    pb, _, _ = _encode(b_preds, refs, labels)
    fn = METRICS[metric]
    a, b = fn(pa, r, k), fn(pb, r, k)
    rng = np.random.default_rng(seed)
    n = len(r)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        diffs[i] = fn(pa[idx], r[idx], k) - fn(pb[idx], r[idx], k)
    lo, hi, p = _interval_and_p(diffs, a, b)
    return PairedResult(metric, a, b, a - b, float(lo), float(hi), p, mcnemar_exact(pa == r, pb == r))


def _interval_and_p(diffs: np.ndarray, a: float, b: float) -> tuple[float, float, float]:
    """The 95% percentile interval of bootstrapped differences A - B and the
    two-sided bootstrap p-value of "no difference" (1 when nothing differs)."""
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    if a == b and not diffs.any():
        return float(lo), float(hi), 1.0
    side = np.mean(diffs <= 0) if a - b >= 0 else np.mean(diffs >= 0)
    return float(lo), float(hi), min(1.0, 2 * float(side))


def paired_test_seeds(a_runs: list[list[str]], b_runs: list[list[str]], refs: list[str], labels: list[str],
                      metric: str = "f1_macro", n_resamples: int = 2000, seed: int = 0) -> PairedResult:
    """A vs B over every seed they share: the difference is the mean over
    seeds of (metric of A's run - metric of B's run) on the same test
    examples; the bootstrap redraws the test examples (the same draw for
    every seed); McNemar pools the (seed, example) pairs."""
    enc_a = [_encode(p, refs, labels)[0] for p in a_runs]
    enc_b = [_encode(p, refs, labels)[0] for p in b_runs]
    _, r, k = _encode(a_runs[0], refs, labels)
    fn = METRICS[metric]
    a = float(np.mean([fn(p, r, k) for p in enc_a]))
    b = float(np.mean([fn(p, r, k) for p in enc_b]))
    rng = np.random.default_rng(seed)
    n = len(r)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        diffs[i] = np.mean([fn(pa[idx], r[idx], k) - fn(pb[idx], r[idx], k) for pa, pb in zip(enc_a, enc_b,
                                                                                              strict=True)])
    lo, hi, p = _interval_and_p(diffs, a, b)
    mc = mcnemar_exact(np.concatenate([pa == r for pa in enc_a]), np.concatenate([pb == r for pb in enc_b]))
    return PairedResult(metric, a, b, a - b, float(lo), float(hi), p, mc)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over all of them):
    the i-th smallest is multiplied by (m - i), then made monotone, capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_ner_ci(pred_sets: list[set], gold_sets: list[set], n_resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """(point, low, high) of entity micro-F1, resampling examples."""
    tp = np.array([len(p & g) for p, g in zip(pred_sets, gold_sets, strict=False)], float)
    fp = np.array([len(p - g) for p, g in zip(pred_sets, gold_sets, strict=False)], float)
    fn = np.array([len(g - p) for p, g in zip(pred_sets, gold_sets, strict=False)], float)

    def f1(idx):
        t, f_p, f_n = tp[idx].sum(), fp[idx].sum(), fn[idx].sum()
        return 2 * t / (2 * t + f_p + f_n) if t else 0.0

    n = len(tp)
    point = f1(np.arange(n))
    rng = np.random.default_rng(seed)
    stats_ = np.array([f1(rng.integers(0, n, n)) for _ in range(n_resamples)])
    lo, hi = np.quantile(stats_, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(point), float(lo), float(hi)
