"""Preflight: find the problems that would otherwise stop the sweep in the
middle of the night, and report them all at once before the first run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import ConfigError, ExperimentConfig
from .paths import env_python, resolve_model_path


def _executable(path: str) -> bool:
    p = Path(path)
    if p.is_file():
        return os.access(p, os.X_OK)
    return shutil.which(path) is not None


def problems(cfg: ExperimentConfig, stage: str) -> list[str]:
    """Problems for `stage` ("train" or "eval"); empty when all is well."""
    out = []
    for m in cfg.models:
        try:
            path = resolve_model_path(m.path)
        except ValueError as e:
            out.append(f"models[{m.name}].path: {e}")
            continue
        if not (path / "config.json").is_file():
            hint = ("run `bash shell/setup.sh model`" if m.path.startswith("embedded:")
                    else "point it at a Hugging Face checkpoint folder (with config.json)")
            out.append(f"models[{m.name}].path: no checkpoint at {path}; {hint}")
    if stage == "train":
        from .train import llamafactory_cli

        cli = llamafactory_cli(cfg)[0]
        if not _executable(cli):
            out.append(f"train.llamafactory_cli: {cli} not found; run `bash shell/setup.sh train` "
                       "or set train.llamafactory_cli")
    if stage == "eval":
        py = cfg.eval.vllm_python or str(env_python("serve"))
        if not _executable(py):
            out.append(f"eval.vllm_python: {py} not found; run `bash shell/setup.sh serve` or set eval.vllm_python")
    return out


def preflight(cfg: ExperimentConfig, stage: str) -> None:
    found = problems(cfg, stage)
    if found:
        where = cfg.path or cfg.name
        raise ConfigError(f"{where}: {len(found)} problem(s) found before {stage}:\n" +
                          "\n".join(f"  - {p}" for p in found))
