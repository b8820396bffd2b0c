"""Results: every scored run of an experiment in one pandas DataFrame, written
as experiments/<name>/results.pkl (+ .csv and .json), the tables the notebook
shows, and the way back from a row to its run's RunResult.

The .pkl files are Python pickles: load them only from your own experiments.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

from ..config import ExperimentConfig
from ..infra.atomic import atomic_write_json, atomic_write_pickle, atomic_write_text, read_json
from ..infra.paths import experiment_dir, results_file
from ..overrides import recorded_overrides_hint
from ..plan import baseline_runs, eval_runs
from ..runspec import VAL, RunSpec, TrainRecord, is_baseline_model, scored_on_disk
from ..score.baselines import DECODING as BASELINE_DECODING
from ..score.selection import label, needs_val, read_selection, selecting
from ..tasks import Task, get_task
from ..train.budget import budget

log = logging.getLogger("lorasweep.results")   # its name before the move into folders: log lines unchanged

# The table's columns, in the order notebooks and earlier pickles know; the metric columns are those of the
# built-in task types (Task.metrics), and a task type's further metrics follow them (columns()).
COLUMNS = ["run_id", "model", "prompt", "variant", "checkpoint", "trained_base", "served_base", "decoding", "size",
           "seed", "in_plan", "task", "n", "score", "accuracy", "f1_macro", "precision_macro", "recall_macro",
           "f1_weighted", "precision_weighted", "recall_weighted", "f1_micro", "precision_micro", "recall_micro",
           "exact_match", "invalid", "invalid_rate", "epochs", "steps", "train_wall_s", "train_samples_per_s",
           "train_loss", "train_tokens_seen", "train_peak_rss_gb", "score_s"]
# With eval.select: val: the run's validation-selected checkpoint ("e<k>" or "last", on that row only) and each
# candidate's own headline score on the validation set.
SELECTION_COLUMNS = ["selected", "val_score"]
COST = ["train_wall_s", "train_samples_per_s", "train_loss", "train_tokens_seen", "train_peak_rss_gb"]


def columns(task: Task) -> list[str]:
    """COLUMNS, with the task's metrics that are not among them after the built-in ones."""
    extra = [m for m in task.metrics if m not in COLUMNS]
    at = COLUMNS.index("invalid_rate") + 1
    return COLUMNS[:at] + extra + COLUMNS[at:]


def collect_results(cfg: ExperimentConfig):
    """Gather every scored (run, decoding) on disk with its training record;
    write the tables. Runs the current plan does not name (other seeds, sizes
    or models scored earlier, e.g. with --set) are kept, marked in_plan=False,
    and said."""
    import pandas as pd

    task = get_task(cfg.task.type)
    cols = columns(task)
    planned = {(r, d) for r in eval_runs(cfg) for d in cfg.eval.decodings}
    planned |= {(r, BASELINE_DECODING) for r in baseline_runs(cfg)}
    scored = scored_on_disk(cfg.name)
    outside = [(r, d) for r, d in scored if (r, d) not in planned]
    if outside:
        log.warning("results: %d scored run(s) on disk are not in the current plan and are included (in_plan=False): "
                    "%s%s; the plan names fewer%s", len(outside), ", ".join(r.run_id for r, _ in outside[:6]),
                    " ..." if len(outside) > 6 else "", recorded_overrides_hint(cfg))
    rows = []
    unselected = set()
    for r, d in scored:
        m = read_json(r.metrics_file(d))
        metrics = m["metrics"]
        row = {"run_id": r.run_id, "model": r.model, "prompt": r.prompt or "", "variant": r.variant or "",
               "checkpoint": "",
               "decoding": d, "size": r.size,
               "seed": r.seed, "in_plan": (r, d) in planned, "task": cfg.task.type, "score_s": m.get("score_s"),
               "score": metrics.get(task.headline),
               # the base weights the adapter was trained against and scored on (serve.py; "full" before QLoRA)
               "trained_base": m.get("trained_base", "full"), "served_base": m.get("served_base", "full")}
        row.update({k: metrics[k] for k in cols if k in metrics})
        if r.epoch:
            # a checkpoint: its own epoch and steps; the cost is its training run's (not counted twice)
            spe = budget(cfg, r.training_run).steps_per_epoch if r.model in {m.name for m in cfg.models} else 0
            row.update(checkpoint=f"e{r.epoch}", epochs=r.epoch, steps=r.epoch * spe or None)
        elif r.is_trained():
            t = TrainRecord.read(r)
            row.update(epochs=t.epochs, steps=t.steps, train_wall_s=t.train_wall_s,
                       train_samples_per_s=t.train_samples_per_s, train_loss=t.train_loss,
                       train_tokens_seen=t.train_tokens_seen, train_peak_rss_gb=t.train_peak_rss_gb)
        if selecting(cfg):
            row.update(selected="", val_score=None)
            if needs_val(cfg, r):
                if r.is_scored(d, VAL):
                    row["val_score"] = read_json(r.metrics_file(d, VAL))["metrics"].get(task.headline)
                chosen = read_selection(r, d)
                if chosen is None:
                    unselected.add((r.training_run, d))
                elif chosen["selected"] == label(r):
                    row["selected"] = label(r)
        rows.append(row)
    if unselected:
        log.warning("results: %d trained run(s) have no validation selection yet (a checkpoint not scored on the "
                    "validation set), e.g. %s: left out of the reported scores until eval scores it",
                    len(unselected), next(iter(unselected))[0].run_id)
    df = pd.DataFrame(rows, columns=cols + (SELECTION_COLUMNS if selecting(cfg) else []))
    atomic_write_pickle(results_file(cfg.name, "pkl"), df)
    atomic_write_text(results_file(cfg.name, "csv"), df.to_csv(index=False))
    atomic_write_json(results_file(cfg.name, "json"), df.to_dict(orient="records"))
    log.info("results: %d scored run(s) -> %s", len(df), results_file(cfg.name, "pkl"))
    return df


def load_results(experiment: str | ExperimentConfig, root: Path | None = None):
    """The results table written by collect_results; `root` is the experiment folder."""
    name = experiment if isinstance(experiment, str) else experiment.name
    path = (root or experiment_dir(name)) / results_file(name, "pkl").name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `bash shell/eval.sh` for experiment '{name}' first")
    with open(path, "rb") as f:
        return pickle.load(f)


def load_run_result(experiment: str | ExperimentConfig, row):
    """The RunResult (predictions, references, metrics) of one results-table row."""
    name = experiment if isinstance(experiment, str) else experiment.name
    with open(RunSpec.from_row(name, row).result_file(row["decoding"]), "rb") as f:
        return pickle.load(f)


def training_curves(experiment: str | ExperimentConfig, df):
    """The loss at each logged step of every trained run in a results table,
    from LLaMA-Factory's trainer_log.jsonl: columns run_id, model, prompt,
    size, seed, step, epoch, loss (one row per logged step)."""
    import json

    import pandas as pd

    name = experiment if isinstance(experiment, str) else experiment.name
    rows = []
    trained = df[(df["size"] > 0) & ~baseline_rows(df)].drop_duplicates("run_id") if len(df) else df
    for _, row in trained.iterrows():
        path = RunSpec.from_row(name, row).trainer_log
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("loss") is not None:
                rows.append({"run_id": row["run_id"], "model": row["model"], "prompt": row.get("prompt") or "",
                             "variant": row.get("variant") or "",
                             "size": int(row["size"]), "seed": row["seed"], "step": rec.get("current_steps"),
                             "epoch": rec.get("epoch"), "loss": rec["loss"]})
    return pd.DataFrame(rows, columns=["run_id", "model", "prompt", "variant", "size", "seed", "step", "epoch",
                                       "loss"])


def reported_rows(df):
    """The rows learning curves, intervals and comparisons use: every row; with
    eval.select: val (a `selected` column) each trained run once, as its
    validation-selected checkpoint under the run's own series name (checkpoint
    blank, the run's training cost), and no other checkpoint (those are the
    epoch curve's, test scores not used for selection)."""
    if "selected" not in df:
        return df
    trained = (df["size"] > 0) & ~baseline_rows(df)
    out = df[~trained | (df["selected"] != "")].copy()
    keys = ["model", "prompt", "variant", "size", "seed", "decoding"]   # a training run's coordinates and mode
    final = {tuple(r[keys]): r[COST] for _, r in df[trained & (df["checkpoint"] == "")].iterrows()}
    for i in out.index[(out["selected"] != "") & (out["checkpoint"] != "")]:
        key = tuple(out.loc[i, keys])
        if key in final:
            out.loc[i, COST] = final[key].to_numpy()
    out.loc[out["selected"] != "", "checkpoint"] = ""
    return out.reset_index(drop=True)


def baseline_rows(df):
    """A boolean mask of the rows that are classical baselines (not LLM runs)."""
    return df["model"].map(is_baseline_model).astype(bool)


def series_name(row) -> str:
    """One curve's label: the model, and its prompt, variant, decoding mode and kept epoch when it has them."""
    parts = [row["model"], row.get("prompt") or "", row.get("variant") or "",
             row["decoding"] if row["decoding"] != BASELINE_DECODING else "", row.get("checkpoint") or ""]
    return " / ".join(p for p in parts if p)


def base_in_every_variant(df):
    """The table with each zero-shot row (it trains nothing, so it has no
    variant) repeated under every variant of its model: each variant's curve
    starts at the same size-0 point."""
    import pandas as pd

    if "variant" not in df or df["variant"].nunique() < 2:
        return df
    base = (df["size"] == 0) & (df["variant"] == "")
    copies = [df[base & (df["model"] == m)].assign(variant=v)
              for m, v in df[~base & (df["variant"] != "")][["model", "variant"]].drop_duplicates().itertuples(
                  index=False)]
    return pd.concat([df[~base], *copies], ignore_index=True) if copies else df


def series_keys(df) -> list[str]:
    """Columns that tell curves apart: the model, and the prompt/variant/decoding when they vary."""
    keys = ["model"]
    for k in ("prompt", "variant", "decoding", "checkpoint"):
        if k in df and df[k].nunique() > 1:
            keys.append(k)
    return keys


def summary_table(df, metrics=("score", "accuracy", "invalid_rate")):
    """Mean and standard deviation over seeds per curve point."""
    keys = series_keys(df) + ["size"]
    table = df.groupby(keys)[list(metrics)].agg(["mean", "std"]).round(4)
    table[("seeds", "")] = df.groupby(keys).size()
    return table


def best_run(df, metric="score"):
    return df.sort_values(metric, ascending=False).iloc[0]


def per_type_table(result):
    """Per entity type precision/recall/F1/support of one ner RunResult."""
    import pandas as pd

    return pd.DataFrame(result.metrics["per_type"]).T.round(4)
