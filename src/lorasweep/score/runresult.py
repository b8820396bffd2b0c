"""A scored run's record, the one type between the scorers (the LLM client in
score.py, the classical baselines) and the readers (results, analysis, the
notebook): RunResult, and how it is written into the run's folder.

    predictions.<mode>.jsonl   one line per example: gold, raw answer, parsed answer, valid, correct
    result.<mode>.pkl          the RunResult itself
    metrics.<mode>.json        the RunResult less its per-example lists: the "scored" marker, written last

(val_ namesakes on the validation set). Pickles written before this module existed
name the class lorasweep.score.RunResult, which score/__init__.py still imports from here; those
written before the package was grouped into folders name lorasweep.runresult.RunResult (a shim).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..infra.atomic import atomic_write_json, atomic_write_pickle, atomic_write_text
from ..runspec import TEST, RunSpec
from ..tasks import get_task


@dataclass
class RunResult:
    """Everything scored for one run in one decoding mode; pickled as result.<mode>.pkl."""
    run_id: str
    experiment: str
    model: str
    size: int
    seed: int | None
    decoding: str
    labels: list[str]
    prompt: str | None = None
    task: str = "text_classification"
    references: list = field(default_factory=list)   # gold labels (ner: gold answer texts)
    raw: list[str] = field(default_factory=list)      # the model's answers as sent back
    predictions: list = field(default_factory=list)  # parsed: a label or INVALID (ner: list of pairs)
    metrics: dict = field(default_factory=dict)
    score_s: float = 0.0
    variant: str | None = None
    checkpoint: int | None = None   # the epoch a kept checkpoint was saved after (None: the final adapter)
    trained_base: str = "full"   # the base weights the adapter was trained against (serve.trained_base)
    served_base: str = "full"    # the base weights it was scored on (serve.served_base)


def write_run_result(run: RunSpec, res: RunResult, test: list[dict], split: str = TEST) -> None:
    """predictions.<mode>.jsonl, result.<mode>.pkl, then metrics.<mode>.json (the "scored" marker);
    on the validation set, their val_ namesakes."""
    run.folder().mkdir(parents=True, exist_ok=True)
    task = get_task(res.task)
    lines = [json.dumps(task.prediction_record(i, ex, res.raw[i], res.predictions[i]), ensure_ascii=False)
             for i, ex in enumerate(test)]
    atomic_write_text(run.predictions_file(res.decoding, split), "\n".join(lines) + "\n")
    atomic_write_pickle(run.result_file(res.decoding, split), res)
    summary = {k: v for k, v in asdict(res).items() if k not in ("references", "raw", "predictions")}
    atomic_write_json(run.metrics_file(res.decoding, split), summary)   # the "scored" marker, written last
