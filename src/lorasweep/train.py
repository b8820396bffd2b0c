"""Training: one `llamafactory-cli train <run>/train.yaml` per unfinished run.

A run is finished when `train_result.json` exists; it is written atomically,
last, after the adapter is on disk. A failed run leaves `train_failed.json`
with its exit code and log tail, and the sweep goes on.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm

from .check import preflight
from .config import ExperimentConfig
from .io import atomic_write_json, atomic_write_text, read_json
from .paths import env_python, experiment_dir, repo_root, resolve_model_path
from .plan import RunSpec, train_runs
from .executor import describe, run_jobs
from .procs import Child, ExperimentLock, install_cleanup, log_tail
from .splits import prepare_data

log = logging.getLogger(__name__)

RESULT = "train_result.json"
FAILED = "train_failed.json"
ADAPTER = "adapter"


def llamafactory_cli(cfg: ExperimentConfig) -> list[str]:
    if cfg.train.llamafactory_cli:
        return [cfg.train.llamafactory_cli]
    return [str(env_python("train").parent / "llamafactory-cli")]


def resolved_train_yaml(cfg: ExperimentConfig, run: RunSpec) -> dict:
    model = cfg.model(run.model)
    args = cfg.train.resolved_args()
    args.update({
        "model_name_or_path": str(resolve_model_path(model.path)),
        "template": model.template,
        "dataset_dir": str(repo_root()),
        "dataset": run.dataset,
        "output_dir": str(run.folder() / ADAPTER),
        "seed": run.seed,
        "data_seed": run.seed,
    })
    return args


def is_trained(run: RunSpec) -> bool:
    return (run.folder() / RESULT).is_file()


def fingerprint(cfg: ExperimentConfig, run: RunSpec) -> str:
    """Hash of what defines a run: its resolved LLaMA-Factory config and its
    training data. Where things live on disk is left out, so a moved checkout
    or cache keeps its finished runs."""
    import hashlib
    import json

    from .splits import dataset_path

    args = resolved_train_yaml(cfg, run)
    for key in ("dataset_dir", "output_dir"):
        args.pop(key, None)
    args["model_name_or_path"] = cfg.model(run.model).path   # as declared, e.g. embedded:gemma-3-270m
    h = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode())
    data = dataset_path(cfg.name, run.size, run.seed)
    if data.is_file():
        h.update(data.read_bytes())
    return h.hexdigest()[:16]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true",
                "DISABLE_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"})
    return env


@dataclass
class TrainSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)   # left out by --retry-failed
    wall_s: float = 0.0

    def text(self) -> str:
        lines = [f"train summary: {len(self.done)} trained, {len(self.skipped)} already finished, "
                 f"{len(self.failed)} failed, {self.wall_s / 60:.1f} min"]
        if self.not_started:
            lines.append(f"  {len(self.not_started)} unfinished run(s) left for later (--retry-failed)")
        for rid, why in self.failed.items():
            lines.append(f"  FAILED {rid}: {why}")
        return "\n".join(lines)


def _count_attempt(folder: Path) -> int:
    """How many times this run has been started, this time included; a
    finished run forgets (a later retrain counts from 1)."""
    marker = folder / ".attempts"
    n = 1 + (int(marker.read_text() or 0) if marker.is_file() else 0)
    atomic_write_text(marker, str(n))
    return n


def train_one(cfg: ExperimentConfig, run: RunSpec, gpus: list[str] | None = None) -> dict:
    """Train one run (pinned to `gpus` when given); returns its result record or raises RuntimeError."""
    folder = run.folder()
    folder.mkdir(parents=True, exist_ok=True)
    attempts = _count_attempt(folder)
    if attempts > 1:
        log.warning("train %s: attempt %d (an earlier attempt did not finish); training from the start",
                    run.run_id, attempts)
    (folder / FAILED).unlink(missing_ok=True)
    shutil.rmtree(folder / ADAPTER, ignore_errors=True)   # a partial adapter from a killed run
    args = resolved_train_yaml(cfg, run)
    yaml_path = folder / "train.yaml"
    atomic_write_text(yaml_path, yaml.safe_dump(args, allow_unicode=True, sort_keys=False))
    log_path = folder / "train.log"
    log_path.unlink(missing_ok=True)
    argv = llamafactory_cli(cfg) + ["train", str(yaml_path)]
    t0 = time.time()
    env = _child_env()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    with Child(argv, log_path, env=env, cwd=folder) as child:
        rc = child.wait(timeout=cfg.train.timeout_s)
        peak_rss = child.peak_rss_bytes
    wall = time.time() - t0
    adapter = folder / ADAPTER
    if rc != 0:
        why = "timed out" if rc == -9 else f"exit code {rc}"
        raise RuntimeError(f"llamafactory-cli {why}; see {log_path}\n{log_tail(log_path)}")
    if not (adapter / "adapter_model.safetensors").is_file():
        raise RuntimeError(f"training ended without an adapter in {adapter}; see {log_path}\n{log_tail(log_path)}")
    lf = {}
    if (adapter / "train_results.json").is_file():
        lf = read_json(adapter / "train_results.json")
    result = {
        "run_id": run.run_id, "model": run.model, "size": run.size, "seed": run.seed,
        "train_wall_s": round(wall, 2),
        "train_runtime_s": lf.get("train_runtime"),
        "train_samples_per_s": lf.get("train_samples_per_second"),
        "train_loss": lf.get("train_loss"),
        "train_tokens_seen": lf.get("num_input_tokens_seen"),
        "train_peak_rss_gb": round(peak_rss / 1e9, 2),
        "epochs": args.get("num_train_epochs"),
        "lora_rank": args.get("lora_rank"),
        "adapter": str(adapter),
        "gpus": gpus or [],
        "attempts": attempts,
        "fingerprint": fingerprint(cfg, run),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(folder / RESULT, result)   # the "finished" marker, written last
    (folder / ".attempts").unlink(missing_ok=True)
    return result


def run_training(cfg: ExperimentConfig, retry_failed: bool = True, only_failed: bool = False) -> TrainSummary:
    """Train every unfinished run. retry_failed=False leaves runs that failed
    before alone; only_failed=True trains nothing but those."""
    install_cleanup()
    preflight(cfg, "train")
    with ExperimentLock(experiment_dir(cfg.name) / ".train.lock", "train.sh"):
        return _run_training(cfg, retry_failed, only_failed)


def _run_training(cfg: ExperimentConfig, retry_failed: bool, only_failed: bool) -> TrainSummary:
    prepare_data(cfg)
    summary = TrainSummary()
    t0 = time.time()
    runs = train_runs(cfg)
    todo = []
    for r in runs:
        if is_trained(r):
            summary.skipped.append(r.run_id)
            old = read_json(r.folder() / RESULT).get("fingerprint")
            if old and old != fingerprint(cfg, r):
                log.warning("train %s: finished earlier with a different config or data; keeping it. "
                            "Delete %s to train it again.", r.run_id, r.folder())
        elif (r.folder() / FAILED).is_file() and not retry_failed:
            summary.failed[r.run_id] = "failed earlier (run without --skip-failed, or with --retry-failed)"
        elif only_failed and not (r.folder() / FAILED).is_file():
            summary.not_started.append(r.run_id)
        else:
            todo.append(r)
    log.info("train: %d run(s) to train, %d already finished; %s", len(todo), len(summary.skipped),
             describe(cfg, cfg.train.gpus_per_run, "train.gpus_per_run"))

    def starting(run: RunSpec, group: list[str] | None) -> None:
        log.info("train %s: starting%s (log %s)", run.run_id, f" on GPU {','.join(group)}" if group else "",
                 run.folder() / "train.log")

    jobs = run_jobs(cfg, train_one, todo, cfg.train.gpus_per_run, "train.gpus_per_run", on_start=starting)
    with tqdm(total=len(todo), desc="training runs", unit="run", dynamic_ncols=True) as bar:
        for run, res, err in jobs:
            bar.update(1)
            if err is not None:
                summary.failed[run.run_id] = str(err).splitlines()[0]
                atomic_write_json(run.folder() / FAILED, {"run_id": run.run_id, "error": str(err),
                                                          "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
                log.error("train %s: FAILED: %s", run.run_id, err)
                continue
            summary.done.append(run.run_id)
            retried = f", attempt {res['attempts']}" if res.get("attempts", 1) > 1 else ""
            log.info("train %s: done in %.0f s (%.2f samples/s, loss %s%s)", run.run_id, res["train_wall_s"],
                     res["train_samples_per_s"] or 0.0, res["train_loss"], retried)
    summary.wall_s = time.time() - t0
    return summary


def adapter_dir(run: RunSpec) -> Path:
    return run.folder() / ADAPTER
