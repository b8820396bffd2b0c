"""Command-line overrides are part of the experiment: `train.sh --set ...`
records them in experiments/<name>/overrides.json, and later commands run
with other overrides (or none) say so, since what is on disk was made with
them. Nothing is applied silently: a later command's plan is its own command
line's.
"""
from __future__ import annotations

import logging
import shlex
import time

from .config import ExperimentConfig
from .infra.atomic import atomic_write_json, read_json
from .infra.paths import experiment_dir, overrides_file

log = logging.getLogger(__name__)


def record_overrides(cfg: ExperimentConfig, command: str) -> None:
    """Record the --set items `command` (train) runs with, replacing the last record."""
    experiment_dir(cfg.name).mkdir(parents=True, exist_ok=True)
    atomic_write_json(overrides_file(cfg.name), {"command": command, "set": cfg.set_args,
                                                 "at": time.strftime("%Y-%m-%d %H:%M:%S")})


def recorded_overrides(name: str) -> dict | None:
    path = overrides_file(name)
    try:
        return read_json(path) if path.is_file() else None
    except (ValueError, OSError):
        return None


def _as_flags(items: list[str]) -> str:
    return " ".join(f"--set {shlex.quote(i)}" for i in items) or "no --set"


def recorded_overrides_hint(cfg: ExperimentConfig) -> str:
    """'' when this command runs with the recorded overrides, else a clause saying what they were."""
    rec = recorded_overrides(cfg.name)
    if not rec or sorted(rec.get("set", [])) == sorted(cfg.set_args):
        return ""
    return (f"; {rec.get('command', 'train')}.sh last ran with {_as_flags(rec.get('set', []))} ({rec.get('at')}, "
            f"{overrides_file(cfg.name).name}), this command with {_as_flags(cfg.set_args)}")


def show_recorded_overrides(cfg: ExperimentConfig) -> None:
    """One log line when the recorded overrides differ from this command's."""
    hint = recorded_overrides_hint(cfg)
    if hint:
        log.warning("overrides%s: add the same --set to work on the same runs", hint)
