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
from dataclasses import dataclass, field

from .config import ExperimentConfig
from .paths import checkout_root
from .plan import RunSpec, eval_runs
from .procs import install_cleanup
from .results import collect_results
from .score import is_scored
from .serve import ServerError, VLLMServer
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
    t0 = time.time()
    summary = EvalSummary()
    test = load_test(cfg)
    for model in cfg.models:
        runs: list[RunSpec] = []
        for r in (r for r in eval_runs(cfg) if r.model == model.name):
            if is_scored(r):
                summary.skipped.append(r.run_id)
            elif not r.is_base and not is_trained(r):
                summary.untrained.append(r.run_id)
            else:
                runs.append(r)
        if not runs:
            log.info("eval %s: nothing to score", model.name)
            continue
        adapters = {r.run_id: adapter_dir(r) for r in runs if not r.is_base}
        # Every adapter of a model was trained with the same template; its
        # chat_template.jinja is what LLaMA-Factory trained on (train/serve parity).
        any_trained = [r for r in eval_runs(cfg) if r.model == model.name and not r.is_base and is_trained(r)]
        templates = [adapter_dir(r) / "chat_template.jinja" for r in any_trained]
        chat_template = next((t for t in templates if t.is_file()), None)
        ranks = [int(cfg.train.resolved_args().get("lora_rank", 8))]
        server_log = runs[0].folder().parents[2] / f"server_{model.name}.log"
        try:
            with VLLMServer(cfg, model, adapters, chat_template, server_log, lora_rank=max(ranks)) as srv:
                summary.server_start_s[model.name] = round(srv.started_s, 1)
                rc = _score_with_client(cfg, srv, runs)
        except ServerError as e:
            log.error("eval %s: %s", model.name, e)
            for r in runs:
                summary.failed[r.run_id] = "server failed to start"
            continue
        for r in runs:
            if is_scored(r):
                summary.scored.append(r.run_id)
            else:
                summary.failed[r.run_id] = f"infer_eval.py exit code {rc}"
    collect_results(cfg)
    summary.wall_s = time.time() - t0
    return summary


def _score_with_client(cfg: ExperimentConfig, srv: VLLMServer, runs: list[RunSpec]) -> int:
    argv = [sys.executable, str(checkout_root() / "infer_eval.py"), str(cfg.path), "--base-url", srv.base_url,
            "--runs", *[r.run_id for r in runs]]
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
