"""The eval stage: per base model, one vLLM server with all its finished
adapters; infer_eval.py scores every unscored run against it; the server is
always stopped afterwards; then the experiment's results are collected.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dataclasses import dataclass, field

from .check import preflight
from .config import ExperimentConfig
from .executor import describe, run_jobs
from .paths import checkout_root
from .plan import RunSpec, baseline_runs, eval_runs
from .procs import ExperimentLock, install_cleanup
from .results import collect_results
from .score import is_scored
from .io import atomic_write_json
from .paths import experiment_dir, resolve_model_path
from .serve import ServerError, VLLMServer, kv_cache_tokens, served_name
from .splits import load_test
from .train import adapter_dir, is_trained

log = logging.getLogger(__name__)


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
    with ExperimentLock(experiment_dir(cfg.name) / ".eval.lock", "eval.sh"):
        return _run_eval(cfg)


def _run_eval(cfg: ExperimentConfig) -> EvalSummary:
    t0 = time.time()
    summary = EvalSummary()
    test = load_test(cfg)
    models = []
    for model in cfg.models:
        todo = _split_runs(cfg, model.name, summary)
        if todo:
            models.append(model.name)
        else:
            log.info("eval %s: nothing to score", model.name)
    if models:
        log.info("eval: %d base model(s) to serve; %s", len(models),
                 describe(cfg, cfg.eval.gpus_per_model, "eval.gpus_per_model"))
    for name, part, err in run_jobs(cfg, evaluate_model, models, cfg.eval.gpus_per_model, "eval.gpus_per_model"):
        if err is not None:   # the job itself broke (e.g. its Ray worker kept dying)
            for r in _split_runs(cfg, name, EvalSummary()):
                summary.failed[r.run_id] = str(err).splitlines()[0]
            continue
        summary.scored += part.scored
        summary.failed.update(part.failed)
        summary.server_start_s.update(part.server_start_s)
    if cfg.eval.baselines:
        from .baselines import run_baselines

        todo = [r.run_id for r in baseline_runs(cfg)]
        scored = run_baselines(cfg, test)
        summary.scored += scored
        summary.skipped += [r for r in todo if r not in scored]
    collect_results(cfg)
    summary.wall_s = time.time() - t0
    return summary


def _split_runs(cfg: ExperimentConfig, model_name: str, summary: EvalSummary) -> list[RunSpec]:
    """The model's runs still to score; finished and untrained ones go into `summary`."""
    runs: list[RunSpec] = []
    for r in (r for r in eval_runs(cfg) if r.model == model_name):
        if all(is_scored(r, d) for d in cfg.eval.decodings):
            summary.skipped.append(r.run_id)
        elif not r.is_base and not is_trained(r):
            summary.untrained.append(r.run_id)
        else:
            runs.append(r)
    return runs


def evaluate_model(cfg: ExperimentConfig, model_name: str, gpus: list[str] | None = None) -> EvalSummary:
    """Serve one base model with all its finished adapters (on `gpus` when
    given), prove parity, score every unscored run; the server always stops."""
    model = cfg.model(model_name)
    summary = EvalSummary()
    runs = _split_runs(cfg, model.name, EvalSummary())
    if not runs:
        return summary
    test = load_test(cfg)
    adapters = {r.run_id: adapter_dir(r) for r in runs if not r.is_base}
    # Every adapter of a model was trained with the same template; its
    # chat_template.jinja is what LLaMA-Factory trained on (train/serve parity).
    any_trained = [r for r in eval_runs(cfg) if r.model == model.name and not r.is_base and is_trained(r)]
    templates = [adapter_dir(r) / "chat_template.jinja" for r in any_trained]
    chat_template = next((t for t in templates if t.is_file()), None)
    ranks = [int(cfg.train.resolved_args().get("lora_rank", 8))]
    server_log = experiment_dir(cfg.name) / "runs" / f"server_{model.name}.log"
    unscored = lambda: [r for r in runs if not all(is_scored(r, d) for d in cfg.eval.decodings)]  # noqa: E731
    rc, attempts = None, 1 + cfg.eval.server_restarts
    parity = None
    if cfg.eval.check_parity and any_trained:
        side = ThreadPoolExecutor(max_workers=1)
        parity = side.submit(_training_side, cfg, model, test[0], any_trained[0])
        side.shutdown(wait=False)   # the one job runs on; the thread ends with it
    for attempt in range(1, attempts + 1):
        try:
            with VLLMServer(cfg, model, adapters, chat_template, server_log, lora_rank=max(ranks),
                            gpus=gpus) as srv:
                summary.server_start_s.setdefault(model.name, round(srv.started_s, 1))
                if parity is not None and attempt == 1:
                    _check_parity(cfg, srv, model, any_trained[0], parity.result())
                rc = _score_with_client(cfg, srv, unscored())
                died = srv.child is not None and srv.child.poll() is not None
        except ServerError as e:
            log.error("eval %s: %s", model.name, e)
            rc = "server failed to start"
            break
        except ParityError as e:
            log.error("eval %s: %s", model.name, e)
            rc = "train/serve parity check failed"
            break
        except RuntimeError as e:   # e.g. the parity encoding could not run
            log.error("eval %s: %s", model.name, e)
            rc = str(e).splitlines()[0]
            break
        if rc == 0 or not unscored():
            break
        if attempt < attempts:
            log.warning("eval %s: scoring stopped (client exit %s%s); restarting the server and going on "
                        "where it stopped (attempt %d of %d)", model.name, rc,
                        ", the server died" if died else "", attempt + 1, attempts)
    for r in runs:
        if all(is_scored(r, d) for d in cfg.eval.decodings):
            summary.scored.append(r.run_id)
        else:
            summary.failed[r.run_id] = rc if isinstance(rc, str) else f"infer_eval.py exit code {rc}"
    return summary


class ParityError(RuntimeError):
    pass


def _training_side(cfg: ExperimentConfig, model, example: dict, trained_run: RunSpec) -> tuple[str, dict] | None:
    """LLaMA-Factory's encoding of a test prompt (the training environment's
    imports take seconds, so this runs while the server starts)."""
    from .parity import training_encoding
    from .prompts import render_prompt
    from .train import llamafactory_cli

    cli = Path(llamafactory_cli(cfg)[0])
    train_py = cli.parent / "python"
    if not train_py.is_file():
        log.warning("parity %s: no training-environment python next to %s; parity not checked", model.name, cli)
        return None
    prompt = render_prompt(cfg.task, example, trained_run.prompt)
    return prompt, training_encoding(str(train_py), str(resolve_model_path(model.path)), model.template, prompt,
                                     example["label"])


def _check_parity(cfg: ExperimentConfig, srv: VLLMServer, model, trained_run: RunSpec,
                  training_side: tuple[str, dict] | None) -> None:
    """Compare the ids the server builds for a test prompt with LLaMA-Factory's; stop on a mismatch."""
    from .parity import compare, served_prompt_ids

    if training_side is None:
        return
    prompt, trained = training_side
    # The adapter's name when this server holds it; else (only the base model
    # left to score) the base model's, whose chat template is the same one.
    name = served_name(trained_run) if trained_run.run_id in srv.adapters else model.name
    try:
        served = served_prompt_ids(srv.base_url, srv.api_key, name, prompt)
    except OSError as e:   # urllib's HTTPError / URLError
        raise RuntimeError(f"parity {model.name}: the server's /tokenize failed for {name}: {e}") from e
    report = compare(trained, served, model.resolved_stop_token_ids())
    out = experiment_dir(cfg.name) / "runs" / model.name / "parity.json"
    atomic_write_json(out, {**report, "trained_prompt_ids": trained["prompt_ids"], "served_prompt_ids": served})
    if not report["ok"]:
        raise ParityError(f"train/serve parity failed (see {out}): prompt identical: {report['prompt_identical']} "
                          f"(first difference at token {report['first_difference_at']}), answer end token "
                          f"{report['answer_end_token']} in stop_token_ids {report['stop_token_ids']}: "
                          f"{report['stops_at_answer_end']}")
    log.info("parity %s: the served prompt is the trained one (%d tokens identical); answers end at token %s",
             model.name, report["prompt_tokens"], report["answer_end_token"])


def _score_with_client(cfg: ExperimentConfig, srv: VLLMServer, runs: list[RunSpec]) -> int:
    argv = [sys.executable, str(checkout_root() / "infer_eval.py"), str(cfg.path), "--base-url", srv.base_url,
            "--runs", *[r.run_id for r in runs]]
    kv = kv_cache_tokens(srv.log_path)
    if kv:
        argv += ["--kv-cache-tokens", str(kv)]
    for item in cfg._set_args:
        argv += ["--set", item]
    env = {**os.environ, "LORASWEEP_API_KEY": srv.api_key, "NO_PROXY": "127.0.0.1,localhost",
           "LANGCHAIN_OPENAI_TCP_KEEPALIVE": "0"}
    # The client inherits our terminal so its progress bar shows; it ends
    # before the server is stopped.
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
