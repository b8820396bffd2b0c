"""Where things live: the repository, the cache of environments and models, outputs."""
from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = ("gemma-3-270m",)


def repo_root() -> Path:
    """The checkout holding experiments/, data/ and dataset_info.json.

    LORASWEEP_ROOT wins; otherwise the folder above src/ when running from a
    checkout, else the current directory.
    """
    env = os.environ.get("LORASWEEP_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "experiments").is_dir() or (here / "shell").is_dir():
        return here
    return Path.cwd().resolve()


def checkout_root() -> Path:
    """The lorasweep checkout this package runs from (infer_eval.py, analysis.ipynb, shell/)."""
    return Path(__file__).resolve().parents[2]


def cache_home() -> Path:
    return Path(os.environ.get("LORASWEEP_HOME", Path.home() / ".cache" / "lorasweep")).expanduser()


def env_python(name: str) -> Path:
    """Python of a managed environment: harness, train or serve."""
    return cache_home() / "envs" / name / "bin" / "python"


def embedded_model_dir(name: str = "gemma-3-270m") -> Path:
    return cache_home() / "models" / name


def resolve_model_path(path: str) -> Path:
    """A model's checkpoint folder; `embedded:<name>` means the built-in model."""
    if path.startswith(EMBEDDED_PREFIX):
        name = path[len(EMBEDDED_PREFIX):]
        if name not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}")
        return embedded_model_dir(name)
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root() / p)


def experiment_dir(name: str) -> Path:
    return repo_root() / "experiments" / name


def data_dir(name: str) -> Path:
    return repo_root() / "data" / name
