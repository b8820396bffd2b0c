"""`lorasweep report`: one self-contained HTML file (figures embedded as PNG)
for people who will not open a notebook: the learning curves with "labels
needed", every run's score with its interval, the paired comparisons and the
cost of each point. The numbers come from analysis.py, the figures from plots.py.
"""
from __future__ import annotations

import base64
import html
import io
import logging
import math
import time
from pathlib import Path

from ..config import ExperimentConfig
from ..infra.atomic import atomic_write_text
from ..infra.paths import report_file
from ..runspec import is_baseline_model
from ..score.selection import selecting
from ..tasks import get_task
from .analysis import curve_answers, paired_matrix, with_intervals
from .curves import FAMILIES, MAX_EXTRAPOLATION
from .plots import epoch_points, plot_cost, plot_curves_with_fits, plot_epoch_curves, plot_loss_curves, use_cjk_font
from .results import SELECTION_COLUMNS, collect_results, reported_rows, training_curves

log = logging.getLogger("lorasweep.report")   # its name before the move into folders: log lines unchanged


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


def _p_text(q: float) -> str:
    return "&lt;0.001" if q < 0.001 else f"={q:.3f}"


def _verdicts(df, matrices: dict, answers: dict, target: float) -> str:
    """In words: at each size the best series of all, baselines included,
    against the runner-up (corrected paired test); from which size on a
    fine-tuned model is ahead of the best baseline; then each LLM series'
    labels needed for the target."""
    lines = []
    for size, (p, d) in matrices.items():
        means = df[df["size"] == size].groupby("series")["score"].mean().sort_values(ascending=False)
        if len(means) < 2:
            continue
        best, second = means.index[0], means.index[1]
        q = p.loc[best, second]
        verdict = "a significant lead" if q < 0.05 else "not a significant lead"
        kind = " (a baseline)" if _is_baseline_series(best) else ""
        lines.append(f"<li>{size:,} examples: <b>{html.escape(best)}</b>{kind} {means.iloc[0]:.3f} vs "
                     f"{html.escape(second)} {means.iloc[1]:.3f} (difference {d.loc[best, second]:+.3f}, "
                     f"Holm-corrected p{_p_text(q)}: {verdict})</li>")
    ahead = _ahead_of_baselines(df, matrices)
    if ahead:
        lines.append(f"<li>{ahead}</li>")
    for name, v in answers.items():
        if not _is_baseline_series(name):
            lines.append(f"<li>{html.escape(name)} for {target:.2f}: {html.escape(v['message'])}</li>")
    return f"<ul class='answers'>{''.join(lines)}</ul>" if lines else "<p>(one model only)</p>"


def _is_baseline_series(name: str) -> bool:
    return is_baseline_model(name.split(" / ")[0])


def _ahead_of_baselines(df, matrices: dict) -> str:
    """From which size on the best fine-tuned series beats the best baseline at
    every larger measured size (mean over seeds), with each size's corrected p."""
    per_size = []
    for size, (p, _) in matrices.items():
        means = df[df["size"] == size].groupby("series")["score"].mean()
        llm = means[[not _is_baseline_series(n) for n in means.index]]
        base = means[[_is_baseline_series(n) for n in means.index]]
        if llm.empty or base.empty:
            return ""
        a, b = llm.idxmax(), base.idxmax()
        per_size.append((size, a, llm[a], b, base[b], p.loc[a, b]))
    if not per_size:
        return ""
    first = None
    for i in range(len(per_size)):
        if all(x[2] > x[4] for x in per_size[i:]):
            first = per_size[i][0]
            break
    detail = "; ".join(f"n={s:,}: {html.escape(a)} {ma:.3f} vs {html.escape(b)} {mb:.3f} (p{_p_text(q)})"
                       for s, a, ma, b, mb, q in per_size)
    if first is None:
        ahead = [f"{x[0]:,}" for x in per_size if x[2] > x[4]]
        if ahead:
            return (f"A fine-tuned model is ahead of the best baseline at {', '.join(ahead)} examples, but not at "
                    f"the largest size measured ({detail}).")
        return f"No fine-tuned model is ahead of the best baseline at any size measured ({detail})."
    if first == per_size[0][0]:
        return f"A fine-tuned model is ahead of the best baseline at every size measured ({detail})."
    return f"A fine-tuned model is ahead of the best baseline from {first:,} examples on ({detail})."


def _answer_item(name: str, v: dict) -> str:
    parts = [f"<li><b>{html.escape(name)}</b>: {html.escape(v['message'])}"]
    if "fit" in v:
        weights = ", ".join(f"{k} {w:.2f}" for k, w in sorted(v["fit"].weights().items(), key=lambda t: -t[1]))
        parts.append(f"<br><span class='small'>family weights: {html.escape(weights)}</span>")
    if v.get("backtest") is not None:
        parts.append(f"<br><i>{html.escape(v['backtest'].message)}</i>")
    elif "fit" in v:
        parts.append("<br><i>No backtest: it needs 4 or more train sizes (3 to fit, the largest to predict).</i>")
    if v.get("suggestion") is not None:
        parts.append(f"<br>Suggestion: {html.escape(v['suggestion'].message)}.")
    return "".join(parts) + "</li>"


def _steps_line(df) -> str:
    """The optimizer steps behind each point, smallest and largest size (from the training records)."""
    if "steps" not in df or df["steps"].isna().all():
        return ""
    t = df[df["steps"].notna()].groupby("size")["steps"].agg(["min", "max"])

    def span(row) -> str:
        return f"{int(row['min'])}" if row["min"] == row["max"] else f"{int(row['min'])}-{int(row['max'])}"
    return " (optimizer steps per run: " + ", ".join(f"n={int(s)}: {span(r)}" for s, r in t.iterrows()) + ")"


def _variants_line(cfg: ExperimentConfig, df) -> str:
    """The variants and their keys; and the runs scored on another base than they were trained against."""
    if not cfg.variants:
        return ""
    shown = "; ".join(f"<b>{html.escape(n)}</b>: " + html.escape(", ".join(f"{k}={v}" for k, v in keys.items())
                                                                 or "the settings as they are")
                      for n, keys in cfg.variants.items())
    text = f" Variants (each overrides train.args and models[].train_args): {shown}."
    moved = df[df["trained_base"] != df["served_base"]] if "served_base" in df else df.iloc[0:0]
    if len(moved):
        text += (f" {len(moved)} run(s) trained against a quantized base were scored on the full-precision base "
                 "(vLLM's CPU backend has no bitsandbytes, or eval.quantized_base: false): "
                 f"{html.escape(', '.join(sorted(set(moved['series']))))}.")
    return text


def _selection_line(cfg: ExperimentConfig) -> str:
    """The validation set: the labels a point used besides its n, and what chose each run's checkpoint."""
    v = cfg.data.val_size
    if not v:
        return ""
    if not selecting(cfg):
        return f" {v} validation examples were held out (data.val_size) and not used: each run reports its final " \
               "adapter."
    n = cfg.train_sizes[0]
    metric = get_task(cfg.task.type).headline_label
    return (f" <b>Scores are validation-selected</b>: each trained run reports the test score of its checkpoint (the "
            f"final adapter or one kept after epochs {cfg.train.save_epochs}) with the best {metric} on {v} "
            "validation examples, held out from the test set and from every training subset, chosen before its "
            "test answers were read (a tie goes to the earlier epoch). Those validation labels are used besides "
            f"each point's n: the point at n={n:,} used {n:,} + {v:,} = {n + v:,} labels.")


def write_report(cfg: ExperimentConfig, target: float = 0.8, n_resamples: int = 1000, seed: int = 0,
                 out: Path | None = None) -> Path:
    """One self-contained HTML file (figures embedded), its sections in reading order:
    the setting, which series wins, the curves and labels needed, the table with
    intervals, the paired comparisons, score against epochs, training loss, cost."""
    import matplotlib

    matplotlib.use("Agg")
    use_cjk_font()
    t0 = time.time()
    everything = collect_results(cfg)   # every scored row: with eval.select: val, every checkpoint's
    if everything.empty:
        raise FileNotFoundError(f"no scored runs for experiment '{cfg.name}': run `bash shell/eval.sh` first")
    df = with_intervals(cfg, reported_rows(everything), n_resamples, seed)
    answers = curve_answers(df, target, cfg, seed=seed)
    sizes = sorted(int(s) for s in df["size"].unique() if s > 0)
    paired = get_task(cfg.task.type).label_statistics   # the paired tests compare labels, example by example
    matrices = {n: paired_matrix(cfg, df, n, seed=seed) for n in sizes} if paired else {}
    which = "Which model, which variant, how many labels" if cfg.variants else "Which model, how many labels"
    sections = [_setting_section(cfg, df, n_resamples, seed),
                f"<h2>{which}</h2>" + _verdicts(df, matrices, answers, target),
                _curves_section(df, answers, target),
                _results_section(df),
                _paired_section(cfg, matrices),
                _epochs_section(cfg, everything),
                _loss_section(cfg, everything),
                _cost_section(df),
                f"<p class='foot'>Written by lorasweep in {time.time() - t0:.0f} s on "
                f"{time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:0.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f4f4f4}td.sig{background:#d8f0d8;font-weight:bold}img.figure{max-width:100%}.small{font-size:12px;color:#555}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lorasweep: {html.escape(cfg.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
    out = out or report_file(cfg.name)
    atomic_write_text(out, page)
    log.info("report: %s (%.0f kB)", out, len(page) / 1024)
    return out


def _setting_section(cfg: ExperimentConfig, df, n_resamples: int, seed: int) -> str:
    return (f"<h1>lorasweep report: {html.escape(cfg.name)}</h1>"
            f"<p>Task <b>{cfg.task.type}</b>, {len(cfg.task.labels)} labels; models "
            f"{', '.join(m.name for m in cfg.models)}; train sizes {cfg.train_sizes}; seeds {cfg.seeds}; "
            f"decoding {', '.join(cfg.eval.decodings)}; training budget: {cfg.budget_text()}"
            f"{_steps_line(df)}.{_variants_line(cfg, df)}{_selection_line(cfg)} Score = "
            f"{get_task(cfg.task.type).headline_label}; intervals are 95% percentile "
            f"bootstraps over the {int(df['n'].iloc[0])} test examples ({n_resamples} resamples, seed {seed}).</p>")


def _curves_section(df, answers: dict, target: float) -> str:
    items = "".join(_answer_item(k, v) for k, v in answers.items())
    return ("<h2>Learning curves and labels needed</h2>"
            f'<img class="figure" alt="learning curves" src="data:image/png;base64,'
            f'{_png(plot_curves_with_fits(df, answers, target))}">'
            f"<p>Training examples needed for score = {target:.2f}. The curve is an ensemble of "
            f"{len(FAMILIES)} monotone families ({', '.join(f.name for f in FAMILIES)}) weighted by AIC with "
            "each score's test-set noise; the answer's intervals come from refitting it on resamples of the "
            "test examples and of the seeds; answers beyond "
            f"{MAX_EXTRAPOLATION:.0f}x the largest measured size are not given. The backtest refits "
            "without the largest size and predicts it.</p>"
            f"<ul class='answers'>{items}</ul>")


def _results_section(df) -> str:
    shown = ["series", "size", "seed", "score", "score_low", "score_high", "accuracy", "accuracy_low",
             "accuracy_high", "invalid", "n"] + [c for c in SELECTION_COLUMNS if c in df]
    tab = df[shown].sort_values(["series", "size", "seed"]).set_index("series")
    seeds = df.groupby(["series", "size"])["score"].agg(["mean", "std", "count"]).reset_index().set_index("series")
    return ("<h2>Results with confidence intervals</h2>" + _table(tab, fmt=_fmt)
            + "<h3>Across seeds</h3>" + _table(seeds, fmt=_fmt))


def _paired_section(cfg: ExperimentConfig, matrices: dict) -> str:
    out = ["<h2>Paired comparisons</h2><p>Macro-F1 difference on the same test examples (row minus "
           "column; the mean over every seed both series have), the paired-bootstrap p-value of that "
           "difference, Holm-corrected over all the pairs at that size, and the exact McNemar p-value "
           "of per-example correctness (over the seed-example pairs); significant (corrected bootstrap "
           "p &lt; 0.05) cells highlighted.</p>"]
    if not get_task(cfg.task.type).label_statistics:
        out.append("<p>(Paired comparisons are computed for classification tasks.)</p>")
    for size, (p, d) in matrices.items():
        if len(p) < 2:
            continue
        cell = p.copy().astype(object)
        for a in p.index:
            for b in p.columns:
                if a != b:
                    pv, mv = p.loc[a, b], p.attrs["mcnemar"].loc[a, b]
                    cell.loc[a, b] = (f"{d.loc[a, b]:+.3f} (p{'<0.001' if pv < 0.001 else f'={pv:.3f}'}; "
                                      f"McNemar {'<0.001' if mv < 0.001 else f'{mv:.3f}'})")
        out.append(f"<h3>train size {int(size)}</h3>" + _table(cell, highlight=_sig))
    return "".join(out)


def _epochs_section(cfg: ExperimentConfig, everything) -> str:
    if not len(epoch_points(everything)):
        return ""
    if selecting(cfg):
        text = ("<h2>Score against epochs</h2><p>Each trained run's adapter kept after the epochs in "
                "train.save_epochs, and its final one, scored on the test set: where longer training "
                "stops paying, per train size. These test-set scores are <b>not used for selection</b>: "
                "the validation set chose each run's reported checkpoint (the <i>selected</i> column "
                "above) before its test answers were read.</p>")
    else:
        text = ("<h2>Score against epochs</h2><p>Each trained run's adapter kept after the epochs in "
                "train.save_epochs, and its final one, scored on the test set: where longer training "
                "stops paying, per train size (the paired comparisons above include the kept "
                "checkpoints as series of their own, e.g. <i>model / free / e5</i>). These are test-set "
                "scores of checkpoints of one run, shown as a curve; none was chosen by them.</p>")
    return (text + f'<img class="figure" alt="score against epochs" src="data:image/png;base64,'
            f'{_png(plot_epoch_curves(everything))}">')


def _loss_section(cfg: ExperimentConfig, everything) -> str:
    curves = training_curves(cfg, everything)
    if not len(curves):
        return ""
    return ("<h2>Training loss</h2><p>Per run, from LLaMA-Factory's trainer_log.jsonl (one point per "
            "logged step).</p>"
            f'<img class="figure" alt="training loss" src="data:image/png;base64,{_png(plot_loss_curves(curves))}">')


def _cost_section(df) -> str:
    cost = df[["series", "size", "seed", "train_wall_s", "train_samples_per_s", "train_tokens_seen",
               "train_peak_rss_gb", "score_s"]].sort_values(["series", "size"]).set_index("series")
    return ("<h2>Cost of each point</h2>"
            f'<img class="figure" alt="cost" src="data:image/png;base64,{_png(plot_cost(df))}">'
            + _table(cost, fmt=_fmt))
