"""The eval stage: per base model, one vLLM server with all its finished
adapters; infer_eval.py scores every unscored run against it; the server is
always stopped afterwards; then the experiment's results are collected.
"""
from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from ..analysis.results import collect_results
from ..check.check import preflight
from ..check.trainargs import trains_whole_model
from ..config import ExperimentConfig, ModelSpec
from ..data.splits import load_test, prepare_data
from ..infra import tools
from ..infra.paths import checkout_root, lock_file, server_log, test_file
from ..infra.procs import Child, ExperimentLock, install_cleanup
from ..models.chat import adapters_template
from ..models.embedded import resolve_model_path
from ..models.parity import ParityError, check_parity, encode_template
from ..plan import baseline_runs, eval_runs
from ..runspec import MODEL_WEIGHTS, TEST, VAL, RunSpec, weights_bytes
from ..serve.serve import (
    FULL_BASE,
    GPU_MEMORY_SHARE,
    ServerError,
    VLLMServer,
    kv_cache_tokens,
    served_base,
    servers_at_once,
    trained_base,
    uses_cpu_lora,
)
from ..tasks.prompts import render_prompt
from ..train.executor import gpu_groups, run_jobs, where_jobs_run
from .baselines import run_baselines
from .score import client_processes
from .selection import needs_val, record_selections

log = logging.getLogger("lorasweep.evaluation")   # its name before the move into folders: log lines unchanged


@dataclass
class EvalSummary:
    scored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    untrained: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    server_start_s: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"eval summary: {len(self.scored)} scored, {len(self.skipped)} already scored, "
                 f"{len(self.untrained)} not trained yet, {len(self.failed)} failed, {self.wall_s / 60:.1f} min"]
        lines += [f"  FAILED {k}: {v}" for k, v in self.failed.items()]
        return "\n".join(lines)


def run_eval(cfg: ExperimentConfig) -> EvalSummary:
    install_cleanup()
    preflight(cfg, "eval")
    with ExperimentLock(lock_file(cfg.name, "eval"), "eval.sh"):
        return _run_eval(cfg)


def _run_eval(cfg: ExperimentConfig) -> EvalSummary:
    t0 = time.time()
    summary = EvalSummary()
    if not test_file(cfg.name).is_file():
        prepare_data(cfg)   # a zero-shot-only eval: no train.sh wrote the splits the clients read
    test = load_test(cfg)
    models = []
    for model in cfg.models:
        todo = _split_runs(cfg, model.name, summary)
        if todo:
            models.append(model.name)
        else:
            log.info("eval %s: nothing to score", model.name)
    k, share = _models_at_once(cfg, models)
    if models:
        log.info("eval: %d base model(s) to serve; %s%s", len(models),
                 where_jobs_run(cfg, cfg.eval.gpus_per_model, "eval.gpus_per_model", k),
                 f" ({share:.2f} of the GPU memory each, eval.models_per_gpu)" if share else "")
    # With the servers on a GPU the baselines (CPU work) run while they start and score.
    side = ThreadPoolExecutor(max_workers=1) if cfg.eval.baselines and models and tools.visible_gpus() else None
    baselines = side.submit(_baselines, cfg, test) if side else None
    try:
        serve_one = partial(evaluate_model, memory_share=share)
        for name, part, err in run_jobs(cfg, serve_one, models, cfg.eval.gpus_per_model, "eval.gpus_per_model",
                                        share=k):
            if err is not None:   # the job itself broke (e.g. its Ray worker kept dying)
                for r in _split_runs(cfg, name, EvalSummary()):
                    summary.failed[r.run_id] = str(err).splitlines()[0]
                continue
            summary.scored += part.scored
            summary.failed.update(part.failed)
            summary.server_start_s.update(part.server_start_s)
        if cfg.eval.baselines:
            scored, skipped = baselines.result() if baselines else _baselines(cfg, test)
            summary.scored += scored
            summary.skipped += skipped
    finally:
        if side:
            side.shutdown(wait=False, cancel_futures=True)
    record_selections(cfg, eval_runs(cfg))   # (any a stopped eval scored on the validation set but left unrecorded)
    collect_results(cfg)
    summary.wall_s = time.time() - t0
    return summary


def _models_at_once(cfg: ExperimentConfig, models: list[str]) -> tuple[int, float | None]:
    """How many base models' servers share each GPU group at once
    (eval.models_per_gpu) and each one's share of its memory; (1, None) on a
    CPU, with a Ray executor, or when every model has a GPU group of its own
    (e.g. 3 models on 2 GPUs: 2 per GPU, if they fit)."""
    gpus = tools.visible_gpus() if cfg.executor.kind == "local" else []
    n_groups = len(gpu_groups(gpus, cfg.eval.gpus_per_model, "eval.gpus_per_model")) if gpus else 0
    if not n_groups or len(models) <= n_groups:
        return 1, None
    weights = 0
    for name in models:
        try:
            base = resolve_model_path(cfg.model(name).path)
        except (OSError, ValueError):
            return 1, None   # its size unknown: one at a time, as before
        weights = max(weights, weights_bytes(base))
    per_group = -(-len(models) // n_groups)   # ceil: 3 models on 2 groups -> 2
    k = servers_at_once(cfg.eval.models_per_gpu, per_group, weights, tools.gpu_memory_bytes(gpus[0]))
    return k, (GPU_MEMORY_SHARE / k if k > 1 else None)


def _baselines(cfg: ExperimentConfig, test: list[dict]) -> tuple[list[str], list[str]]:
    """The baselines scored, and those already scored before (skipped)."""
    todo = [r.run_id for r in baseline_runs(cfg)]
    scored = run_baselines(cfg, test)
    return scored, [r for r in todo if r not in scored]


def _split_runs(cfg: ExperimentConfig, model_name: str, summary: EvalSummary) -> list[RunSpec]:
    """The model's runs still to score; finished and untrained ones go into `summary`."""
    runs: list[RunSpec] = []
    for r in (r for r in eval_runs(cfg) if r.model == model_name):
        if _fully_scored(cfg, r):
            summary.skipped.append(r.run_id)
        elif not r.is_base and not r.is_trained():
            summary.untrained.append(r.run_id)
        else:
            runs.append(r)
    return runs


def _fully_scored(cfg: ExperimentConfig, run: RunSpec) -> bool:
    return all(run.is_scored(d, split) for split in _splits(cfg, run) for d in cfg.eval.decodings)


def _splits(cfg: ExperimentConfig, run: RunSpec) -> list[str]:
    """What a run is scored on: the validation set first when it is a candidate of a selection, then the test set."""
    return [VAL, TEST] if needs_val(cfg, run) else [TEST]


def evaluate_model(cfg: ExperimentConfig, model_name: str, gpus: list[str] | None = None,
                   memory_share: float | None = None) -> EvalSummary:
    """Serve one base model with all its finished adapters (on `gpus` when
    given, with `memory_share` of their memory when other models' servers
    share them), prove parity, score every unscored run; the server always stops."""
    model = cfg.model(model_name)
    summary = EvalSummary()
    runs = _split_runs(cfg, model.name, EvalSummary())
    if not runs:
        return summary
    trained = [r for r in eval_runs(cfg) if r.model == model.name and not r.is_base and r.is_trained()]
    encoding = _start_encoding(cfg, model, runs, trained)
    on_gpu = bool(gpus) or tools.has_nvidia_gpu()
    # Full/freeze-tuned models: each from a server of its own (below). The
    # rest: one server per base the runs are scored on: the full-precision
    # one, and on a GPU one quantized like the QLoRA adapters' training base.
    whole = [r for r in runs if trains_whole_model(cfg, r)]
    runs = [r for r in runs if r not in whole]
    trained = [r for r in trained if not trains_whole_model(cfg, r)]
    groups: dict[str, list[RunSpec]] = {}
    for r in sorted(runs, key=lambda r: served_base(cfg, r, on_gpu) != FULL_BASE):
        groups.setdefault(served_base(cfg, r, on_gpu), []).append(r)
    moved = [r.run_id for r in runs if trained_base(cfg, r) != served_base(cfg, r, on_gpu)]
    if moved:
        why = "eval.quantized_base: false" if on_gpu else "vLLM's CPU backend has no bitsandbytes"
        log.warning("eval %s: %d adapter(s) trained against a quantized base are scored on the full-precision "
                    "base (%s), e.g. %s; results say so in served_base", model.name, len(moved), why, moved[0])
    for base, group in groups.items():
        group_trained = [r for r in trained if served_base(cfg, r, on_gpu) == base]
        failure = _serve_and_score(cfg, model, group, group_trained, encoding, gpus, summary, base,
                                   memory_share=memory_share)
        _tally(cfg, group, failure, summary)
    if whole:
        _serve_whole_models(cfg, model, whole, encoding, gpus, summary, memory_share)
    return summary


def _tally(cfg: ExperimentConfig, runs: list[RunSpec], failure: str | None, summary: EvalSummary) -> None:
    for r in runs:
        if _fully_scored(cfg, r):
            summary.scored.append(r.run_id)
        else:
            summary.failed[r.run_id] = failure or "not scored"


def _serve_whole_models(cfg: ExperimentConfig, model: ModelSpec, runs: list[RunSpec], encoding: Future | None,
                        gpus: list[str] | None, summary: EvalSummary, memory_share: float | None = None) -> None:
    """Full/freeze-tuned models, each served by a vLLM server of its own with
    the same parity check: one at a time on a CPU, as many at once as fit on
    the GPUs (serve.servers_at_once), each with its share of their memory
    (of `memory_share` of it when other base models share the GPUs)."""
    whole_share = memory_share or GPU_MEMORY_SHARE
    gpu_bytes = tools.gpu_memory_bytes(gpus[0]) if gpus else None
    ours = int(gpu_bytes * whole_share / GPU_MEMORY_SHARE) if gpu_bytes else None   # this model's part of the GPU
    weights = max(weights_bytes(r.adapter_dir) for r in runs)
    k = servers_at_once(cfg.eval.checkpoint_servers, len(runs), weights, ours)
    share = whole_share / k if gpu_bytes and (k > 1 or memory_share) else None
    log.info("eval %s: %d full/freeze-tuned model(s), each from a server of its own, %d at a time%s",
             model.name, len(runs), k, f" ({share:.2f} of the GPU memory each)" if share else "")

    def one(run: RunSpec) -> None:
        if not run.holds_whole_model:
            summary.failed[run.run_id] = (f"its weights are gone from {run.adapter_dir} (eval.delete_full_weights "
                                          "deletes them once a run is scored); train it again to score it")
            return
        failure = _serve_and_score(cfg, model, [run], [run], encoding, gpus, summary, FULL_BASE,
                                   checkpoint=run, memory_share=share)
        _tally(cfg, [run], failure, summary)
        if failure is None and cfg.eval.delete_full_weights and _fully_scored(cfg, run):
            freed = 0
            for f in [*run.adapter_dir.glob("*.safetensors"), *(run.adapter_dir / m for m in MODEL_WEIGHTS)]:
                if f.is_file():
                    freed += f.stat().st_size
                    f.unlink()
            log.info("eval %s: scored; its weights deleted (%.2f GB, eval.delete_full_weights)", run.run_id,
                     freed / 1e9)

    with ThreadPoolExecutor(max_workers=k) as pool:
        list(pool.map(one, runs))


def _serve_and_score(cfg: ExperimentConfig, model: ModelSpec, runs: list[RunSpec], trained: list[RunSpec],
                     encoding: Future | None, gpus: list[str] | None, summary: EvalSummary,
                     base: str = FULL_BASE, checkpoint: RunSpec | None = None,
                     memory_share: float | None = None) -> str | None:
    """Start the server (again, up to eval.server_restarts times, when it dies
    mid-scoring) and score until every run is scored. Returns why it stopped
    short, or None. `checkpoint`: serve that run's whole model (full/freeze)
    under its run id instead of the base model with adapters."""
    adapters = {} if checkpoint else {r.run_id: r.adapter_dir for r in runs if not r.is_base}
    chat_template = adapters_template(trained)   # what LLaMA-Factory trained on (train/serve parity)
    rank = int(max(cfg.train_arg_values(model.name, "lora_rank")))
    attempts = 1 + cfg.eval.server_restarts
    failure = None
    for attempt in range(1, attempts + 1):
        try:
            log_name = checkpoint.run_id if checkpoint else model.name if base == FULL_BASE else f"{model.name}.{base}"
            with VLLMServer(cfg, model, adapters, chat_template, server_log(cfg.name, log_name),
                            lora_rank=rank, gpus=gpus, base=base,
                            checkpoint=checkpoint.adapter_dir if checkpoint else None,
                            served_name=checkpoint.served_name if checkpoint else None,
                            memory_share=memory_share) as srv:
                summary.server_start_s.setdefault(model.name, round(srv.started_s, 1))
                if encoding is not None and attempt == 1:
                    side = encoding.result()   # written to runs/<model>/template.json: the client's stop ids
                    if cfg.eval.check_parity and trained:
                        check_parity(cfg, srv, model, trained, side)
                rc = _score_with_client(cfg, srv, [r for r in runs if not _fully_scored(cfg, r)])
                server_state = srv.state()   # running, or its exit code and last log line
        except (ServerError, ParityError, RuntimeError) as e:   # RuntimeError: e.g. the parity encoding failed
            log.error("eval %s: %s", model.name, e)
            return {ServerError: "server failed to start", ParityError: "train/serve parity check failed"}.get(
                type(e), str(e).splitlines()[0])
        failure = None if rc == 0 else f"infer_eval.py exit code {rc}"
        if failure is None or all(_fully_scored(cfg, r) for r in runs):
            return None
        if attempt < attempts:
            log.warning("eval %s: scoring stopped (client exit %s; %s); restarting the server and going on "
                        "where it stopped (attempt %d of %d)", model.name, rc, server_state, attempt + 1, attempts)
    return failure


def _start_encoding(cfg: ExperimentConfig, model: ModelSpec, runs: list[RunSpec],
                    trained: list[RunSpec]) -> Future | None:
    """LLaMA-Factory's encoding of the first test prompt (parity.encode_template:
    the answer-end token the requests stop at, and the ids parity compares),
    computed in a side thread while the server starts (the training
    environment's imports take seconds). None when neither is needed: the user
    set stop_token_ids and parity is not checked."""
    check = cfg.eval.check_parity and bool(trained)
    if model.stop_token_ids is not None and not check:
        return None
    example = load_test(cfg)[0]
    prompt = render_prompt(cfg.task, example, (trained or runs)[0].prompt)
    side = ThreadPoolExecutor(max_workers=1)
    fut = side.submit(lambda: (prompt, encode_template(cfg, model, prompt, example["label"])))
    side.shutdown(wait=False)   # the one job runs on; the thread ends with it
    return fut


def _score_with_client(cfg: ExperimentConfig, srv: VLLMServer, runs: list[RunSpec]) -> int:
    """Score `runs` with infer_eval.py processes: with eval.select: val the
    candidates on the validation set first, and each training run's choice
    recorded (selection.py) before any of its test answers are asked for;
    then on the test set. In each, one round of processes at once: the base
    model's run in one of its own, the adapters' runs split over
    eval.client_processes more (each process pays a Python start, ~5 s: one
    round, not two). With vLLM's own CPU LoRA kernels (eval.tune_server:
    false on a CPU) the base model's run goes first, alone: those kernels give
    a base-model request batched with adapters' requests the last adapter
    slot's term (cpu_lora.lora_matvec); lorasweep's and the GPU's do not.
    Returns the first non-zero exit code (0 when all succeeded)."""
    for split in (VAL, TEST):
        todo = [r for r in runs if split in _splits(cfg, r) and not all(r.is_scored(d, split)
                                                                      for d in cfg.eval.decodings)]
        base = [r for r in todo if r.is_base]
        adapters = [r for r in todo if not r.is_base]
        on_gpu = bool(srv.gpus) or tools.has_nvidia_gpu()
        k = client_processes(cfg, len(adapters), on_gpu)
        groups = [adapters[i::k] for i in range(k)]
        rounds = [[base, *groups]] if on_gpu or uses_cpu_lora(cfg, srv.gpus) else [[base], groups]
        for round_groups in ([g for g in r if g] for r in rounds):
            procs = [_start_client(cfg, srv, g, len(round_groups), split) for g in round_groups]
            codes = [_wait(p) for p in procs]
            if any(codes):
                return next(c for c in codes if c)
        if split == VAL:
            record_selections(cfg, runs)
    return 0


def _start_client(cfg: ExperimentConfig, srv: VLLMServer, runs: list[RunSpec], share: int,
                  split: str = TEST) -> Child:
    argv = [sys.executable, str(checkout_root() / "infer_eval.py"), str(cfg.path), "--base-url", srv.base_url,
            "--runs", *[r.run_id for r in runs], "--share", str(share)]
    if split != TEST:
        argv += ["--split", split]
    kv = kv_cache_tokens(srv.log_path)
    if kv:
        argv += ["--kv-cache-tokens", str(kv)]
    for item in cfg.set_args:
        argv += ["--set", item]
    env = tools.child_env(**tools.LOCAL_NO_PROXY, **{tools.API_KEY_ENV: srv.api_key},
                          LANGCHAIN_OPENAI_TCP_KEEPALIVE="0")
    # The client writes to our terminal so its progress bar shows (no log file);
    # it ends before the server is stopped.
    return Child(argv, None, env=env)


def _wait(client: Child) -> int:
    """The client's exit code; its process group is stopped either way (procs.Child)."""
    return client.wait()
