"""The fast loss changes nothing but time: the same tiny run trained with
llamafactory-cli as it is (train.fast_loss: false) and through
envscripts/fast_loss.py (the default) logs the same loss at every step and
ends with adapters that answer the test prompts the same way. Real
LLaMA-Factory on the embedded Gemma 3 270M (logit soft-capping included when
its config sets it)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import DEMO_LABELS, ROOT, write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import load_test
from lorasweep.infra.tools import env_python
from lorasweep.models.embedded import embedded_model_dir
from lorasweep.plan import train_runs
from lorasweep.tasks.prompts import render_prompt

pytestmark = pytest.mark.e2e

STEPS = 4
ANSWERS = r'''
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from parity_encode import encode
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts, adapters = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
tok = AutoTokenizer.from_pretrained(model_dir)
out = {}
for name, path in adapters.items():
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), path).eval()
    answers = []
    for p in prompts:
        ids = encode(model_dir, "gemma", p, "x")["prompt_ids"]
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)
        answers.append(tok.decode(gen[0][len(ids):], skip_special_tokens=True))
    out[name] = answers
print(json.dumps(out, ensure_ascii=False))
'''


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in run.trainer_log.read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_fast_loss_gives_the_same_losses_and_answers(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "experiments").mkdir(parents=True)
    monkeypatch.setenv("LORASWEEP_ROOT", str(root))   # the run folders' paths are read from it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs = {}
    for way, fast in (("bare", False), ("fast", True)):
        exp = write_experiment(
            root / "experiments" / f"{way}.yaml",
            task={"type": "relation_classification", "labels": list(DEMO_LABELS),
                  "prompt": "从以下标签中选一个：{labels}\n句子：{text}\n人物：{entity1}、{entity2}\n关系："},
            data={"source": "generate:people_relations", "generate_size": 200, "test_size": 12},
            models=[{"name": "gemma-3-270m", "path": "embedded:gemma-3-270m", "template": "gemma"}],
            train_sizes=[16], seeds=[1],
            train={"fast_loss": fast, "args": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                                               "logging_steps": 1, "learning_rate": 1.0e-3}},
            eval={"baselines": []})
        p = subprocess.run([sys.executable, "-m", "lorasweep", "train", str(exp)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        cfg = load_config(exp)
        run = train_runs(cfg)[0]
        test = load_test(cfg)
        runs[way] = run
        log = run.train_log.read_text(errors="replace")
        result = json.loads(run.trained_marker.read_text())
        if fast:
            assert "lorasweep: fast loss on (Gemma3ForCausalLM)" in log
            assert result["fast_loss"].startswith("on (Gemma3ForCausalLM)")
        else:
            assert "lorasweep: fast loss" not in log and result["fast_loss"] is None
    bare, fast = _losses(runs["bare"]), _losses(runs["fast"])
    assert len(bare) == len(fast) == STEPS
    rel = [abs(a - b) / abs(a) for a, b in zip(bare, fast, strict=True)]
    print("per-step losses", bare, fast, "max relative difference", max(rel))
    assert max(rel) <= 1e-4
    prompts = [r["instruction"] for r in json.loads(runs["fast"].train_file.read_text())][:2]
    prompts += [render_prompt(cfg.task, ex) for ex in test]   # 2 seen in training + 12 test prompts
    model_dir = str(embedded_model_dir("gemma-3-270m"))
    p = subprocess.run([str(env_python("train")), "-c", ANSWERS, str(ROOT / "src" / "lorasweep" / "envscripts"),
                        model_dir, json.dumps(prompts, ensure_ascii=False),
                        json.dumps({w: str(r.adapter_dir) for w, r in runs.items()})],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    answers = json.loads(p.stdout.strip().splitlines()[-1])
    print(answers)
    assert len(answers["fast"]) == len(prompts) == 14
    assert answers["fast"] == answers["bare"]
