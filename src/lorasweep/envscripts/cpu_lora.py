"""vLLM's OpenAI-compatible server with faster LoRA kernels and a faster start on a CPU.

    <serving-env python> cpu_lora.py vllm.entrypoints.openai.api_server --model ...

This file runs in the serving environment (torch and vLLM; lorasweep is not
installed there), so it imports nothing from lorasweep.

It also makes the server start faster: on a CPU, vLLM starts its engine and
worker processes with multiprocessing's `spawn`, a fresh Python that imports
vLLM again. Here the engine is forked from the server's process, which has
imported it already (see fork_engine); the worker is still spawned. A forked
process inherits the kernels; a spawned one runs this file's top level again
(as `__mp_main__`) and installs them itself: either way every process that
computes has them.

Why: vLLM's CPU LoRA path (`vllm.lora.ops.torch_ops`) copies each token's
adapter matrices into a [tokens, out, in] tensor and multiplies token by token.
A prefill step of ~150 tokens copies ~1 GB that way for Gemma-3-270M with LoRA
on every linear layer, more time than the base model's own linear layers.
Here the tokens of one adapter are consecutive in a batch (vLLM sorts a
prefill's tokens by request); each such run is multiplied against a
broadcast view of its adapter's matrices, no copy. Every token still gets its
own matrix-vector product from the same batched kernel, so the outputs are
bit for bit the same (tests/e2e/test_cpu_lora.py); batches split into many
short runs (decode steps mixing adapters) keep vLLM's own path. Tokens of the
base model (no adapter) get no LoRA term, as on a GPU (see lora_matvec).
"""
from __future__ import annotations

import sys

# A batch whose runs average fewer tokens than this keeps vLLM's gather path
# (measured: with 8 adapters in 16 tokens the per-run loop is slower).
MIN_TOKENS_PER_RUN = 8


def lora_matvec(x, w, indices, dtype):
    """out[t] = w[indices[t]] @ x[t], in `dtype`: what vLLM computes with
    einsum("bi,boi->bo", x, w[indices]), without copying w per token; and 0
    for a token of the base model (index -1: no adapter). vLLM's CPU ops index
    w with -1 too, which is its last adapter slot: a base-model request batched
    with adapters' requests was answered with that adapter (the demo's
    zero-shot Gemma scored 0.418 macro-F1 instead of 0.000 once its requests
    shared batches with the adapters'); vLLM's GPU kernels skip such tokens."""
    import torch

    if w.dim() == 4:   # [adapters, 1, out, in]
        w = w.squeeze(1)
    x = x.to(dtype=dtype)
    n_tokens = x.shape[0]
    runs = torch.unique_consecutive(indices, return_counts=True) if indices.dim() == 1 else None
    if runs is None or indices.shape[0] != n_tokens \
            or (len(runs[0]) > 1 and n_tokens < MIN_TOKENS_PER_RUN * len(runs[0])):
        # a shape eval never produces, or many short runs: vLLM's own way, base rows zeroed
        out = torch.einsum("bi, boi -> bo", x, w[indices.clamp(min=0)].to(dtype=dtype))
        return out.masked_fill((indices < 0).reshape(-1, 1), 0) if indices.dim() == 1 else out
    values, counts = runs
    out = x.new_empty((n_tokens, w.shape[1]))
    start = 0
    for adapter, n in zip(values.tolist(), counts.tolist(), strict=False):
        if adapter < 0:   # the base model's tokens: no adapter
            out[start:start + n] = 0
        else:
            wt = w[adapter].to(dtype=dtype).t().unsqueeze(0).expand(n, -1, -1)   # [n, in, out], a view
            out[start:start + n] = torch.bmm(x[start:start + n].unsqueeze(1), wt).squeeze(1)
        start += n
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    # (the weights are an adapter's A matrices; the parameter keeps vLLM's name)
    y = lora_matvec(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, :y.shape[1]] = scaling * y


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    y = lora_matvec(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    rows = 1 if y.shape[0] == 1 and output_tensor.shape[0] != 1 else output_tensor.shape[0]
    width = min(y.shape[1], output_tensor.shape[1])   # either side may be padded
    if add_inputs:
        output_tensor[:, :width] += y[:rows, :width]
    else:
        output_tensor[:, :width] = y[:rows, :width]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size,
                      add_inputs=True):
    y = lora_matvec(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset:slice_offset + slice_size] += y
    else:
        output_tensor[:, slice_offset:slice_offset + slice_size] = y


KERNELS = {"bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand, "bgmv_expand_slice": bgmv_expand_slice}


def install() -> bool:
    """Put the kernels where vLLM's CPU LoRA wrapper looks them up; False when
    this vLLM has no such module (the server then runs unchanged)."""
    try:
        import vllm.lora.ops.torch_ops as package
        from vllm.lora.ops.torch_ops import lora_ops
    except ImportError:
        return False
    import inspect

    # Another vLLM (eval.vllm_python) may have other ops: replace only the ones
    # this file was written against, same names and same parameters.
    changed = [name for name, fn in KERNELS.items() if not hasattr(lora_ops, name)
               or list(inspect.signature(getattr(lora_ops, name)).parameters)
               != list(inspect.signature(fn).parameters)]
    if changed:
        print(f"lorasweep: vLLM's CPU LoRA ops {changed} are not the ones cpu_lora.py replaces; "
              "left unchanged", file=sys.stderr)
        return False
    targets = [lora_ops, package]   # lora_ops' sgmv_* call its bgmv_* by name
    wrapper = sys.modules.get("vllm.lora.punica_wrapper.punica_cpu")
    if wrapper is not None:   # already imported: it bound the old names
        targets.append(wrapper)
    for module in targets:
        for name, fn in KERNELS.items():
            if hasattr(module, name):
                setattr(module, name, fn)
    return True


INSTALLED = "lorasweep: CPU LoRA kernels grouped by adapter"


def install_and_say() -> bool:
    """install(), and one line on stderr per process that got the kernels."""
    import os

    if install():
        print(f"{INSTALLED} (pid {os.getpid()})", file=sys.stderr, flush=True)
        return True
    return False


# multiprocessing's start method for vLLM's engine and worker processes
START_METHOD_ENV = "VLLM_WORKER_MULTIPROC_METHOD"
FORKED = "lorasweep: vLLM's engine process forked, not spawned"


def fork_engine(kernels: bool = True) -> bool:
    """Have vLLM fork its engine process from this one instead of spawning it.
    vLLM's CPU platform sets VLLM_WORKER_MULTIPROC_METHOD=spawn when it checks
    the server's configuration; this sets it back to fork right after, in this
    process, for a server of one worker (lorasweep's CPU servers: no tensor
    parallelism). The engine, once forked, asks for spawn again for the worker
    it starts: vLLM binds the worker's OpenMP threads to cores through
    variables (GOMP_CPU_AFFINITY, OMP_NUM_THREADS) that OpenMP reads only when
    a new process loads it. A forked worker kept the parent's unbound threads
    and scored 6.2 requests/s against 9.0 (docs/benchmarks.md).
    Left alone: a start method the user chose, and a vLLM (eval.vllm_python)
    whose CPU platform has no such hook as a class method. vLLM's own reasons
    to spawn anyway (CUDA initialised, a Ray actor) are checked when it starts
    the process, and still win. `kernels`: whether install() put the kernels in
    (what the forked engine's line says)."""
    import os

    if START_METHOD_ENV in os.environ:
        return False
    try:
        from vllm.platforms.cpu import CpuPlatform
    except ImportError:
        return False
    original = getattr(getattr(CpuPlatform, "check_and_update_config", None), "__func__", None)
    if original is None:
        return False
    server = os.getpid()

    def check_then_fork(cls, vllm_config):
        original(cls, vllm_config)
        workers = getattr(getattr(vllm_config, "parallel_config", None), "world_size", None)
        if os.getpid() == server and workers == 1:
            os.environ[START_METHOD_ENV] = "fork"

    def in_forked_child():
        os.environ[START_METHOD_ENV] = "spawn"   # the worker: a new process, its threads bound
        print(f"{FORKED}: pid {os.getpid()}{' has the kernels' if kernels else ''}", file=sys.stderr, flush=True)

    CpuPlatform.check_and_update_config = classmethod(check_then_fork)
    os.register_at_fork(after_in_child=in_forked_child)
    return True


if __name__ == "__mp_main__":   # an engine or worker process that vLLM spawned
    install_and_say()
elif __name__ == "__main__":
    import runpy

    if len(sys.argv) < 2:
        sys.exit("usage: cpu_lora.py <vLLM server module> [server arguments]")
    server_module = sys.argv.pop(1)
    fork_engine(kernels=install_and_say())
    # alter_sys=False keeps this file as __main__, so spawned processes run it too.
    runpy.run_module(server_module, run_name="__main__", alter_sys=False)
