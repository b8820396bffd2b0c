"""lorasweep's CPU LoRA kernels (src/lorasweep/envscripts/cpu_lora.py) against vLLM's own,
in the serving environment: bit-identical outputs on every batch shape eval
produces (one adapter, sorted runs, mixed decode batches, padded outputs), and
installed where vLLM's CPU wrapper looks. Base-model rows (index -1) get no
LoRA term: vLLM's CPU ops read index -1 as their last adapter slot, so the
reference for those rows is vLLM's op given an explicit all-zero adapter."""
import subprocess

import pytest

from lorasweep.envscripts import HERE as ENVSCRIPTS
from lorasweep.infra.tools import env_python

pytestmark = pytest.mark.e2e

CHECK = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
import cpu_lora
from vllm.lora.ops.torch_ops import lora_ops as ref
ours = dict(cpu_lora.KERNELS)
vllms = {name: getattr(ref, name) for name in ours}
torch.manual_seed(0)
checked = differ = base_rows = 0
for T in (1, 3, 16, 40, 150, 600):
    for pattern in ("one", "sorted", "mixed", "base rows"):
        for (i, o, L) in [(640, 8, 8), (8, 2048, 8), (2048, 8, 4), (8, 640, 8)]:
            x = torch.randn(T, i)
            w = torch.randn(L, 1, o, i)
            idx = {"one": torch.full((T,), 3), "sorted": torch.randint(0, L, (T,)).sort().values,
                   "mixed": torch.randint(0, L, (T,)),
                   "base rows": torch.randint(-1, L, (T,)).sort().values}[pattern]
            cases = [("bgmv_shrink", lambda: torch.zeros(T, o), (x, w), (idx, 0.5)),
                     ("bgmv_expand", lambda: torch.ones(T, o + 3), (x, w), (idx, True)),
                     ("bgmv_expand", lambda: torch.ones(T, o), (x, w), (idx, False)),
                     ("bgmv_expand_slice", lambda: torch.ones(T, 3 * o), (x, w), (idx, o, o, True))]
            # the reference: vLLM's op, base rows pointed at an all-zero adapter appended as slot L
            w_ref = torch.cat([w, torch.zeros(1, 1, o, i)])
            idx_ref = torch.where(idx < 0, torch.full_like(idx, L), idx)
            for name, make, head, tail in cases:
                a, b = make(), make()
                vllms[name](x, w_ref, a, idx_ref, *tail[1:])
                ours[name](*head, b, *tail)
                checked += 1
                differ += not torch.equal(a, b)
            if pattern == "base rows" and (idx < 0).any():
                # what vLLM's own op does with them: the last adapter's term (the bug avoided)
                a, b = torch.zeros(T, o), torch.zeros(T, o)
                vllms["bgmv_shrink"](x, w, a, idx, 1.0)
                ours["bgmv_shrink"](x, w, b, idx, 1.0)
                base = idx < 0
                assert torch.equal(b[base], torch.zeros_like(b[base])) and not torch.equal(a[base], b[base])
                base_rows += 1
assert cpu_lora.install()
from vllm.lora.punica_wrapper import punica_cpu
from vllm.lora.ops import torch_ops
bound = all(getattr(m, n) is f for m in (punica_cpu, torch_ops, ref) for n, f in ours.items())
print(checked, differ, bound, base_rows)
'''


def test_kernels_match_vllms_bit_for_bit_and_are_installed():
    out = subprocess.run([str(env_python("serve")), "-c", CHECK, str(ENVSCRIPTS)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    checked, differ, bound, base_rows = out.stdout.split()[-4:]
    assert int(checked) == 6 * 4 * 4 * 4 and int(differ) == 0 and bound == "True"
    assert int(base_rows) >= 4 * 4   # every size but T=1 (and maybe 3) drew base rows


FORK = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
import cpu_lora
from vllm.platforms.cpu import CpuPlatform
before = CpuPlatform.check_and_update_config.__func__
os.environ[cpu_lora.START_METHOD_ENV] = "spawn"
left = cpu_lora.fork_engine()                  # a start method the user chose: left alone
unchanged = CpuPlatform.check_and_update_config.__func__ is before
os.environ.pop(cpu_lora.START_METHOD_ENV)
patched = cpu_lora.fork_engine()
print(left, unchanged, patched, CpuPlatform.check_and_update_config.__func__ is not before)
'''


def test_the_engine_is_forked_unless_the_user_chose_a_start_method():
    # (that the served engine really is forked, and has the kernels: tests/e2e/test_pipeline.py)
    out = subprocess.run([str(env_python("serve")), "-c", FORK, str(ENVSCRIPTS)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-4:] == ["False", "True", "True", "True"]
