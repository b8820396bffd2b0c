"""Bad settings that pass a schema but would fail every run of the night in its
first seconds, refused by `lorasweep check` with the real training environment:
LLaMA-Factory's own argument parser judges every run's train.yaml, and the
embedded Gemma's own tokenizer shows that Qwen's template would add tokens to it.
Nothing trains; the user sees one line per problem and no traceback."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, write_experiment

pytestmark = pytest.mark.e2e


def _check(root, exp):
    env = {**os.environ, "LORASWEEP_ROOT": str(root), "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "lorasweep", "check", str(exp)], env=env, capture_output=True,
                          text=True, timeout=900)


def test_check_refuses_what_llamafactory_and_the_tokenizer_would_refuse_at_night(tmp_path):
    (tmp_path / "experiments").mkdir()
    gemma = {"path": "embedded:gemma-3-270m", "template": "gemma"}
    exp = tmp_path / "experiments" / "bad.yaml"
    write_experiment(
        exp, data={"source": "generate:people_relations", "generate_size": 120, "test_size": 40},
        train_sizes=[8, 16], seeds=[1],
        models=[{"name": "typos", **gemma, "train_args": {"lora_rnak": 8, "num_train_epochs": "3",
                                                          "learning_rate": "2e-4"}},
                {"name": "freeze-4bit", **gemma, "train_args": {"finetuning_type": "freeze", "quantization_bit": 4}},
                {"name": "qwen-template", **gemma, "template": "qwen", "train_args": {"optim": "paged_adamw_32bit"}}])
    p = _check(tmp_path, exp)
    out = p.stdout + p.stderr
    print(out[-6000:])
    assert p.returncode != 0 and "Traceback" not in out
    assert ("models[typos].train_args.lora_rnak: LLaMA-Factory has no training key 'lora_rnak'; did you mean "
            "'lora_rank'? (in 2 of 6 run(s), e.g. typos__n8__seed1)") in out
    assert "models[typos].train_args.num_train_epochs: '3' is a str; LLaMA-Factory expects float" in out
    assert "models[typos].train_args.learning_rate: '2e-4' is a str" in out and "write 2.0e-4" in out
    # LLaMA-Factory's own argument check, for the runs whose keys and types are right
    assert "LLaMA-Factory refuses the run's train.yaml:" in out and "e.g. freeze-4bit__n8__seed1" in out
    assert "models[qwen-template].template 'qwen': the template adds token(s)" in out
    # the seeds' paged optimizer, on a machine without CUDA
    assert ("models[qwen-template].train_args.optim: paged_adamw_32bit pages the optimizer state through CUDA and "
            "this machine has no GPU; use adamw_torch here") in out
    assert not (tmp_path / "experiments" / "bad" / "runs").exists() or not any(
        (tmp_path / "experiments" / "bad" / "runs").rglob("train_result.json"))
