"""A checkpoint that ships its own model code (config.json's auto_map, as
GLM-4 and Baichuan do), written for the test: the embedded Gemma's weights
under a model type transformers does not know, whose config and model classes
live in the checkpoint folder. `check` refuses it until
models[].trust_remote_code is set; then LLaMA-Factory trains it, and the vLLM
server (which reads the config through transformers) serves and scores it."""
import json
import os
import pickle
import subprocess
import sys
import time

import pytest

from conftest import ROOT, write_experiment

pytestmark = pytest.mark.e2e

CONFIGURATION = '''from transformers import Gemma3TextConfig


class RemoteGemmaConfig(Gemma3TextConfig):
    model_type = "lorasweep_remote_gemma"
'''
MODELING = '''from transformers import Gemma3ForCausalLM

from .configuration_remote import RemoteGemmaConfig


class RemoteGemmaForCausalLM(Gemma3ForCausalLM):
    config_class = RemoteGemmaConfig
'''


def _remote_code_checkpoint(folder):
    home = subprocess.run([sys.executable, "-m", "lorasweep.tools", "home"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout.strip()
    gemma = os.path.join(home, "models", "gemma-3-270m")
    folder.mkdir()
    for name in os.listdir(gemma):
        if name != "config.json":
            os.symlink(os.path.join(gemma, name), folder / name)
    config = json.loads(open(os.path.join(gemma, "config.json")).read())
    config.update(model_type="lorasweep_remote_gemma",
                  auto_map={"AutoConfig": "configuration_remote.RemoteGemmaConfig",
                            "AutoModelForCausalLM": "modeling_remote.RemoteGemmaForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "configuration_remote.py").write_text(CONFIGURATION)
    (folder / "modeling_remote.py").write_text(MODELING)


def _lorasweep(root, *args, timeout=1500):
    env = {**os.environ, "LORASWEEP_ROOT": str(root)}
    t0 = time.time()
    p = subprocess.run(["bash", *args], env=env, capture_output=True, text=True, timeout=timeout)
    print(f"--- {args} ({time.time() - t0:.0f} s, exit {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p


def test_a_remote_code_checkpoint_is_refused_until_trusted_then_trains_and_serves(tmp_path):
    (tmp_path / "experiments").mkdir()
    _remote_code_checkpoint(tmp_path / "remote-gemma")
    model = {"name": "remote", "path": str(tmp_path / "remote-gemma"), "template": "gemma"}
    over = dict(data={"source": "generate:people_relations", "generate_size": 100, "test_size": 20},
                train_sizes=[8], seeds=[1], train={"args": {"num_train_epochs": 1, "cutoff_len": 128}},
                eval={"decoding": "free", "concurrency": 8, "max_model_len": 512, "baselines": []})
    exp = write_experiment(tmp_path / "experiments" / "rc.yaml", models=[model], **over)
    refused = _lorasweep(tmp_path, str(ROOT / "shell" / "train.sh"), str(exp))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "models[remote]: its config.json maps ['AutoConfig', 'AutoModelForCausalLM'] to code" in refused.stderr
    write_experiment(exp, models=[{**model, "trust_remote_code": True}], **over)
    for script in ("train.sh", "eval.sh"):
        p = _lorasweep(tmp_path, str(ROOT / "shell" / script), str(exp))
        assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "experiments" / "rc" / "runs" / "remote" / "n8" / "seed1"
    assert "trust_remote_code: true" in (run / "train.yaml").read_text()
    server_log = (tmp_path / "experiments" / "rc" / "runs" / "server_remote.log").read_text()
    assert "trust_remote_code=True" in server_log
    with open(tmp_path / "experiments" / "rc" / "results.pkl", "rb") as f:
        df = pickle.load(f)
    assert sorted(df["size"]) == [0, 8] and (df["n"] == 20).all()
