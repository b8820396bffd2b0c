"""Figures: learning curves (with the fitted curves and "labels needed"),
the cost of each point, a run's confusion matrix; and a CJK font for Chinese
labels. Every function takes numbers already computed (results.py,
analysis.py) and returns a matplotlib Figure.
"""
from __future__ import annotations

from ..runspec import is_baseline_model
from ..tasks import get_task, task_types
from .results import base_in_every_variant, series_keys, series_name


def metric_name(metric: str) -> str:
    """How an axis names a metric: as the task types do (Task.metric_labels); `score` is each type's
    headline, e.g. "score (macro-F1; ner: entity micro-F1)"."""
    tasks = [get_task(t) for t in task_types()]
    if metric == "score":
        first = tasks[0].headline_label
        others = [f"{t.name}: {t.headline_label}" for t in tasks[1:] if t.headline_label != first]
        return f"score ({'; '.join([first, *others])})"
    return next((t.metric_labels[metric] for t in tasks if metric in t.metric_labels), metric)


def _score_axis(ax, xlabel: str, metric: str, legend_size: int) -> None:
    """A panel whose y axis is a score from 0 to 1."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_name(metric))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def plot_learning_curves(df, metrics=("score", "accuracy"), ax=None):
    """One line per model (and prompt/decoding when they vary): mean over seeds
    against train size, shaded min-max spread over seeds. Zero-shot base models
    are the points at size 0; classical baselines are dashed."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.4), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    keys = series_keys(df)
    df = base_in_every_variant(df)
    for metric, a in zip(metrics, axes, strict=False):
        for name, sub in df.groupby(keys):
            name = name if isinstance(name, tuple) else (name,)
            g = sub.groupby("size")[metric]
            mean, lo, hi = g.mean(), g.min(), g.max()
            style = "--" if is_baseline_model(sub["model"].iloc[0]) else "-"
            line = a.plot(mean.index, mean.values, style, marker="o", label=" / ".join(str(x) for x in name if x))[0]
            a.fill_between(mean.index, lo.values, hi.values, alpha=0.2, color=line.get_color())
        _score_axis(a, "training examples (0 = zero-shot base model)", metric, legend_size=8)
    fig.tight_layout()
    return fig


def plot_confusion(result, ax=None, normalise=True):
    """Confusion matrix of one classification RunResult (rows: gold, columns:
    predicted; the last column counts invalid answers)."""
    import matplotlib.pyplot as plt
    import numpy as np

    m = result.metrics
    labels = m["confusion_labels"]
    cm = np.array(m["confusion_matrix"], dtype=float)
    keep = cm.sum(axis=1) > 0   # rows: classes present in the test set
    rows = [lab for lab, k in zip(labels, keep, strict=False) if k]
    cm = cm[keep]
    if normalise:
        cm = cm / cm.sum(axis=1, keepdims=True)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(labels), 1 + 0.5 * len(rows)))
    else:
        fig = ax.figure
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j] > 0:
                ax.text(j, i, f"{cm[i, j]:.2f}" if normalise else int(cm[i, j]), ha="center", va="center",
                        fontsize=7, color="white" if cm[i, j] > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{result.run_id} [{result.decoding}] (macro-F1 {m['f1_macro']:.3f})")
    fig.tight_layout()
    return fig


def plot_curves_with_fits(df, answers: dict, target: float):
    """Scores with their intervals on a log size axis (zero-shot drawn at the
    left edge), each series' ensemble curve (median over resamples) with its
    80% band where it is trusted (the measured range, and up to the
    extrapolation limit only when the backtest passed; beyond, a dotted line
    without a band), the target, and a legend-like list of the answers, so no
    two labels overlap."""
    import math

    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8.5, 5))
    measured = sorted(s for s in df["size"].unique() if s > 0)
    zero_x = measured[0] / 3 if measured else 1
    notes = []
    for name, g in df.groupby("series"):
        m = g.groupby("size").agg(score=("score", "mean"), lo=("score_low", "mean"), hi=("score_high", "mean"))
        xs_pts = [zero_x if s == 0 else s for s in m.index]
        style = "--" if is_baseline_model(g["model"].iloc[0]) else ""
        line = ax.errorbar(xs_pts, m["score"], yerr=[m["score"] - m["lo"], m["hi"] - m["score"]], fmt="o" + style,
                           capsize=3, label=name, alpha=0.9)
        colour = line[0].get_color()
        a = answers.get(name, {})
        ans = a.get("answer")
        if ans is None:
            continue
        trusted_to = ans.limit if a.get("backtest") is not None and a["backtest"].trusted else max(ans.fit.sizes)
        xs = np.geomspace(min(ans.fit.sizes), ans.limit, 120)
        ys = np.array([[float(c.score_at(x)) for x in xs] for c in ans.curves]) if ans.curves else None
        mid = np.median(ys, axis=0) if ys is not None else ans.fit.score_at(xs)
        inside = xs <= trusted_to * 1.0001
        ax.plot(xs[inside], mid[inside], "-", color=colour, lw=1.5)
        ax.plot(xs[~inside], mid[~inside], ":", color=colour, lw=1.2)
        if ys is not None:
            lo, hi = np.percentile(ys, [10, 90], axis=0)
            ax.fill_between(xs[inside], lo[inside], hi[inside], color=colour, alpha=0.15, lw=0)
        if ans.median is not None and math.isfinite(ans.median) and ans.median <= ans.limit:
            ax.plot([ans.median], [target], marker="|", ms=14, color=colour)
        notes.append((colour, f"{name}: {ans.message}"))
    ax.axhline(target, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ticks = [zero_x] + list(measured)
    ax.set_xticks(ticks, ["0"] + [f"{int(t):,}" for t in measured])
    ax.minorticks_off()
    ax.set_xlabel("training examples (log scale; 0 = zero-shot)")
    ax.set_ylabel("score (95% bootstrap interval)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    # The answers, stacked under the plot (one line each): never on top of each other.
    line_in = 0.22
    fig.set_size_inches(8.5, 5 + line_in * len(notes))
    bottom = line_in * (len(notes) + 0.5) / (5 + line_in * len(notes))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for i, (colour, text) in enumerate(notes):
        fig.text(0.01, bottom - (i + 0.8) * line_in / (5 + line_in * len(notes)), text, color=colour,
                 fontsize=7, ha="left", va="center")
    return fig


def plot_cost(df):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    trained = df[df["train_wall_s"].notna()]
    for name, g in trained.groupby("series"):
        axes[0].plot(g["train_wall_s"] / 60, g["score"], "o-", label=name)
    for name, g in df[df["score_s"].notna()].groupby("series"):
        axes[1].plot(g["score_s"], g["score"], "o", label=name)
    axes[0].set_xlabel("training wall time (min)")
    axes[1].set_xlabel("scoring wall time (s)")
    for a in axes:
        a.set_ylabel("score")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def epoch_points(df):
    """The rows of an epoch curve: every trained run's final adapter and its kept
    checkpoints (train.save_epochs), each with its epoch, under the series name
    of its final adapter. Empty when no checkpoint was kept."""
    if "checkpoint" not in df or not (df["checkpoint"] != "").any():
        return df.iloc[0:0]
    runs = df[(df["size"] > 0) & ~df["model"].map(is_baseline_model).astype(bool)].copy()
    runs["curve"] = [series_name({**r, "checkpoint": ""}) for _, r in runs.iterrows()]
    return runs[runs["epochs"].notna()]


def plot_epoch_curves(df, metric="score"):
    """Score against epochs, one panel per series, one line per train size
    (mean over seeds): where a longer training stops paying, at each size.
    The kept checkpoints are test-set scores of one run, not a selection (with
    eval.select: val each panel says so: the validation set chose)."""
    import matplotlib.pyplot as plt

    pts = epoch_points(df)
    curves = sorted(pts["curve"].unique()) if len(pts) else []
    fig, axes = plt.subplots(1, max(len(curves), 1), figsize=(5 * max(len(curves), 1), 3.8), squeeze=False)
    sizes = sorted(pts["size"].unique()) if len(pts) else []
    colours = {s: plt.cm.viridis(i / max(len(sizes) - 1, 1)) for i, s in enumerate(sizes)}
    for ax, curve in zip(axes[0], curves, strict=False):
        for size, g in pts[pts["curve"] == curve].groupby("size"):
            mean = g.groupby("epochs")[metric].mean()
            ax.plot(mean.index, mean.values, "-o", color=colours[size], label=f"n={int(size)}")
        # with eval.select: val the validation set chose each run's checkpoint; these test scores did not
        ax.set_title(curve + ("\ntest set: not used for selection" if "selected" in pts else ""), fontsize=10)
        _score_axis(ax, "epochs trained", metric, legend_size=7)
    fig.tight_layout()
    return fig


def plot_loss_curves(curves):
    """Training loss against epoch, one panel per model (and prompt, variant), one line
    per train size and seed (results.training_curves)."""
    import matplotlib.pyplot as plt

    groups = list(curves.groupby(["model", "prompt", "variant"])) if len(curves) else []
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(5 * max(len(groups), 1), 3.6), squeeze=False)
    sizes = sorted(curves["size"].unique()) if len(curves) else []
    colours = {s: plt.cm.viridis(i / max(len(sizes) - 1, 1)) for i, s in enumerate(sizes)}
    for ax, ((model, prompt, variant), g) in zip(axes[0], groups, strict=False):
        for (size, seed), run in g.groupby(["size", "seed"]):
            ax.plot(run["epoch"], run["loss"], "-", color=colours[size], lw=1.2, alpha=0.85,
                    label=f"n={size}" + (f" seed {seed}" if g["seed"].nunique() > 1 else ""))
        ax.set_title(" / ".join(x for x in (model, prompt, variant) if x), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def use_cjk_font() -> str | None:
    """Pick an installed font that has CJK glyphs for the labels, if any."""
    import matplotlib
    from matplotlib import font_manager

    wanted = ("Noto Sans CJK", "Noto Sans SC", "WenQuanYi", "SimHei", "Source Han Sans", "AR PL", "Droid Sans Fallback")
    for f in font_manager.fontManager.ttflist:
        if any(w.lower() in f.name.lower() for w in wanted):
            matplotlib.rcParams["font.sans-serif"] = [f.name] + matplotlib.rcParams["font.sans-serif"]
            matplotlib.rcParams["axes.unicode_minus"] = False
            return f.name
    return None
