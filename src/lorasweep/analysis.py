"""The answers users run sweeps for, computed from an experiment's results:
confidence intervals per point, paired comparisons at equal train size, the
fitted learning curve with "labels needed", and the cost of each point. Used
by the notebook and by `lorasweep report` (one self-contained HTML file).
"""
from __future__ import annotations

import base64
import html
import io
import logging
import math
import time
from pathlib import Path

from . import stats
from .config import ExperimentConfig
from .paths import experiment_dir
from .plan import RunSpec

log = logging.getLogger(__name__)


def _series_name(row) -> str:
    parts = [row["model"], row.get("prompt") or "", row["decoding"] if row["decoding"] != "classifier" else ""]
    return " / ".join(p for p in parts if p)


def _result(cfg: ExperimentConfig, row):
    from .results import load_run

    seed = None if row["size"] == 0 or row["seed"] is None or (isinstance(row["seed"], float) and math.isnan(row["seed"])) \
        else int(row["seed"])
    run = RunSpec(cfg.name, row["model"], int(row["size"]), seed, row.get("prompt") or None)
    return load_run(run.folder(), row["decoding"])


def with_intervals(cfg: ExperimentConfig, df, n_resamples: int = 1000, seed: int = 0):
    """The results table plus a bootstrap interval of the score (and accuracy) per run."""
    df = df.copy()
    df["series"] = [_series_name(r) for _, r in df.iterrows()]
    lo, hi, alo, ahi = [], [], [], []
    for _, row in df.iterrows():
        res = _result(cfg, row)
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
    from .splits import load_test

    return [ex["entities"] for ex in load_test(cfg)]


def paired_matrix(cfg: ExperimentConfig, df, size: int, n_resamples: int = 2000, seed: int = 0):
    """p-values (paired bootstrap of macro-F1 on the same test examples) between
    every two series at one train size, on the first seed they share. Rows beat
    columns when diff > 0. Returns (p-value frame, difference frame); the exact
    McNemar p-values on per-example correctness are in `p.attrs["mcnemar"]`."""
    import pandas as pd

    sub = df[df["size"] == size].copy()
    sub["series"] = [_series_name(r) for _, r in sub.iterrows()]
    seeds = sorted({int(s) for s in sub["seed"].dropna()})
    rows = {}
    for name, g in sub.groupby("series"):
        pick = g[g["seed"] == seeds[0]] if seeds and (g["seed"] == seeds[0]).any() else g
        rows[name] = _result(cfg, pick.iloc[0])
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
        res = _result(cfg, row)
        coded.append(stats._encode(res.predictions, res.references, res.labels))
    n = len(coded[0][1])
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        reps.append([stats._macro_f1(p[idx], r[idx], k) for p, r, k in coded])
    return reps


# --- figures ---------------------------------------------------------------

def plot_curves_with_fits(df, answers: dict, target: float):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, g in df.groupby("series"):
        m = g.groupby("size").agg(score=("score", "mean"), lo=("score_low", "mean"), hi=("score_high", "mean"))
        style = "--" if name.startswith("baseline-") else "-"
        line = ax.errorbar(m.index, m["score"], yerr=[m["score"] - m["lo"], m["hi"] - m["score"]], fmt="o" + style,
                           capsize=3, label=name, alpha=0.9)
        fit = answers.get(name, {}).get("fit")
        if fit is not None:
            xs = np.linspace(max(1, min(fit.sizes) * 0.8), max(fit.sizes) * stats.MAX_EXTRAPOLATION, 200)
            ax.plot(xs, stats.power_law(xs, fit.a, fit.b, fit.c), ":", color=line[0].get_color(),
                    label=f"{name}: fit, plateau {fit.a:.2f}")
            need = answers[name]["needed"]
            if need.size is not None:
                ax.axvline(need.size, color=line[0].get_color(), alpha=0.4)
                ax.annotate(f"{need.size:,.0f} labels for {target:.2f}", (need.size, target),
                            textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.axhline(target, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training examples (0 = zero-shot)")
    ax.set_ylabel("score (95% bootstrap interval)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
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


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(frame, fmt=None, highlight=None) -> str:
    cols = list(frame.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + cols)
    body = []
    for idx, row in frame.iterrows():
        cells = [f"<th>{html.escape(str(idx))}</th>"]
        for c in cols:
            v = row[c]
            text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else (fmt(c, v) if fmt else str(v))
            cls = f' class="{highlight(c, v)}"' if highlight else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_INTS = {"size", "seed", "n", "invalid", "count", "train_tokens_seen"}


def _fmt(col, v) -> str:
    if col in _INTS:
        return f"{int(v):,}"
    if col in ("train_wall_s", "score_s"):
        return f"{v:,.1f}"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _sig(col, v) -> str:
    if not isinstance(v, str) or "(p" not in v:
        return ""
    p = v.split("(p", 1)[1].split(";")[0]
    return "sig" if p.startswith("<") or float(p.lstrip("=")) < 0.05 else ""


def write_report(cfg: ExperimentConfig, target: float = 0.8, n_resamples: int = 1000, seed: int = 0,
                 out: Path | None = None) -> Path:
    """One self-contained HTML file (figures embedded) with all of the above."""
    import matplotlib

    matplotlib.use("Agg")
    from .results import collect_results, use_cjk_font

    use_cjk_font()
    t0 = time.time()
    df = collect_results(cfg)
    if df.empty:
        raise FileNotFoundError(f"no scored runs for experiment '{cfg.name}': run `bash shell/eval.sh` first")
    df = with_intervals(cfg, df, n_resamples, seed)
    answers = curve_answers(df, target, cfg, seed=seed)
    sections = [f"<h1>lorasweep report: {html.escape(cfg.name)}</h1>",
                f"<p>Task <b>{cfg.task.type}</b>, {len(cfg.task.labels)} labels; models "
                f"{', '.join(m.name for m in cfg.models)}; train sizes {cfg.train_sizes}; seeds {cfg.seeds}; "
                f"decoding {', '.join(cfg.eval.decodings)}. Score = "
                f"{'entity micro-F1' if cfg.task.type == 'ner' else 'macro-F1'}; intervals are 95% percentile "
                f"bootstraps over the {int(df['n'].iloc[0])} test examples ({n_resamples} resamples, seed {seed}).</p>"]
    sections.append("<h2>Learning curves and labels needed</h2>")
    sections.append(f'<img class="figure" alt="learning curves" src="data:image/png;base64,'
                    f'{_png(plot_curves_with_fits(df, answers, target))}">')
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v['message'])}"
                    + (f" (fit: plateau {v['fit'].a:.3f}, rmse {v['fit'].rmse:.3f})" if "fit" in v else "")
                    + "</li>" for k, v in answers.items())
    sections.append(f"<p>Training examples needed for score = {target:.2f} (inverse power law "
                    f"score = a - b&middot;n<sup>-c</sup> fitted to every seed's score; answers beyond "
                    f"{stats.MAX_EXTRAPOLATION:.0f}x the largest measured size are refused):</p><ul class='answers'>{items}</ul>")

    sections.append("<h2>Results with confidence intervals</h2>")
    tab = df[["series", "size", "seed", "score", "score_low", "score_high", "accuracy", "accuracy_low",
              "accuracy_high", "invalid", "n"]].sort_values(["series", "size", "seed"]).set_index("series")
    sections.append(_table(tab, fmt=_fmt))
    seeds = df.groupby(["series", "size"])["score"].agg(["mean", "std", "count"]).reset_index().set_index("series")
    sections.append("<h3>Across seeds</h3>" + _table(seeds, fmt=_fmt))

    sections.append("<h2>Paired comparisons</h2><p>Macro-F1 difference on the same test examples (row minus "
                    "column), the paired-bootstrap p-value of that difference, and the exact McNemar p-value "
                    "of per-example correctness; significant (bootstrap p &lt; 0.05) cells highlighted.</p>")
    if cfg.task.type == "ner":
        sections.append("<p>(Paired comparisons are computed for classification tasks.)</p>")
    else:
        for size in sorted(s for s in df["size"].unique() if s > 0):
            p, d = paired_matrix(cfg, df, int(size), seed=seed)
            if len(p) < 2:
                continue
            cell = p.copy().astype(object)
            for a in p.index:
                for b in p.columns:
                    if a != b:
                        pv, mv = p.loc[a, b], p.attrs["mcnemar"].loc[a, b]
                        cell.loc[a, b] = (f"{d.loc[a, b]:+.3f} (p{'<0.001' if pv < 0.001 else f'={pv:.3f}'}; "
                                          f"McNemar {'<0.001' if mv < 0.001 else f'{mv:.3f}'})")
            sections.append(f"<h3>train size {int(size)}</h3>" + _table(
                cell, highlight=_sig))

    sections.append("<h2>Cost of each point</h2>")
    sections.append(f'<img class="figure" alt="cost" src="data:image/png;base64,{_png(plot_cost(df))}">')
    cost = df[["series", "size", "seed", "train_wall_s", "train_samples_per_s", "train_tokens_seen",
               "train_peak_rss_gb", "score_s"]].sort_values(["series", "size"]).set_index("series")
    sections.append(_table(cost, fmt=_fmt))
    sections.append(f"<p class='foot'>Written by lorasweep in {time.time() - t0:.0f} s on {time.strftime('%Y-%m-%d %H:%M')}.</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:0.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f4f4f4}td.sig{background:#d8f0d8;font-weight:bold}img.figure{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lorasweep: {html.escape(cfg.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
    out = out or experiment_dir(cfg.name) / "report.html"
    from .io import atomic_write_text

    atomic_write_text(out, page)
    log.info("report: %s (%.0f kB)", out, len(page) / 1024)
    return out
