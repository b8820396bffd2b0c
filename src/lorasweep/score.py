"""Scoring: send every test prompt to a served model through LangChain's
ChatOpenAI (temperature 0, concurrent requests) and write, per run,
predictions.jsonl, result.pkl and metrics.json (the last one marks it finished).
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from .config import ExperimentConfig
from .io import atomic_write_json, atomic_write_pickle, atomic_write_text
from .metrics import INVALID, classification_metrics, to_label
from .plan import RunSpec
from .prompts import render_prompt
from .serve import served_name

log = logging.getLogger(__name__)

METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
RESULT_PKL = "result.pkl"


@dataclass
class RunResult:
    """Everything scored for one run; pickled as result.pkl."""
    run_id: str
    experiment: str
    model: str
    size: int
    seed: int | None
    decoding: str
    labels: list[str]
    references: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    score_s: float = 0.0


def is_scored(run: RunSpec) -> bool:
    return (run.folder() / METRICS).is_file()


def max_answer_tokens(cfg: ExperimentConfig) -> int:
    if cfg.eval.max_tokens:
        return cfg.eval.max_tokens
    # A generous bound on the longest label in tokens (one CJK character can
    # be one token; +4 for stray whitespace/punctuation the normaliser drops).
    return max(len(lab) for lab in cfg.task.labels) + 4


def make_client(cfg: ExperimentConfig, base_url: str, api_key: str, model_name: str, stop_ids: list[int]):
    import httpx
    from langchain_openai import ChatOpenAI

    extra: dict = {}
    if stop_ids:
        extra["stop_token_ids"] = stop_ids
    if cfg.eval.decoding == "constrained":
        extra["structured_outputs"] = {"choice": list(cfg.task.labels)}
    return ChatOpenAI(
        model=model_name, base_url=base_url, api_key=api_key, temperature=0,
        max_tokens=max_answer_tokens(cfg), timeout=cfg.eval.request_timeout_s, max_retries=3,
        extra_body=extra or None,
        # The server is on 127.0.0.1: never route it through an HTTP proxy.
        http_client=httpx.Client(trust_env=False, timeout=cfg.eval.request_timeout_s),
    )


def score_runs(cfg: ExperimentConfig, runs: list[RunSpec], test: list[dict], base_url: str,
               api_key: str) -> dict[str, RunResult]:
    """Score `runs` (all served by one server) on `test`; requests of all runs share one pool."""
    from langchain_core.messages import HumanMessage

    model = cfg.model(runs[0].model)
    stop_ids = model.resolved_stop_token_ids()
    clients = {r.run_id: make_client(cfg, base_url, api_key, served_name(r), stop_ids) for r in runs}
    prompts = [render_prompt(cfg.task, ex) for ex in test]
    raw: dict[str, list[str | None]] = {r.run_id: [None] * len(test) for r in runs}
    started = {r.run_id: time.time() for r in runs}
    finished: dict[str, float] = {}

    def ask(run_id: str, i: int) -> tuple[str, int, str]:
        msg = clients[run_id].invoke([HumanMessage(content=prompts[i])])
        return run_id, i, msg.content if isinstance(msg.content, str) else str(msg.content)

    jobs = [(r.run_id, i) for r in runs for i in range(len(test))]
    remaining = {r.run_id: len(test) for r in runs}
    with ThreadPoolExecutor(max_workers=cfg.eval.concurrency) as pool:
        futs = [pool.submit(ask, rid, i) for rid, i in jobs]
        with tqdm(total=len(futs), desc=f"scoring {model.name}", unit="req", dynamic_ncols=True) as bar:
            for fut in as_completed(futs):
                rid, i, text = fut.result()
                raw[rid][i] = text
                remaining[rid] -= 1
                if remaining[rid] == 0:
                    finished[rid] = time.time()
                bar.update(1)

    results = {}
    references = [ex["label"] for ex in test]
    for r in runs:
        answers = [t or "" for t in raw[r.run_id]]
        preds = [to_label(a, cfg.task.labels) for a in answers]
        metrics = classification_metrics(preds, references, cfg.task.labels)
        res = RunResult(run_id=r.run_id, experiment=cfg.name, model=r.model, size=r.size, seed=r.seed,
                        decoding=cfg.eval.decoding, labels=list(cfg.task.labels), references=references,
                        raw=answers, predictions=preds, metrics=metrics,
                        score_s=round(finished.get(r.run_id, time.time()) - started[r.run_id], 2))
        write_run_result(r, res, test)
        results[r.run_id] = res
        log.info("score %s: accuracy %.3f, macro-F1 %.3f, invalid %d/%d", r.run_id, metrics["accuracy"],
                 metrics["f1_macro"], metrics["invalid"], metrics["n"])
    return results


def write_run_result(run: RunSpec, res: RunResult, test: list[dict]) -> None:
    folder = run.folder()
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, ex in enumerate(test):
        rec = {"i": i, "label": ex["label"], "raw": res.raw[i], "prediction": res.predictions[i],
               "valid": res.predictions[i] != INVALID, "correct": res.predictions[i] == ex["label"]}
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(folder / PREDICTIONS, "\n".join(lines) + "\n")
    atomic_write_pickle(folder / RESULT_PKL, res)
    summary = {k: v for k, v in asdict(res).items() if k not in ("references", "raw", "predictions")}
    atomic_write_json(folder / METRICS, summary)   # the "scored" marker, written last
