"""Training: one `llamafactory-cli train <run>/train.yaml` per unfinished run.

A run is finished when `train_result.json` exists; it is written atomically,
last, after the adapter is on disk. A failed run leaves `train_failed.json`
with its exit code and log tail, and the sweep goes on.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm

from .check import preflight
from .config import ExperimentConfig
from .io import atomic_write_json, atomic_write_text, read_json
from .paths import env_python, experiment_dir, repo_root, resolve_model_path
from .plan import RunSpec, train_runs
from .procs import Child, ExperimentLock, install_cleanup, log_tail, stop_all
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


def train_one(cfg: ExperimentConfig, run: RunSpec, gpus: list[str] | None = None) -> dict:
    """Train one run (pinned to `gpus` when given); returns its result record or raises RuntimeError."""
    folder = run.folder()
    folder.mkdir(parents=True, exist_ok=True)
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
        "fingerprint": fingerprint(cfg, run),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(folder / RESULT, result)   # the "finished" marker, written last
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
    groups = gpu_groups(visible_gpus(), cfg.train.gpus_per_run)
    where = f"{len(groups)} at a time on GPU(s) {groups}" if groups else "one at a time on the CPU"
    log.info("train: %d run(s) to train, %d already finished; %s", len(todo), len(summary.skipped), where)
    free: queue.Queue = queue.Queue()
    for g in groups or [None]:
        free.put(g)

    stopping = threading.Event()

    def job(run: RunSpec) -> dict:
        group = free.get()   # blocks until a GPU group (or the CPU) is free
        try:
            if stopping.is_set():
                raise RuntimeError("not started: the sweep was stopped")
            log.info("train %s: starting%s (log %s)", run.run_id, f" on GPU {','.join(group)}" if group else "",
                     run.folder() / "train.log")
            return train_one(cfg, run, group)
        finally:
            free.put(group)

    pool = ThreadPoolExecutor(max_workers=max(1, len(groups)))
    try:
        _collect(pool, job, todo, summary)
    except BaseException:
        # Interrupted (SIGINT/SIGTERM): start no further run; the running ones
        # were signalled by the handler and end with their process groups.
        stopping.set()
        stop_all()   # a run that started just as the signal came
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    summary.wall_s = time.time() - t0
    return summary


def _collect(pool: ThreadPoolExecutor, job, todo: list[RunSpec], summary: TrainSummary) -> None:
    with tqdm(total=len(todo), desc="training runs", unit="run", dynamic_ncols=True) as bar:
        futures = {pool.submit(job, run): run for run in todo}
        for fut in as_completed(futures):
            run = futures[fut]
            bar.update(1)
            try:
                res = fut.result()
            except RuntimeError as e:
                summary.failed[run.run_id] = str(e).splitlines()[0]
                atomic_write_json(run.folder() / FAILED, {"run_id": run.run_id, "error": str(e),
                                                          "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
                log.error("train %s: FAILED: %s", run.run_id, e)
                continue
            summary.done.append(run.run_id)
            log.info("train %s: done in %.0f s (%.2f samples/s, loss %s)", run.run_id, res["train_wall_s"],
                     res["train_samples_per_s"] or 0.0, res["train_loss"])


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()] if out.returncode == 0 else []


def gpu_groups(gpus: list[str], per_run: int) -> list[list[str]]:
    """Split the GPUs into groups of `per_run` (leftovers idle); [] means train on the CPU."""
    if not gpus:
        return []
    if per_run > len(gpus):
        raise ValueError(f"train.gpus_per_run={per_run} but only {len(gpus)} GPU(s) are visible: {gpus}")
    return [gpus[i:i + per_run] for i in range(0, len(gpus) - per_run + 1, per_run)]


def adapter_dir(run: RunSpec) -> Path:
    return run.folder() / ADAPTER
