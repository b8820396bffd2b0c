"""The tools lorasweep drives and how it starts them: the managed
environments under the cache home (their Pythons, llamafactory-cli, vLLM),
the environment every child process gets, GPU detection, and the
LLaMA-Factory keys lorasweep sets on every run.

Standard library only, so the shell scripts can ask it with any Python
before an environment exists:

    python -m lorasweep.tools home            # the cache home
    python -m lorasweep.tools serve-backend   # gpu or cpu (LORASWEEP_SERVE_BACKEND, else nvidia-smi)
    python -m lorasweep.tools uv-index-args   # pip's index settings as uv's flags, one per line
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HOME_ENV = "LORASWEEP_HOME"
DEFAULT_HOME = Path("~/.cache/lorasweep")
SERVE_BACKEND_ENV = "LORASWEEP_SERVE_BACKEND"
API_KEY_ENV = "LORASWEEP_API_KEY"   # eval.sh hands the server's generated key to infer_eval.py in it



def run_train_args(model_path: str, template: str, dataset: str, seed: int, dataset_dir: str | None = None,
                   output_dir: str | None = None) -> dict:
    """The LLaMA-Factory keys lorasweep sets on every run from its coordinates
    (where things live left out when not given, as in a run's fingerprint)."""
    args = {"model_name_or_path": model_path, "template": template, "dataset_dir": dataset_dir,
            "dataset": dataset, "output_dir": output_dir, "seed": seed, "data_seed": seed}
    return {k: v for k, v in args.items() if v is not None}


# Those `train.args` may not set (data_seed follows the run's seed unless set there).
MANAGED_TRAIN_KEYS = tuple(k for k in run_train_args("", "", "", 0, "", "") if k != "data_seed")
# Of those, the ones that say where things live: a moved checkout or cache changes them, not the run.
PLACE_TRAIN_KEYS = ("model_name_or_path", "dataset_dir", "output_dir")

# Every child (trainer, server, parity encoder, model build, embedder) gets
# these: no telemetry, no version nags, output unbuffered so logs show
# progress as it happens.
CHILD_ENV = {
    "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true", "DISABLE_VERSION_CHECK": "1",
    "VLLM_NO_USAGE_STATS": "1", "PYTHONUNBUFFERED": "1",
}
# lorasweep never sets the Hub offline: models are resolved to local folders
# before any child starts, and the user's HF_HUB_OFFLINE is what decides
# whether a Hub id may be downloaded (models.hub_snapshot).
HUB_OFFLINE_ENV = "HF_HUB_OFFLINE"
# Servers listen on 127.0.0.1: never route a request to them through a proxy.
LOCAL_NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def cache_home() -> Path:
    """Where the environments and the embedded models live (LORASWEEP_HOME)."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def env_python(name: str) -> Path:
    """Python of a managed environment: harness, train or serve."""
    return cache_home() / "envs" / name / "bin" / "python"


def llamafactory_cli(cfg) -> list[str]:
    """train.llamafactory_cli, or the managed training environment's."""
    if cfg.train.llamafactory_cli:
        return [cfg.train.llamafactory_cli]
    return [str(env_python("train").parent / "llamafactory-cli")]


def train_python(cfg) -> Path:
    """The Python of the environment llamafactory-cli lives in (parity encoding,
    template names, the embedding baseline run there). May not exist."""
    return Path(llamafactory_cli(cfg)[0]).parent / "python"


def vllm_python(cfg) -> str:
    """eval.vllm_python, or the managed serving environment's."""
    return cfg.eval.vllm_python or str(env_python("serve"))


def child_env(gpus: list[str] | None = None, **extra: str) -> dict[str, str]:
    """This process's environment plus CHILD_ENV (and CUDA_VISIBLE_DEVICES for `gpus`)."""
    env = {**os.environ, **CHILD_ENV, **extra}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def hub_offline() -> bool:
    """Whether the user set HF_HUB_OFFLINE (the Hub's own spelling of true)."""
    return os.environ.get(HUB_OFFLINE_ENV, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline_in_this_process() -> None:
    """evaluate loads the shipped metric modules from their folders: no Hub lookups for them."""
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")


def has_nvidia_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "GPU" in out.stdout


def gpu_memory_bytes(gpu: str) -> int | None:
    """Total memory of one GPU (its nvidia-smi index), or None when it cannot be read."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", gpu],
                             capture_output=True, text=True, timeout=20)
        return int(float(out.stdout.strip().splitlines()[0])) * 1024 ** 2 if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


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


def bf16_capable(gpus: list[str]) -> bool:
    """Whether every one of these GPUs computes in bfloat16 (compute capability
    8.0 and up: A100, H100, L4, RTX 30xx on; not V100 or T4), by nvidia-smi."""
    if not gpus or not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    caps = {}
    for line in out.stdout.splitlines():
        index, _, cap = line.partition(",")
        try:
            caps[index.strip()] = float(cap)
        except ValueError:
            continue
    return all(caps.get(g, 0.0) >= 8.0 for g in gpus)


def serve_backend() -> str:
    """Which serving environment to build: LORASWEEP_SERVE_BACKEND (cpu|gpu|auto), auto = gpu when one is seen."""
    backend = os.environ.get(SERVE_BACKEND_ENV, "auto")
    if backend not in ("auto", "cpu", "gpu"):
        raise SystemExit(f"{SERVE_BACKEND_ENV}={backend!r}: expected auto, cpu or gpu")
    if backend == "auto":
        backend = "gpu" if has_nvidia_gpu() else "cpu"
    return backend


# pip's index settings (pip.conf, PIP_* variables) that uv, which reads neither, is given as
# flags: the same indexes, local wheel folders and constraints for either installer.
PIP_TO_UV = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
             "constraint": "--constraint"}


def uv_index_args(pip_config: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """uv flags for what pip is configured with here (`pip config list` lines such as
    global.find-links='/opt/wheels'; PIP_FIND_LINKS etc. win over the files, as for pip).
    With several indexes, uv is told to pick the best version across them as pip does
    (--index-strategy unsafe-best-match: e.g. torch 2.13.0+cpu from a local folder
    over 2.13.0 from PyPI)."""
    env = os.environ if env is None else env
    if pip_config is None:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
        pip_config = proc.stdout if proc.returncode == 0 else ""
    values: dict[str, str] = {}
    for line in pip_config.splitlines():
        name, _, value = line.partition("=")
        key = name.rsplit(".", 1)[-1]
        if key in PIP_TO_UV or key == "no-index":
            values[key] = value.strip().strip("'\"")
    for key in [*PIP_TO_UV, "no-index"]:
        var = "PIP_" + key.upper().replace("-", "_")
        if env.get(var):
            values[key] = env[var]
    args: list[str] = []
    for key, flag in PIP_TO_UV.items():
        for value in values.get(key, "").split():
            args += [flag, value]
    if values.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if any(a in ("--extra-index-url", "--find-links") for a in args):
        args += ["--index-strategy", "unsafe-best-match"]
    return args


def main(argv: list[str]) -> int:
    answers = {"home": lambda: str(cache_home()), "serve-backend": serve_backend,
               "uv-index-args": lambda: "\n".join(uv_index_args())}
    if len(argv) != 1 or argv[0] not in answers:
        print(f"usage: python -m lorasweep.tools {{{'|'.join(answers)}}}", file=sys.stderr)
        return 2
    print(answers[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
