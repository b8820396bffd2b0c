"""Learning curves that know how sure they are.

No single curve family is right for every experiment, so the fit is an
ensemble: six monotone, bounded families, each fitted by weighted least
squares to the measured (train size, score) points, weighted by Akaike's
criterion with the points' own test-set noise as the error model:

    chi2_f = sum_i ((y_i - f(n_i)) / sigma_i)^2       sigma_i: the score's bootstrap s.e.
    AIC_f  = chi2_f + 2 k_f                            k_f: the family's parameters
    w_f    = exp(-(AIC_f - min AIC) / 2) / sum(...)
    f(n)   = sum_f w_f f_f(n)                          the ensemble curve (monotone: a sum of monotone curves)

A family needs at least as many distinct sizes as it has parameters. Sizes
enter as x = n / N (N = the largest measured size), so every parameter is of
order one.

"Labels needed for score X" is then a distribution, not a number: the whole
ensemble is refitted on resamples of the test examples (one resample shared by
every run, so runs stay paired) and of the seeds (clustered: a drawn seed
brings all its points), and each refit gives its own answer (inf when its
curve levels off below X). `backtest` refits without the largest size and
predicts it; `next_measurement` asks which size, measured next, would narrow
the answer most.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_EXTRAPOLATION = 4.0   # answers are given up to this many times the largest measured size


# --- the families: f(x, *params) with x = n / N -------------------------------

def _pow3(x, a, b, c):
    return a - b * np.power(x, -c)


def _exp3(x, a, b, c):
    return a - b * np.exp(-c * x)


def _logpower3(x, a, b, c):
    return a / (1.0 + np.power(x / b, -c))


def _ilog2(x, a, b):
    return a - b / np.log(x * 100.0 + np.e)      # x * 100: the log bends across the measured range


def _weibull4(x, a, r, lam, d):
    return a - (a - a * r) * np.exp(-np.power(x / lam, d))      # a * r: the score at n = 0, below a


def _mmf4(x, a, r, lam, d):
    return a - (a - a * r) / (1.0 + np.power(x / lam, d))


@dataclass(frozen=True)
class Family:
    name: str
    fn: object
    lower: tuple
    upper: tuple
    starts: tuple            # initial guesses (the plateau is filled in from the data)

    @property
    def k(self) -> int:
        return len(self.lower)


FAMILIES = (
    Family("pow3", _pow3, (0, 0, 0.01), (1, 20, 3), ((None, 0.3, 0.5), (None, 0.1, 1.5))),
    Family("exp3", _exp3, (0, 0, 0.01), (1, 20, 60), ((None, 0.5, 2.0), (None, 0.5, 8.0))),
    Family("logpower3", _logpower3, (0, 1e-4, 0.05), (1, 100, 6), ((None, 0.1, 1.0), (None, 0.02, 0.5))),
    Family("ilog2", _ilog2, (0, 0), (1, 20), ((None, 1.0),)),
    Family("weibull4", _weibull4, (0, 0, 1e-4, 0.05), (1, 1, 100, 6), ((None, 0.1, 0.2, 1.0), (None, 0.3, 0.05, 0.5))),
    Family("mmf4", _mmf4, (0, 0, 1e-4, 0.05), (1, 1, 100, 6), ((None, 0.1, 0.2, 1.0), (None, 0.3, 0.05, 0.5))),
)


@dataclass
class Member:
    family: Family
    params: tuple
    chi2: float
    weight: float = 0.0

    @property
    def plateau(self) -> float:
        return float(self.params[0])


@dataclass
class EnsembleFit:
    members: list[Member]
    scale: float                          # N: the largest measured size
    sizes: list[int] = field(default_factory=list)

    def score_at(self, n):
        x = np.asarray(n, dtype=float) / self.scale
        return sum(m.weight * m.family.fn(x, *m.params) for m in self.members)

    @property
    def plateau(self) -> float:
        return float(sum(m.weight * m.plateau for m in self.members))

    def size_for(self, target: float) -> float:
        """The smallest n where the ensemble curve reaches `target` (inf if it never does)."""
        if self.plateau <= target:
            return math.inf
        lo, hi = math.log(1.0), math.log(self.scale * 1e6)
        if self.score_at(math.exp(hi)) < target:
            return math.inf
        if self.score_at(1.0) >= target:
            return 1.0
        for _ in range(60):                 # bisection on log n: the curve is monotone
            mid = (lo + hi) / 2
            if self.score_at(math.exp(mid)) >= target:
                hi = mid
            else:
                lo = mid
        return math.exp(hi)

    def weights(self) -> dict[str, float]:
        return {m.family.name: round(m.weight, 3) for m in self.members}


def _fit_family(fam: Family, x, y, sigma, warm: tuple | None = None) -> Member | None:
    from scipy.optimize import curve_fit

    top = float(min(1.0, max(y.max() + 0.02, 0.02)))
    best = None
    for start in ([warm] if warm else fam.starts):
        p0 = list(warm) if warm else [min(top, fam.upper[0])] + list(start[1:])
        p0 = [min(max(v, lo), hi) for v, lo, hi in zip(p0, fam.lower, fam.upper, strict=True)]
        try:
            with np.errstate(all="ignore"):
                params, _ = curve_fit(fam.fn, x, y, p0=p0, sigma=sigma, absolute_sigma=True,
                                      bounds=(fam.lower, fam.upper), maxfev=4000)
        except (RuntimeError, ValueError):
            continue
        with np.errstate(all="ignore"):
            resid = (fam.fn(x, *params) - y) / sigma
        chi2 = float(np.sum(resid ** 2))
        if np.isfinite(chi2) and (best is None or chi2 < best.chi2):
            best = Member(fam, tuple(float(p) for p in params), chi2)
    return best


def fit_ensemble(sizes, scores, sigmas=None, min_sigma: float = 0.01, warm: EnsembleFit | None = None) -> EnsembleFit:
    """Fit every family that the number of distinct sizes allows, weight by AIC.
    `warm`: a fit of nearby data (a resample's parent) whose parameters start each family's search."""
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(scores, dtype=float)
    keep = x > 0
    x, y = x[keep], y[keep]
    distinct = len(set(x.tolist()))
    if distinct < 3:
        raise ValueError("a learning curve needs scores at 3 or more train sizes")
    s = np.full(len(x), min_sigma) if sigmas is None else np.maximum(np.asarray(sigmas, float)[keep], min_sigma)
    scale = float(x.max())
    starts = {m.family.name: m.params for m in warm.members} if warm is not None and warm.scale == scale else {}
    members = [m for fam in FAMILIES if fam.k <= distinct
               for m in [_fit_family(fam, x / scale, y, s, starts.get(fam.name))] if m is not None]
    if not members:
        raise RuntimeError("no curve family could be fitted")
    aic = np.array([m.chi2 + 2 * m.family.k for m in members])
    w = np.exp(-(aic - aic.min()) / 2)
    for m, wi in zip(members, w / w.sum(), strict=True):
        m.weight = float(wi)
    return EnsembleFit(members, scale, sorted({int(v) for v in x}))


# --- shape checks --------------------------------------------------------------

def shape_problem(sizes, scores, sigmas=None) -> tuple[str | None, str | None]:
    """(refusal, note): a curve that does not rise is refused; one that dips
    somewhere is fitted (the families are monotone) with a note."""
    x = np.asarray(sizes, float)
    y = np.asarray(scores, float)
    keep = x > 0
    x, y = x[keep], y[keep]
    means = {n: float(y[x == n].mean()) for n in sorted(set(x.tolist()))}
    ns = list(means)
    noise = float(np.sqrt(np.mean(np.square(sigmas)))) if sigmas is not None and len(sigmas) else 0.01
    rise = means[ns[-1]] - means[ns[0]]
    # a two-sigma test of the rise from the smallest to the largest size (means over seeds)
    rise_noise = noise * math.sqrt(1 / np.sum(x == ns[0]) + 1 / np.sum(x == ns[-1]))
    if rise <= max(2 * rise_noise, 0.005):
        return (f"the scores do not rise with the train size ({means[ns[0]]:.3f} at {int(ns[0])}, "
                f"{means[ns[-1]]:.3f} at {int(ns[-1])}; noise ~{noise:.3f}): no curve to extrapolate"), None
    dips = [(int(a), int(b), means[a] - means[b]) for a, b in zip(ns, ns[1:], strict=False) if means[b] < means[a]]
    if dips:
        a, b, d = max(dips, key=lambda t: t[2])
        kind = "within the noise" if d <= 2 * noise else "beyond the noise"
        return None, (f"not monotone: the score falls by {d:.3f} from {a} to {b} ({kind}); the fitted curves are "
                      "monotone and pass between the points")
    return None, None


# --- resampling: the distribution of the answer ----------------------------------

def resample_points(points: list[tuple[int, int | None]], replicates, seed: int = 0):
    """Yield (sizes, scores) per resample: the test-set replicate b's scores, at
    the points of a resample of the seeds (clustered; all seeds once when there
    is only one)."""
    rng = np.random.default_rng(seed)
    seeds = sorted({s for _, s in points if s is not None})
    by_seed = {s: [i for i, (_, ps) in enumerate(points) if ps == s] for s in seeds}
    for rep in replicates:
        drawn = rng.choice(seeds, size=len(seeds), replace=True) if len(seeds) > 1 else seeds
        idx = [i for s in drawn for i in by_seed[s]]
        yield np.array([points[i][0] for i in idx], float), np.asarray(rep, float)[idx]


@dataclass
class Answer:
    target: float
    point: float                  # the ensemble fitted to the measured points (inf: never)
    median: float | None
    low80: float | None
    high80: float | None
    low95: float | None
    high95: float | None
    p_reachable: float            # share of resamples reaching the target within MAX_EXTRAPOLATION x N
    limit: float
    fit: EnsembleFit
    draws: np.ndarray             # the resamples' answers (inf where the curve never reaches it)
    curves: list[EnsembleFit]     # the resamples' fits
    note: str | None = None
    message: str = ""


def _pct(arr: np.ndarray, q: float) -> float:
    return float(np.sort(arr)[min(len(arr) - 1, int(round(q * (len(arr) - 1))))])


def _fmt(n: float) -> str:
    return "never" if math.isinf(n) else f"{n:,.0f}"


def labels_needed(points, scores, sigmas, replicates, target: float, seed: int = 0) -> Answer:
    """The answer to "how many labels for `target`?" as a distribution over
    resamples. `points` are (size, seed) per score; `replicates` one list of
    scores per resample of the test examples (aligned with `points`)."""
    sizes = [p[0] for p in points]
    refusal, note = shape_problem(sizes, scores, sigmas)
    if refusal:
        raise ValueError(refusal)
    fit = fit_ensemble(sizes, scores, sigmas)
    limit = MAX_EXTRAPOLATION * fit.scale
    curves, draws = [], []
    for xs, ys in resample_points(points, replicates, seed):
        try:
            f = fit_ensemble(xs, ys, sigmas=None if sigmas is None else _align(points, sigmas, xs), warm=fit)
        except (ValueError, RuntimeError):
            continue
        curves.append(f)
        draws.append(f.size_for(target))
    arr = np.asarray(draws, float)
    point = fit.size_for(target)
    ans = Answer(target, point, None, None, None, None, None, 0.0, limit, fit, arr, curves, note)
    if len(arr):
        ans.median = _pct(arr, 0.5)
        ans.low80, ans.high80 = _pct(arr, 0.1), _pct(arr, 0.9)
        ans.low95, ans.high95 = _pct(arr, 0.025), _pct(arr, 0.975)
        ans.p_reachable = float(np.mean(arr <= limit))
    ans.message = _message(ans)
    return ans


def _align(points, sigmas, xs):
    """The sigma of each resampled point (by its size: the same size has the same noise)."""
    by_size = {}
    for (n, _), s in zip(points, sigmas, strict=True):
        by_size.setdefault(n, s)
    return np.array([by_size[int(v)] for v in xs])


def _message(a: Answer) -> str:
    reach = f"reachable within {a.limit:,.0f} ({MAX_EXTRAPOLATION:.0f}x the largest size) in {a.p_reachable:.0%} " \
            "of resamples"
    if a.median is None:
        return f"no resample could be fitted; the fit to the points says {_fmt(a.point)}"
    if math.isinf(a.median) or a.median > a.limit:
        why = (f"the curves level off near {a.fit.plateau:.3f}" if math.isinf(a.point)
               else f"the median answer ({_fmt(a.median)}) lies beyond {a.limit:,.0f}")
        return f"not answered: {why}; {reach}"
    return (f"about {_fmt(a.median)} training examples (80% interval {_fmt(a.low80)}-{_fmt(a.high80)}, "
            f"95% {_fmt(a.low95)}-{_fmt(a.high95)}); {reach}")


# --- did the extrapolation earn trust here? -----------------------------------------

@dataclass
class Backtest:
    held_out: int
    predicted: float
    measured: float
    error: float                  # predicted - measured
    low: float
    high: float
    trusted: bool
    message: str


def backtest(points, scores, sigmas, replicates, seed: int = 0, tolerance: float = 0.03) -> Backtest | None:
    """Refit without the largest size, predict its score, compare with the
    measured one; the error's 95% interval from the same resamples. None when
    fewer than 3 sizes would remain. Trusted: |error| <= max(tolerance, 2 s.e.
    of the measured score)."""
    sizes = np.array([p[0] for p in points], float)
    largest = sizes.max()
    keep = [i for i, (n, _) in enumerate(points) if 0 < n < largest]
    held = [i for i, (n, _) in enumerate(points) if n == largest]
    if len({points[i][0] for i in keep}) < 3:
        return None
    sub_points = [points[i] for i in keep]
    sig = None if sigmas is None else [sigmas[i] for i in keep]
    y = np.asarray(scores, float)
    fit = fit_ensemble([p[0] for p in sub_points], y[keep], sig)
    predicted = float(fit.score_at(largest))
    measured = float(y[held].mean())
    errors = []
    for rep in replicates:
        rep = np.asarray(rep, float)
        try:
            f = fit_ensemble([p[0] for p in sub_points], rep[keep], sig, warm=fit)
        except (ValueError, RuntimeError):
            continue
        errors.append(float(f.score_at(largest)) - float(rep[held].mean()))
    err = predicted - measured
    lo, hi = (_pct(np.asarray(errors), 0.025), _pct(np.asarray(errors), 0.975)) if errors else (err, err)
    # Trusted when the prediction lands within the measurement's own noise (two s.e. of the held-out
    # score, at least `tolerance`): a wide interval of the error alone earns nothing.
    held_se = 0.0 if sigmas is None else float(np.sqrt(np.mean(np.square([sigmas[i] for i in held])) / len(held)))
    trusted = abs(err) <= max(tolerance, 2 * held_se)
    verdict = ("The extrapolation earned trust on this experiment" if trusted
               else "The extrapolation did not earn trust on this experiment: read its answers as rough guides")
    msg = (f"{verdict}: fitted without the largest size ({int(largest):,}), the curve predicted {predicted:.3f} there; "
           f"measured {measured:.3f} (error {err:+.3f}, 95% interval {lo:+.3f} to {hi:+.3f}).")
    return Backtest(int(largest), predicted, measured, err, lo, hi, trusted, msg)


# --- what to measure next -------------------------------------------------------------

@dataclass
class Suggestion:
    size: int
    narrows_by: float            # expected share of the answer's spread removed (0-1)
    train_minutes: float | None  # expected training wall time of one run at that size
    message: str


def next_measurement(answer: Answer, noise: float, cost_per_example_s: float | None = None,
                     cost_fixed_s: float = 0.0) -> Suggestion | None:
    """The train size whose measurement would narrow the answer most.

    Over the resamples, log(labels needed) L and the curve's score v(m) at a
    candidate size m vary together; measuring v(m) with noise s removes, in a
    linear-Gaussian approximation, Cov(L, v)^2 / (Var(v) + s^2) of Var(L).
    Unreachable draws count as 2x the extrapolation limit."""
    if len(answer.curves) < 20:
        return None
    cap = math.log(2 * answer.limit)
    L = np.array([min(math.log(max(d, 1.0)), cap) for d in answer.draws])
    if L.var() < 1e-6:
        return None
    measured = answer.fit.sizes
    grid = np.unique(np.round(np.geomspace(min(measured), answer.limit, 24)).astype(int))
    grid = [m for m in grid if all(abs(m - s) > 0.1 * s for s in measured)]
    best = None
    for m in grid:
        v = np.array([float(c.score_at(m)) for c in answer.curves])
        cov = float(np.mean((L - L.mean()) * (v - v.mean())))
        gain = cov ** 2 / (v.var() + noise ** 2)
        if best is None or gain > best[1]:
            best = (int(m), gain)
    if best is None:
        return None
    m, gain = best
    narrows = 1 - math.sqrt(max(0.0, 1 - gain / L.var()))     # spread (s.d.) removed
    minutes = None if cost_per_example_s is None else (cost_fixed_s + cost_per_example_s * m) / 60
    cost = f"; training one run of that size takes about {minutes:.0f} min" if minutes is not None else ""
    return Suggestion(m, narrows, minutes, f"measure n={m:,} next: expected to narrow the answer's spread by "
                                           f"about {narrows:.0%}{cost}")
