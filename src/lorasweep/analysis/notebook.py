"""Running analysis.ipynb headless for an experiment; the executed copy and the
figures (PNG) land in experiments/<name>/."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..config import ExperimentConfig
from ..infra.paths import ROOT_ENV, checkout_root, executed_notebook, figures_dir, repo_root

log = logging.getLogger("lorasweep.notebook")   # its name before the move into folders: log lines unchanged

EXPERIMENT_ENV = "LORASWEEP_EXPERIMENT"   # the experiment analysis.ipynb opens (default the demo)


def run_notebook(cfg: ExperimentConfig, notebook: Path | None = None, timeout_s: int = 600) -> Path:
    import nbformat
    from nbclient import NotebookClient

    nb_path = notebook or checkout_root() / "analysis.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    out = executed_notebook(cfg.name)
    os.environ[EXPERIMENT_ENV] = str(cfg.path)
    os.environ[ROOT_ENV] = str(repo_root())
    t0 = time.time()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(checkout_root())}}).execute()
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    log.info("notebook: executed in %.0f s -> %s (figures in %s)", time.time() - t0, out,
             figures_dir(cfg.name))
    return out
