"""From points on a curve to answers: bootstrap confidence intervals over the
test set, paired comparisons of two runs on the same test examples, and a
saturating learning curve that says how many labels a target score needs.
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
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    if a == b and not diffs.any():
        p = 1.0
    else:
        side = np.mean(diffs <= 0) if a - b >= 0 else np.mean(diffs >= 0)
        p = min(1.0, 2 * float(side))
    return PairedResult(metric, a, b, a - b, float(lo), float(hi), p, mcnemar_exact(pa == r, pb == r))


# --- learning curves -------------------------------------------------------

def power_law(n, a, b, c):
    """A saturating learning curve: score(n) = a - b * n^(-c), a = the plateau."""
    return a - b * np.power(n, -c)


@dataclass
class CurveFit:
    a: float
    b: float
    c: float
    sizes: list[int]
    rmse: float

    def score_at(self, n: float) -> float:
        return float(power_law(n, self.a, self.b, self.c))

    def size_for(self, target: float) -> float:
        """Train size where the fitted curve reaches `target`; inf if it never does."""
        if target >= self.a:
            return math.inf
        return float((self.b / (self.a - target)) ** (1 / self.c))


def fit_curve(sizes, scores) -> CurveFit:
    """Least-squares inverse power law through (size, score) points (sizes > 0;
    several scores per size, e.g. seeds, are all used). Needs 3 distinct sizes."""
    from scipy.optimize import curve_fit

    x = np.asarray(sizes, dtype=float)
    y = np.asarray(scores, dtype=float)
    keep = x > 0
    x, y = x[keep], y[keep]
    if len(set(x)) < 3:
        raise ValueError("a learning curve needs scores at 3 or more train sizes")
    top = float(y.max())
    p0 = (min(1.0, top + 0.05), max(1e-3, top - float(y.min()) + 0.1) * float(x.min()) ** 0.5, 0.5)
    params, _ = curve_fit(power_law, x, y, p0=p0, bounds=([0.0, 0.0, 0.01], [1.0, np.inf, 3.0]), maxfev=20000)
    a, b, c = (float(v) for v in params)
    rmse = float(np.sqrt(np.mean((power_law(x, a, b, c) - y) ** 2)))
    return CurveFit(a, b, c, sorted({int(v) for v in x}), rmse)


@dataclass
class LabelsNeeded:
    target: float
    size: float | None            # None when refused
    low: float | None             # bootstrap interval of the size
    high: float | None
    plateau: float
    message: str


MAX_EXTRAPOLATION = 4.0   # answer for sizes up to this many times the largest measured


def labels_needed(sizes, scores, target: float, n_boot: int = 200, seed: int = 0,
                  replicates: list[list[float]] | None = None) -> LabelsNeeded:
    """How many training examples the fitted curve needs to reach `target`, with
    a 95% interval from refitting: on `replicates` (the scores recomputed on
    bootstrap resamples of the test set, one list per resample) when given,
    else on bootstrap resamples of the points (seeds). Refuses to answer beyond
    MAX_EXTRAPOLATION x the largest measured size, or when the curve's plateau
    is below the target."""
    fit = fit_curve(sizes, scores)
    largest = max(fit.sizes)
    limit = MAX_EXTRAPOLATION * largest
    n = fit.size_for(target)
    x, y = np.asarray(sizes, float), np.asarray(scores, float)
    rng = np.random.default_rng(seed)
    boots = []
    if replicates is not None:
        samples = [(x, np.asarray(rep, float)) for rep in replicates]
    else:
        samples = []
        for _ in range(n_boot):
            idx = rng.integers(0, len(x), len(x))
            samples.append((x[idx], y[idx]))
    for xs, ys in samples:
        if len(set(xs[xs > 0])) < 3:
            continue
        try:
            boots.append(fit_curve(xs, ys).size_for(target))
        except (ValueError, RuntimeError):
            continue
    lo = hi = None
    if boots:
        # A resample whose curve never reaches the target counts as an infinite size.
        arr = np.sort(np.asarray(boots))
        lo = float(arr[int(0.025 * (len(arr) - 1))])
        hi = float(arr[int(math.ceil(0.975 * (len(arr) - 1)))])
    if math.isinf(n):
        return LabelsNeeded(target, None, lo, hi, fit.a,
                            f"not reached: the fitted curve levels off at {fit.a:.3f} < {target:.3f}")
    if n > limit:
        return LabelsNeeded(target, None, lo, hi, fit.a,
                            f"beyond the data: the fit puts it near {n:,.0f} examples, more than "
                            f"{MAX_EXTRAPOLATION:.0f}x the largest size measured ({largest}); not extrapolating")
    interval = ""
    if lo is not None and math.isfinite(hi):
        interval = f" (95% interval {lo:,.0f}-{hi:,.0f})"
    elif lo is not None and math.isfinite(lo):
        interval = f" (95% interval from {lo:,.0f} up: in some resamples the curve never reaches {target:.2f})"
    return LabelsNeeded(target, n, lo, hi, fit.a, f"about {n:,.0f} training examples{interval}")


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
