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

COLUMNS = ["run_id", "model", "prompt", "decoding", "size", "seed", "task", "n", "score", "accuracy",
           "f1_macro", "precision_macro", "recall_macro", "f1_weighted", "precision_weighted", "recall_weighted",
           "f1_micro", "precision_micro", "recall_micro", "exact_match", "invalid", "invalid_rate",
           "train_wall_s", "train_samples_per_s", "train_loss", "train_tokens_seen", "train_peak_rss_gb", "score_s"]
# The headline metric per task: macro-F1 for classification, entity micro-F1 for ner.
HEADLINE = {"ner": "f1_micro"}


def collect_results(cfg: ExperimentConfig):
    """Gather every scored (run, decoding) with its training record; write the tables."""
    import pandas as pd

    from .baselines import DECODING as BASELINE_DECODING
    from .score import metrics_file

    rows = []
    scored = [(r, d) for r in eval_runs(cfg) for d in cfg.eval.decodings]
    scored += [(r, BASELINE_DECODING) for r in baseline_runs(cfg)]
    for r, d in scored:
        path = r.folder() / metrics_file(d)
        if not path.is_file():
            continue
        m = read_json(path)
        metrics = m["metrics"]
        row = {"run_id": r.run_id, "model": r.model, "prompt": r.prompt or "", "decoding": d, "size": r.size,
               "seed": r.seed, "task": cfg.task.type, "score_s": m.get("score_s"),
               "score": metrics.get(HEADLINE.get(cfg.task.type, "f1_macro"))}
        row.update({k: metrics[k] for k in COLUMNS if k in metrics})
        tr = r.folder() / "train_result.json"
        if tr.is_file():
            t = read_json(tr)
            row.update({k: t.get(k) for k in ("train_wall_s", "train_samples_per_s", "train_loss",
                                              "train_tokens_seen", "train_peak_rss_gb")})
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


def load_run(folder: Path, decoding: str = "free"):
    """The RunResult pickled for one run and decoding (predictions, references, metrics)."""
    with open(Path(folder) / f"result.{decoding}.pkl", "rb") as f:
        return pickle.load(f)


def _series(df) -> list[str]:
    """Columns that tell curves apart: the model, and the prompt/decoding when they vary."""
    keys = ["model"]
    for k in ("prompt", "decoding"):
        if k in df and df[k].nunique() > 1:
            keys.append(k)
    return keys


def summary_table(df, metrics=("score", "accuracy", "invalid_rate")):
    """Mean and standard deviation over seeds per curve point."""
    keys = _series(df) + ["size"]
    table = df.groupby(keys)[list(metrics)].agg(["mean", "std"]).round(4)
    table[("seeds", "")] = df.groupby(keys).size()
    return table


METRIC_NAMES = {"score": "score (macro-F1; ner: entity micro-F1)", "f1_macro": "macro-F1", "accuracy": "accuracy",
                "f1_micro": "entity micro-F1", "exact_match": "exact match"}


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
    keys = _series(df)
    for metric, a in zip(metrics, axes):
        for name, sub in df.groupby(keys):
            name = name if isinstance(name, tuple) else (name,)
            g = sub.groupby("size")[metric]
            mean, lo, hi = g.mean(), g.min(), g.max()
            style = "--" if str(name[0]).startswith("baseline-") else "-"
            line = a.plot(mean.index, mean.values, style, marker="o", label=" / ".join(str(x) for x in name if x))[0]
            a.fill_between(mean.index, lo.values, hi.values, alpha=0.2, color=line.get_color())
        a.set_xlabel("training examples (0 = zero-shot base model)")
        a.set_ylabel(METRIC_NAMES.get(metric, metric))
        a.set_ylim(-0.02, 1.02)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def best_run(df, metric="score"):
    return df.sort_values(metric, ascending=False).iloc[0]


def plot_confusion(result, ax=None, normalise=True):
    """Confusion matrix of one classification RunResult (rows: gold, columns:
    predicted; the last column counts invalid answers)."""
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


def per_type_table(result):
    """Per entity type precision/recall/F1/support of one ner RunResult."""
    import pandas as pd

    return pd.DataFrame(result.metrics["per_type"]).T.round(4)


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
