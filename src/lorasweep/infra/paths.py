"""Where an experiment's files live: the checkout, experiments/<name>/ and
data/<name>/. (A run's own folder is runspec.py's; the cache of environments
and models is tools.py's.)"""
from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "LORASWEEP_ROOT"


def repo_root() -> Path:
    """The checkout holding experiments/, data/ and dataset_info.json.

    LORASWEEP_ROOT wins; otherwise the folder above src/ when running from a
    checkout, else the current directory.
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[3]
    if (here / "experiments").is_dir() or (here / "shell").is_dir():
        return here
    return Path.cwd().resolve()


def checkout_root() -> Path:
    """The lorasweep checkout this package runs from (infer_eval.py, analysis.ipynb, shell/)."""
    return Path(__file__).resolve().parents[3]


# --- experiments/<name>/ -------------------------------------------------------

def experiment_dir(name: str) -> Path:
    return repo_root() / "experiments" / name


def runs_dir(name: str, root: Path | None = None) -> Path:
    """experiments/<name>/runs, or runs under `root` (an experiment folder found elsewhere)."""
    return (root or experiment_dir(name)) / "runs"


def server_log(name: str, model: str) -> Path:
    return runs_dir(name) / f"server_{model}.log"


def overrides_file(name: str) -> Path:
    """The --set overrides train.sh last ran with (overrides.py)."""
    return experiment_dir(name) / "overrides.json"


def check_file(name: str) -> Path:
    """The last check's errors and warnings (check.full_check)."""
    return experiment_dir(name) / "check.json"


def train_args_check_file(name: str) -> Path:
    """LLaMA-Factory's verdict on every run's train.yaml, as check last asked it (trainargs.py)."""
    return experiment_dir(name) / "train_args_check.json"


def lengths_file(name: str, model: str) -> Path:
    """The experiment's token lengths under the model's tokenizer and template (lengths.py)."""
    return runs_dir(name) / model / "lengths.json"


def parity_file(name: str, model: str) -> Path:
    return runs_dir(name) / model / "parity.json"


def template_file(name: str, model: str) -> Path:
    """LLaMA-Factory's encoding of one example with the model's template (parity.py)."""
    return runs_dir(name) / model / "template.json"


def lock_file(name: str, stage: str) -> Path:
    """One train.sh and one eval.sh at a time per experiment."""
    return experiment_dir(name) / f".{stage}.lock"


def results_file(name: str, ext: str = "pkl") -> Path:
    """results.pkl (a pandas DataFrame), results.csv, results.json."""
    return experiment_dir(name) / f"results.{ext}"


def figures_dir(name: str) -> Path:
    return experiment_dir(name) / "figures"


def report_file(name: str) -> Path:
    return experiment_dir(name) / "report.html"


def executed_notebook(name: str) -> Path:
    return experiment_dir(name) / "analysis.ipynb"


# --- data/<name>/ and the dataset registry ----------------------------------------

def data_dir(name: str) -> Path:
    return repo_root() / "data" / name


def test_file(name: str) -> Path:
    return data_dir(name) / "test.json"


def val_file(name: str) -> Path:
    """The validation set (data.val_size): what eval.select: val chooses checkpoints on."""
    return data_dir(name) / "val.json"


def embeddings_cache(name: str) -> Path:
    return data_dir(name) / "embeddings-minilm.npz"


def dataset_info() -> Path:
    """LLaMA-Factory's dataset registry (train.yaml's dataset_dir is the repo root)."""
    return repo_root() / "dataset_info.json"
