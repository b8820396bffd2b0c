"""lorasweep's CPU LoRA kernels (src/lorasweep/envscripts/cpu_lora.py) against vLLM's own,
in the serving environment: bit-identical outputs on every batch shape eval
produces (one adapter, sorted runs, mixed decode batches, base-model rows with
index -1, padded outputs), and installed where vLLM's CPU wrapper looks."""
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
checked = differ = 0
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
            for name, make, head, tail in cases:
                a, b = make(), make()
                vllms[name](*head, a, *tail)
                ours[name](*head, b, *tail)
                checked += 1
                differ += not torch.equal(a, b)
assert cpu_lora.install()
from vllm.lora.punica_wrapper import punica_cpu
from vllm.lora.ops import torch_ops
bound = all(getattr(m, n) is f for m in (punica_cpu, torch_ops, ref) for n, f in ours.items())
print(checked, differ, bound)
'''


def test_kernels_match_vllms_bit_for_bit_and_are_installed():
    out = subprocess.run([str(env_python("serve")), "-c", CHECK, str(ENVSCRIPTS)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    checked, differ, bound = out.stdout.split()[-3:]
    assert int(checked) == 6 * 4 * 4 * 4 and int(differ) == 0 and bound == "True"
