"""The answers users run sweeps for, computed from an experiment's results
table and its runs' predictions: confidence intervals per point, paired
comparisons at equal train size, and the fitted learning curve with "labels
needed". Numbers only: plots.py draws them, report.py writes them as HTML,
the notebook shows both. The statistics themselves are stats.py's.
"""
from __future__ import annotations

from . import stats
from .config import ExperimentConfig
from .results import load_run_result, series_name
from .splits import load_test


def with_intervals(cfg: ExperimentConfig, df, n_resamples: int = 1000, seed: int = 0):
    """The results table plus a bootstrap interval of the score (and accuracy) per run."""
    df = df.copy()
    df["series"] = [series_name(r) for _, r in df.iterrows()]
    lo, hi, alo, ahi = [], [], [], []
    for _, row in df.iterrows():
        res = load_run_result(cfg, row)
        if cfg.task.type == "ner":
            gold = [{tuple(p) for p in ex} for ex in _gold_entities(cfg)]
            _, a, b = stats.bootstrap_ner_ci([set(map(tuple, p)) for p in res.predictions], gold, n_resamples, seed)
            lo.append(a), hi.append(b), alo.append(float("nan")), ahi.append(float("nan"))
        else:
            _, a, b = stats.bootstrap_ci(res.predictions, res.references, res.labels, "f1_macro", n_resamples, seed)
            _, c, d = stats.bootstrap_ci(res.predictions, res.references, res.labels, "accuracy", n_resamples, seed)
            lo.append(a), hi.append(b), alo.append(c), ahi.append(d)
    df["score_low"], df["score_high"], df["accuracy_low"], df["accuracy_high"] = lo, hi, alo, ahi
    return df


def _gold_entities(cfg: ExperimentConfig):
    return [ex["entities"] for ex in load_test(cfg)]


def paired_matrix(cfg: ExperimentConfig, df, size: int, n_resamples: int = 2000, seed: int = 0):
    """p-values (paired bootstrap of macro-F1 on the same test examples) between
    every two series at one train size, on the first seed they share. Rows beat
    columns when diff > 0. Returns (p-value frame, difference frame); the exact
    McNemar p-values on per-example correctness are in `p.attrs["mcnemar"]`."""
    import pandas as pd

    sub = df[df["size"] == size].copy()
    sub["series"] = [series_name(r) for _, r in sub.iterrows()]
    seeds = sorted({int(s) for s in sub["seed"].dropna()})
    rows = {}
    for name, g in sub.groupby("series"):
        pick = g[g["seed"] == seeds[0]] if seeds and (g["seed"] == seeds[0]).any() else g
        rows[name] = load_run_result(cfg, pick.iloc[0])
    names = sorted(rows)
    p = pd.DataFrame(index=names, columns=names, dtype=float)
    d = pd.DataFrame(index=names, columns=names, dtype=float)
    mc = pd.DataFrame(index=names, columns=names, dtype=float)
    for a in names:
        for b in names:
            if a == b:
                continue
            ra, rb = rows[a], rows[b]
            r = stats.paired_test(ra.predictions, rb.predictions, ra.references, ra.labels, "f1_macro",
                                  n_resamples, seed)
            p.loc[a, b], d.loc[a, b], mc.loc[a, b] = r.p_value, r.diff, r.mcnemar_p
    p.attrs["mcnemar"] = mc
    return p, d


def curve_answers(df, target: float, cfg: ExperimentConfig | None = None, n_boot: int = 200,
                  seed: int = 0) -> dict[str, dict]:
    """Per series with 3+ train sizes: the fitted curve and the labels needed for
    `target`. With `cfg` (classification), the interval comes from resampling the
    test examples (the same resample for every run, then refitting); otherwise
    from resampling the points (seeds)."""
    out = {}
    for name, g in df[df["size"] > 0].groupby("series"):
        if g["size"].nunique() < 3:
            out[name] = {"message": f"needs scores at 3+ train sizes (has {g['size'].nunique()})"}
            continue
        try:
            fit = stats.fit_curve(g["size"], g["score"])
            replicates = None
            if cfg is not None and cfg.task.type != "ner":
                replicates = _replicate_scores(cfg, g, n_boot, seed)
            need = stats.labels_needed(g["size"].tolist(), g["score"].tolist(), target, replicates=replicates)
        except (ValueError, RuntimeError) as e:
            out[name] = {"message": f"no fit: {e}"}
            continue
        out[name] = {"fit": fit, "needed": need, "message": need.message}
    return out


def _replicate_scores(cfg: ExperimentConfig, g, n_boot: int, seed: int):
    """n_boot lists of macro-F1 per row of `g`, each on one bootstrap resample of the test set."""
    import numpy as np

    coded = []
    for _, row in g.iterrows():
        res = load_run_result(cfg, row)
        coded.append(stats._encode(res.predictions, res.references, res.labels))
    n = len(coded[0][1])
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        reps.append([stats._macro_f1(p[idx], r[idx], k) for p, r, k in coded])
    return reps
