"""The answers users run sweeps for, computed from an experiment's results
table and its runs' predictions: confidence intervals per point, paired
comparisons at equal train size, and the fitted learning curve with "labels
needed". Numbers only: plots.py draws them, report.py writes them as HTML,
the notebook shows both. The statistics themselves are stats.py's.
"""
from __future__ import annotations

from ..config import ExperimentConfig
from ..tasks import get_task
from . import curves, stats
from .results import load_run_result, series_name


def with_intervals(cfg: ExperimentConfig, df, n_resamples: int = 1000, seed: int = 0):
    """The results table plus a bootstrap interval of the score (and accuracy) per run (Task.intervals)."""
    task = get_task(cfg.task.type)
    df = df.copy()
    df["series"] = [series_name(r) for _, r in df.iterrows()]
    bounds = [task.intervals(cfg, load_run_result(cfg, row), n_resamples, seed) for _, row in df.iterrows()]
    lo, hi, alo, ahi = (list(x) for x in zip(*bounds, strict=True)) if bounds else ([], [], [], [])
    df["score_low"], df["score_high"], df["accuracy_low"], df["accuracy_high"] = lo, hi, alo, ahi
    return df


def paired_matrix(cfg: ExperimentConfig, df, size: int, n_resamples: int = 2000, seed: int = 0):
    """Every two series at one train size, over all the seeds both have (the
    mean over seeds of the macro-F1 difference on the same test examples, a
    paired bootstrap that redraws the examples). p-values are Holm-corrected
    over the matrix's pairs; rows beat columns when diff > 0. Returns
    (p-value frame, difference frame); `p.attrs` holds "raw" (uncorrected),
    "mcnemar" (exact McNemar over the (seed, example) pairs) and "seeds"."""
    import pandas as pd

    sub = df[df["size"] == size].copy()
    sub["series"] = [series_name(r) for _, r in sub.iterrows()]
    runs = {name: {(None if s != s else int(s)): load_run_result(cfg, row)
                   for s, row in ((r["seed"], r) for _, r in g.iterrows())}
            for name, g in sub.groupby("series")}
    names = sorted(runs)
    p = pd.DataFrame(index=names, columns=names, dtype=float)
    d, raw, mc = p.copy(), p.copy(), p.copy()
    seeds_used = {}
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for a, b in pairs:
        shared = sorted(set(runs[a]) & set(runs[b]), key=lambda s: (s is None, s))
        # (no seed in common, e.g. a zero-shot run against a trained one: one run of each, same examples)
        pick_a = [runs[a][s] for s in shared] or [next(iter(runs[a].values()))]
        pick_b = [runs[b][s] for s in shared] or [next(iter(runs[b].values()))]
        r = stats.paired_test_seeds([x.predictions for x in pick_a], [x.predictions for x in pick_b],
                                    pick_a[0].references, pick_a[0].labels, "f1_macro", n_resamples, seed)
        raw.loc[a, b] = raw.loc[b, a] = r.p_value
        d.loc[a, b], d.loc[b, a] = r.diff, -r.diff
        mc.loc[a, b] = mc.loc[b, a] = r.mcnemar_p
        seeds_used[(a, b)] = seeds_used[(b, a)] = len(pick_a)
    adjusted = stats.holm([raw.loc[a, b] for a, b in pairs])
    for (a, b), q in zip(pairs, adjusted, strict=True):
        p.loc[a, b] = p.loc[b, a] = q
    p.attrs.update(raw=raw, mcnemar=mc, seeds=seeds_used)
    return p, d


def curve_answers(df, target: float, cfg: ExperimentConfig | None = None, n_boot: int = 200,
                  seed: int = 0) -> dict[str, dict]:
    """Per series with 3+ train sizes: the ensemble learning curve
    (curves.py), "labels needed for `target`" as a distribution over
    resamples, the backtest without the largest size, and the next size worth
    measuring. With `cfg` (classification) the resamples redraw the test
    examples (the same draw for every run, then refit); otherwise the points
    are redrawn around their intervals. Seeds are resampled as clusters."""
    import numpy as np

    out = {}
    for name, g in df[df["size"] > 0].groupby("series"):
        if g["size"].nunique() < 3:
            out[name] = {"message": f"needs scores at 3+ train sizes (has {g['size'].nunique()})"}
            continue
        g = g.sort_values(["size", "seed"])
        points = [(int(r["size"]), None if r["seed"] != r["seed"] else int(r["seed"])) for _, r in g.iterrows()]
        scores = g["score"].to_numpy(float)
        sigmas = _sigmas(g)
        if cfg is not None and get_task(cfg.task.type).label_statistics:
            replicates = _replicate_scores(cfg, g, n_boot, seed)
        else:
            rng = np.random.default_rng(seed)
            replicates = [scores + rng.normal(0, sigmas) for _ in range(n_boot)]
        try:
            answer = curves.labels_needed(points, scores, sigmas, replicates, target, seed)
        except (ValueError, RuntimeError) as e:
            out[name] = {"message": f"no curve: {e}"}
            continue
        check = curves.backtest(points, scores, sigmas, replicates, seed)
        per_example, fixed = _cost_model(g)
        suggestion = curves.next_measurement(answer, float(np.sqrt(np.mean(np.square(sigmas)))), per_example, fixed)
        out[name] = {"answer": answer, "fit": answer.fit, "backtest": check, "suggestion": suggestion,
                     "message": answer.message + (f" ({answer.note})" if answer.note else "")}
    return out


def _sigmas(g):
    """Each score's standard error, from its 95% bootstrap interval when known."""
    import numpy as np

    if {"score_low", "score_high"} <= set(g.columns) and g["score_low"].notna().all():
        return np.maximum((g["score_high"] - g["score_low"]).to_numpy(float) / 3.92, 1e-3)
    return np.full(len(g), 0.02)


def _cost_model(g) -> tuple[float | None, float]:
    """Training wall time = fixed + per_example x size, fitted to the series' runs."""
    import numpy as np

    t = g[g["train_wall_s"].notna()] if "train_wall_s" in g else g.iloc[0:0]
    if t["size"].nunique() < 2:
        return None, 0.0
    slope, intercept = np.polyfit(t["size"].to_numpy(float), t["train_wall_s"].to_numpy(float), 1)
    return (float(slope), max(float(intercept), 0.0)) if slope > 0 else (None, 0.0)


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
