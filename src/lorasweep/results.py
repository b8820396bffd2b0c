"""Results: every scored run of an experiment in one pandas DataFrame, written
as experiments/<name>/results.pkl (+ .csv and .json), and the plots/tables the
notebook shows.

The .pkl files are Python pickles: load them only from your own experiments.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

from .config import ExperimentConfig
from .io import atomic_write_json, atomic_write_pickle, atomic_write_text, read_json
from .paths import experiment_dir
from .plan import baseline_runs, eval_runs

log = logging.getLogger(__name__)

COLUMNS = ["run_id", "model", "size", "seed", "decoding", "n", "accuracy", "f1_macro", "precision_macro",
           "recall_macro", "f1_weighted", "precision_weighted", "recall_weighted", "invalid", "invalid_rate",
           "train_wall_s", "train_samples_per_s", "train_loss", "score_s"]


def collect_results(cfg: ExperimentConfig):
    """Gather metrics.json (+ train_result.json) of every scored run; write the tables."""
    import pandas as pd

    rows = []
    for r in eval_runs(cfg) + baseline_runs(cfg):
        folder = r.folder()
        if not (folder / "metrics.json").is_file():
            continue
        m = read_json(folder / "metrics.json")
        row = {"run_id": r.run_id, "model": r.model, "size": r.size, "seed": r.seed,
               "decoding": m.get("decoding"), "score_s": m.get("score_s")}
        row.update({k: m["metrics"].get(k) for k in COLUMNS if k in m["metrics"]})
        tr = folder / "train_result.json"
        if tr.is_file():
            t = read_json(tr)
            row.update({k: t.get(k) for k in ("train_wall_s", "train_samples_per_s", "train_loss")})
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    out = experiment_dir(cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_pickle(out / "results.pkl", df)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    atomic_write_json(out / "results.json", df.to_dict(orient="records"))
    log.info("results: %d scored run(s) -> %s", len(df), out / "results.pkl")
    return df


def load_results(experiment: str | ExperimentConfig, root: Path | None = None):
    name = experiment if isinstance(experiment, str) else experiment.name
    path = (root or experiment_dir(name)) / "results.pkl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `bash shell/eval.sh` for experiment '{name}' first")
    with open(path, "rb") as f:
        return pickle.load(f)


def load_run(folder: Path):
    """The RunResult pickled for one run (predictions, references, metrics)."""
    with open(Path(folder) / "result.pkl", "rb") as f:
        return pickle.load(f)


def summary_table(df, metrics=("f1_macro", "accuracy", "invalid_rate")):
    """Mean and standard deviation over seeds per (model, size)."""
    g = df.groupby(["model", "size"])[list(metrics)]
    table = g.agg(["mean", "std"]).round(4)
    table["seeds"] = df.groupby(["model", "size"]).size()
    return table


def plot_learning_curves(df, metrics=("f1_macro", "accuracy"), ax=None):
    """One line per model: mean over seeds against train size, shaded min-max spread.
    The zero-shot base model is the point at size 0."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    names = {"f1_macro": "macro-F1", "accuracy": "accuracy"}
    for metric, a in zip(metrics, axes):
        for model, sub in df.groupby("model"):
            g = sub.groupby("size")[metric]
            mean, lo, hi = g.mean(), g.min(), g.max()
            line = a.plot(mean.index, mean.values, marker="o", label=model)[0]
            a.fill_between(mean.index, lo.values, hi.values, alpha=0.2, color=line.get_color())
        a.set_xlabel("training examples (0 = zero-shot base model)")
        a.set_ylabel(names.get(metric, metric))
        a.set_ylim(0, 1)
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    return fig


def best_run(df, metric="f1_macro"):
    return df.sort_values(metric, ascending=False).iloc[0]


def plot_confusion(result, ax=None, normalise=True):
    """Confusion matrix of one RunResult (rows: gold, columns: predicted; last column: invalid)."""
    import matplotlib.pyplot as plt
    import numpy as np

    m = result.metrics
    labels = m["confusion_labels"]
    cm = np.array(m["confusion_matrix"], dtype=float)
    keep = cm.sum(axis=1) > 0   # rows: classes present in the test set
    rows = [lab for lab, k in zip(labels, keep) if k]
    cm = cm[keep]
    if normalise:
        cm = cm / cm.sum(axis=1, keepdims=True)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 1 + 0.5 * len(rows)))
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
    ax.set_title(f"{result.run_id} (macro-F1 {m['f1_macro']:.3f})")
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
