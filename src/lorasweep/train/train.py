"""Training: one `llamafactory-cli train <run>/train.yaml` per unfinished run.

A run is finished when `train_result.json` exists; it is written atomically,
last, after the adapter is on disk. A failed run leaves `train_failed.json`
with its exit code and log tail, and the sweep goes on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import yaml
from tqdm import tqdm

from ..check.check import preflight
from ..check.trainargs import WHOLE_MODEL_METHODS, finetuning_method, resolved_train_yaml, with_precision
from ..config import ConfigError, ExperimentConfig
from ..data.splits import prepare_data
from ..envscripts import script
from ..infra import tools
from ..infra.atomic import atomic_write_json, atomic_write_text, read_json
from ..infra.paths import lock_file
from ..infra.procs import Child, ExperimentLock, install_cleanup, log_tail
from ..models.embedded import resolve_model_path
from ..overrides import record_overrides, show_recorded_overrides
from ..plan import train_runs
from ..runspec import CHAT_TEMPLATE, EPOCH_PREFIX, RunSpec, TrainRecord, weights_bytes
from .budget import budget, kept_epochs, run_keys
from .executor import current_node, run_jobs, where_jobs_run

log = logging.getLogger("lorasweep.train")   # its name before the move into folders: log lines unchanged


def fingerprint(cfg: ExperimentConfig, run: RunSpec) -> str:
    """Hash of what defines a run: its resolved LLaMA-Factory config and its
    training data. Where things live on disk is left out, so a moved checkout
    or cache keeps its finished runs."""
    model = cfg.model(run.model)
    # the model as declared (e.g. embedded:gemma-3-270m), no dataset_dir or output_dir
    args = {**run_keys(cfg, run), **tools.run_train_args(model.path, model.template, run.dataset, run.seed)}
    h = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode())
    if run.train_file.is_file():
        h.update(run.train_file.read_bytes())
    return h.hexdigest()[:16]


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


def trainer_argv(cfg: ExperimentConfig, run: RunSpec) -> list[str]:
    """How a run's train.yaml is trained: through envscripts/fast_loss.py in the
    training environment (train.fast_loss, the default), else llamafactory-cli."""
    python = tools.train_python(cfg)
    if cfg.train.fast_loss and python.is_file():
        return [str(python), script("fast_loss.py"), "train", str(run.train_yaml)]
    return tools.llamafactory_cli(cfg) + ["train", str(run.train_yaml)]


FAST_LOSS_LINE = "lorasweep: fast loss "   # the launcher's one line in train.log: "on (...)" or "off: why"


def fast_loss_state(run: RunSpec) -> str | None:
    """What the launcher said in train.log (None when it was not used)."""
    try:
        text = run.train_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    said = [line.split(FAST_LOSS_LINE, 1)[1].strip() for line in text.splitlines() if FAST_LOSS_LINE in line]
    return said[0] if said else None


class TrainProgress:
    """A progress bar for one run, fed by the trainer_log.jsonl LLaMA-Factory
    appends at every logging step: steps done / total, loss, time left."""

    def __init__(self, run: RunSpec):
        self.run, self.offset, self.bar, self.loss = run, 0, None, None

    def update(self) -> None:
        try:
            with open(self.run.trainer_log, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]   # a line still being written waits for the next poll
        self.offset += len(complete)
        records = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        last = next((r for r in reversed(records) if "current_steps" in r and "total_steps" in r), None)
        if last is None:
            return
        self.loss = next((r["loss"] for r in reversed(records) if "loss" in r), self.loss)
        if self.bar is None:
            # initial: steps done before the bar existed do not count towards its rate
            self.bar = tqdm(total=last["total_steps"], initial=last["current_steps"], desc=f"  {self.run.run_id}",
                            unit="step", leave=False, dynamic_ncols=True)
        self.bar.n = last["current_steps"]
        loss = f"loss {self.loss:.4f}, " if self.loss is not None else ""   # (the last record has none)
        self.bar.set_postfix_str(f"{loss}left {last.get('remaining_time') or '?'}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


POLL_S = 2.0   # how often train.sh looks at a running trainer's log


def _wait_showing_progress(child: Child, run: RunSpec, timeout_s: float | None) -> int:
    """The trainer's exit code (-9 when killed at `timeout_s`), with its progress bar meanwhile."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    progress = TrainProgress(run)
    try:
        while not child.exited_within(POLL_S):   # returns as soon as the trainer ends
            if deadline is not None and time.monotonic() > deadline:
                child.stop()
                return -9
            progress.update()
        progress.update()
        return child.wait()
    finally:
        progress.close()


def keep_checkpoints(cfg: ExperimentConfig, run: RunSpec) -> dict[str, str]:
    """Move the adapters LLaMA-Factory saved after the epochs in train.save_epochs
    (adapter/checkpoint-<step>, step = epoch x steps per epoch) to their own run
    folders (epoch<k>/adapter) and delete the other checkpoints."""
    spe = budget(cfg, run).steps_per_epoch
    wanted = set(kept_epochs(cfg, run))
    kept: dict[str, str] = {}
    for ck in sorted(run.adapter_dir.glob("checkpoint-*")):
        step = ck.name.split("-", 1)[1]
        epoch = int(step) // spe if step.isdigit() and spe and int(step) % spe == 0 else None
        if epoch in wanted:
            dest = run.checkpoint(epoch).adapter_dir
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            ck.rename(dest)
            if not (dest / CHAT_TEMPLATE).is_file() and run.chat_template.is_file():
                shutil.copy2(run.chat_template, dest / CHAT_TEMPLATE)   # the template it trained with
            kept[str(epoch)] = str(dest)
        else:
            shutil.rmtree(ck, ignore_errors=True)
    missing = sorted(wanted - {int(e) for e in kept})
    if missing:
        log.warning("train %s: no checkpoint after epoch(s) %s in %s", run.run_id, missing, run.adapter_dir)
    return kept


def _in_base_dtype(cfg: ExperimentConfig, run: RunSpec) -> dict:
    """A whole model saved by full/freeze tuning, rewritten in the base model's
    dtype (LLaMA-Factory saves what it tuned as float32: twice a bf16 base's disk)."""
    base = resolve_model_path(cfg.model(run.model).path)
    proc = subprocess.run([str(tools.train_python(cfg)), script("cast_checkpoint.py"), str(run.adapter_dir), str(base)],
                          capture_output=True, text=True, env=tools.child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"saving {run.run_id} in its base model's dtype failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["cast"]:
        log.info("train %s: the saved model cast to %s: %.2f -> %.2f GB", run.run_id, out["dtype"],
                 out["bytes_before"] / 1e9, out["bytes_after"] / 1e9)
    return out


def _steps_done(run: RunSpec) -> int | None:
    """The optimizer steps of a finished run, from the last record of its trainer_log.jsonl."""
    try:
        lines = run.trainer_log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "current_steps" in rec:
            return int(rec["current_steps"])
    return None


def _count_attempt(run: RunSpec) -> int:
    """How many times this run has been started, this time included; a
    finished run forgets (a later retrain counts from 1)."""
    marker = run.attempts_file
    n = 1 + (int(marker.read_text() or 0) if marker.is_file() else 0)
    atomic_write_text(marker, str(n))
    return n


def train_one(cfg: ExperimentConfig, run: RunSpec, gpus: list[str] | None = None) -> TrainRecord:
    """Train one run (pinned to `gpus` when given); returns its result record or raises RuntimeError."""
    run.folder().mkdir(parents=True, exist_ok=True)
    attempts = _count_attempt(run)
    if attempts > 1:
        log.warning("train %s: attempt %d (an earlier attempt did not finish); training from the start",
                    run.run_id, attempts)
    run.failed_marker.unlink(missing_ok=True)
    shutil.rmtree(run.adapter_dir, ignore_errors=True)   # a partial adapter from a killed run
    for old in run.folder().glob(f"{EPOCH_PREFIX}*"):    # checkpoints (and their scores) of an earlier training
        shutil.rmtree(old, ignore_errors=True)
    args = with_precision(resolved_train_yaml(cfg, run), gpus)
    atomic_write_text(run.train_yaml, yaml.safe_dump(args, allow_unicode=True, sort_keys=False))
    run.train_log.unlink(missing_ok=True)
    t0 = time.time()
    with Child(trainer_argv(cfg, run), run.train_log, env=tools.child_env(gpus), cwd=run.folder()) as child:
        rc = _wait_showing_progress(child, run, cfg.train.timeout_s)
        peak_rss = child.peak_rss_bytes
    wall = time.time() - t0
    if rc != 0:
        why = "timed out" if rc == -9 else f"exit code {rc}"
        raise RuntimeError(f"llamafactory-cli {why}; see {run.train_log}\n{log_tail(run.train_log)}")
    if not run.has_weights():
        raise RuntimeError(f"training ended without an adapter in {run.adapter_dir}; see {run.train_log}\n"
                           f"{log_tail(run.train_log)}")
    kept = keep_checkpoints(cfg, run)
    method = finetuning_method(cfg, run)
    saved = _in_base_dtype(cfg, run) if method in WHOLE_MODEL_METHODS else {}
    lf = read_json(run.trainer_results) if run.trainer_results.is_file() else {}
    planned = budget(cfg, run)
    record = TrainRecord(
        run_id=run.run_id, model=run.model, variant=run.variant, size=run.size, seed=run.seed,
        train_wall_s=round(wall, 2),
        train_runtime_s=lf.get("train_runtime"),
        train_samples_per_s=lf.get("train_samples_per_second"),
        train_loss=lf.get("train_loss"),
        train_tokens_seen=lf.get("num_input_tokens_seen"),
        train_peak_rss_gb=round(peak_rss / 1e9, 2),
        epochs=planned.epochs,
        steps=_steps_done(run) or planned.steps,
        budget=cfg.budget(run.model).kind,
        checkpoints=kept,
        method=method,
        lora_rank=args.get("lora_rank") if method == "lora" else None,
        weights_bytes=weights_bytes(run.adapter_dir),
        saved_dtype=saved.get("dtype"),
        fast_loss=fast_loss_state(run),
        adapter=str(run.adapter_dir),
        gpus=gpus or [],
        node=current_node(),
        attempts=attempts,
        fingerprint=fingerprint(cfg, run),
        model_path=cfg.model(run.model).path,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    record.write(run)   # the "finished" marker, written last
    run.attempts_file.unlink(missing_ok=True)
    return record


def run_training(cfg: ExperimentConfig, retry_failed: bool = True, only_failed: bool = False,
                 strict: bool = False, retrain_changed: bool = False) -> TrainSummary:
    """Train every unfinished run. retry_failed=False leaves runs that failed
    before alone; only_failed=True trains nothing but those; strict=True
    stops on the check's warnings too. A finished run whose settings or data
    changed stops the sweep before any training, unless retrain_changed."""
    install_cleanup()
    preflight(cfg, "train", strict=strict)
    with ExperimentLock(lock_file(cfg.name, "train"), "train.sh"):
        show_recorded_overrides(cfg)
        record_overrides(cfg, "train")
        return _run_training(cfg, retry_failed, only_failed, retrain_changed)


def changed_runs(cfg: ExperimentConfig, runs: list[RunSpec]) -> dict[RunSpec, list[str]]:
    """Finished runs whose recorded fingerprint is not the current one, each
    with what differs: the LLaMA-Factory keys (recorded train.yaml vs now) or
    its training data."""
    out = {}
    for r in runs:
        if not r.is_trained():
            continue
        record = TrainRecord.read(r)
        if not record.fingerprint or record.fingerprint == fingerprint(cfg, r):
            continue
        try:
            before = yaml.safe_load(r.train_yaml.read_text()) or {}
        except (OSError, yaml.YAMLError):
            before = {}
        now = resolved_train_yaml(cfg, r)
        diff = [f"{k}: {before.get(k, '(unset)')} -> {now.get(k, '(unset)')}" for k in sorted(set(before) | set(now))
                if k not in tools.PLACE_TRAIN_KEYS and before.get(k) != now.get(k)]
        declared = cfg.model(r.model).path
        if (record.model_path or declared) != declared:
            diff.append(f"model: {record.model_path} -> {declared}")
        out[r] = diff or [f"its training data ({r.train_file.name}) changed"]
    return out


def _run_training(cfg: ExperimentConfig, retry_failed: bool, only_failed: bool,
                  retrain_changed: bool = False) -> TrainSummary:
    prepare_data(cfg)
    summary = TrainSummary()
    t0 = time.time()
    runs = train_runs(cfg)
    todo = []
    changed = changed_runs(cfg, runs)
    if changed and not retrain_changed:
        raise ConfigError(
            f"{len(changed)} finished run(s) were trained with other settings or data than the experiment now "
            "has; nothing was trained. Run again with --retrain-changed to train them again (their adapters and "
            "scores are replaced), or restore the settings:\n" +
            "\n".join(f"  - {r.run_id}: {'; '.join(diff)}" for r, diff in changed.items()))
    for r, diff in changed.items():
        log.info("train %s: settings changed (%s); training it again", r.run_id, "; ".join(diff))
        shutil.rmtree(r.folder())
    for r in runs:
        if r.is_trained():
            summary.skipped.append(r.run_id)
        elif r.has_failed() and not retry_failed:
            summary.failed[r.run_id] = "failed earlier (run without --skip-failed, or with --retry-failed)"
        elif only_failed and not r.has_failed():
            summary.not_started.append(r.run_id)
        else:
            todo.append(r)
    log.info("train: %d run(s) to train, %d already finished; %s", len(todo), len(summary.skipped),
             where_jobs_run(cfg, cfg.train.gpus_per_run, "train.gpus_per_run", cfg.train.runs_per_gpu))

    def starting(run: RunSpec, group: list[str] | None) -> None:
        log.info("train %s: starting%s (log %s)", run.run_id, f" on GPU {','.join(group)}" if group else "",
                 run.train_log)

    jobs = run_jobs(cfg, train_one, todo, cfg.train.gpus_per_run, "train.gpus_per_run", on_start=starting,
                    share=cfg.train.runs_per_gpu)
    with tqdm(total=len(todo), desc="training runs", unit="run", dynamic_ncols=True) as bar:
        for run, res, err in jobs:
            bar.update(1)
            if err is not None:
                summary.failed[run.run_id] = str(err).splitlines()[0]
                atomic_write_json(run.failed_marker, {"run_id": run.run_id, "error": str(err),
                                                          "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
                log.error("train %s: FAILED: %s", run.run_id, err)
                continue
            summary.done.append(run.run_id)
            retried = f", attempt {res.attempts}" if (res.attempts or 1) > 1 else ""
            log.info("train %s: done in %.0f s (%.2f samples/s, loss %s, fast loss %s%s)", run.run_id,
                     res.train_wall_s, res.train_samples_per_s or 0.0, res.train_loss,
                     res.fast_loss or "not used", retried)
    summary.wall_s = time.time() - t0
    return summary
