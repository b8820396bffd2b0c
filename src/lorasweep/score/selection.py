"""Selection without peeking (eval.select: val): each trained run reports the
checkpoint (its final adapter, or one kept after train.save_epochs) whose
headline score on the validation set (data.val_size) is best. The choice reads
only the candidates' validation metrics and is recorded in the training run's
folder, selection.<mode>.json, before the results table reads a test answer;
results.py marks the chosen row from that record.

Ties go to the earlier epoch (the final adapter counts as the run's last
epoch): fewer epochs, the same validation score.
"""
from __future__ import annotations

import logging

from ..config import ExperimentConfig
from ..infra.atomic import atomic_write_json, read_json
from ..runspec import VAL, RunSpec
from ..tasks import get_task
from ..train.budget import kept_epochs

log = logging.getLogger("lorasweep.selection")   # its name before the move into folders: log lines unchanged

LAST = "last"   # the final adapter's label in a selection (a kept checkpoint's is e<k>)
def selecting(cfg: ExperimentConfig) -> bool:
    return cfg.eval.select == "val"


def label(run: RunSpec) -> str:
    """A candidate's name in a selection: e<k> for a checkpoint kept after epoch k, `last` for the final adapter."""
    return f"e{run.epoch}" if run.epoch else LAST


def candidates(cfg: ExperimentConfig, run: RunSpec) -> list[RunSpec]:
    """What a training run may report, in epoch order: the checkpoints it keeps, then its final adapter."""
    run = run.training_run
    return [run.checkpoint(e) for e in kept_epochs(cfg, run)] + [run]


def needs_val(cfg: ExperimentConfig, run: RunSpec) -> bool:
    """Whether eval scores `run` on the validation set: a candidate of a selection (not zero-shot, no baseline)."""
    return selecting(cfg) and not run.is_base and not run.is_baseline


def choose(val_scores: list[tuple[str, float]]) -> tuple[str, float]:
    """The best (label, score) of candidates listed in epoch order; a tie goes to the earlier one.
    E.g. [(e1, 0.61), (e2, 0.64), (last, 0.64)] -> (e2, 0.64)."""
    best = val_scores[0]
    for item in val_scores[1:]:
        if item[1] > best[1]:   # strictly better: an equal score keeps the earlier epoch
            best = item
    return best


def record_selections(cfg: ExperimentConfig, runs: list[RunSpec]) -> int:
    """Write selection.<mode>.json for each training run among `runs` (or whose checkpoint is) once every
    candidate is scored on the validation set (again only when it changed); returns how many were written.
    Reads validation metrics only."""
    if not selecting(cfg):
        return 0
    written = 0
    metric = get_task(cfg.task.type).headline
    for run in dict.fromkeys(r.training_run for r in runs if needs_val(cfg, r)):
        cands = candidates(cfg, run)
        for mode in cfg.eval.decodings:
            if not all(c.is_scored(mode, VAL) for c in cands):
                continue
            scores = [(label(c), float(read_json(c.metrics_file(mode, VAL))["metrics"][metric])) for c in cands]
            chosen, score = choose(scores)
            n = int(read_json(run.metrics_file(mode, VAL))["metrics"]["n"])
            record = {"metric": metric, "val_size": n, "candidates": dict(scores), "selected": chosen,
                      "val_score": score}
            if read_selection(run, mode) == record:
                continue
            atomic_write_json(run.selection_file(mode), record)
            written += 1
            log.info("select %s [%s]: %s (validation %s %.3f of %s)", run.run_id, mode, chosen, metric, score,
                     ", ".join(f"{k} {v:.3f}" for k, v in scores))
    return written


def read_selection(run: RunSpec, decoding: str) -> dict | None:
    """A training run's recorded selection, or None (not selecting, or not every candidate scored on it yet)."""
    path = run.training_run.selection_file(decoding)
    return read_json(path) if path.is_file() else None
