"""Two base models of different families and templates in one experiment, with
the real parts: the embedded Qwen2.5-Coder-0.5B-Instruct (template qwen, its
own train_args) and Gemma 3 270M given as a Hugging Face Hub id that resolves
to a snapshot in a Hub cache (the layout `huggingface_hub` writes: refs/main,
snapshots/<commit>/ linking into blobs/), with HF_HUB_OFFLINE=1 and no network.
train.sh trains both, eval.sh serves each with vLLM, proves parity and scores.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import DEMO_LABELS, ROOT, write_experiment
from lorasweep.models.embedded import embedded_model_dir

pytestmark = pytest.mark.e2e

HUB_ID = "lorasweep-e2e/gemma-3-270m"
COMMIT = "5c3f0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e"
TEST_SIZE = 16


def _sh(script, exp, env, timeout, *args):
    t0 = time.time()
    p = subprocess.run(["bash", str(ROOT / "shell" / script), str(exp), *args], env=env, capture_output=True,
                       text=True, timeout=timeout)
    print(f"--- {script} ({time.time() - t0:.0f} s, exit {p.returncode})\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}")
    return p


def hub_cache_of(model_dir, cache, repo_id, commit):
    """Lay a checkpoint folder out as the Hub cache does: content-named blobs,
    a snapshot folder of relative symlinks to them, refs/main naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in sorted(model_dir.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(f.name.encode()).hexdigest()
        blob.symlink_to(f)                           # stands in for the downloaded bytes
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    return snap


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    (root / "experiments").mkdir()
    snap = hub_cache_of(embedded_model_dir("gemma-3-270m"), root / "hub", HUB_ID, COMMIT)
    exp = write_experiment(
        root / "experiments" / "two.yaml",
        data={"source": "generate:people_relations", "generate_size": 200, "test_size": TEST_SIZE},
        models=[{"name": "qwen", "path": "embedded:qwen2.5-coder-0.5b-instruct", "template": "qwen",
                 "train_args": {"learning_rate": 1.0e-3}},
                {"name": "gemma-hub", "path": HUB_ID, "template": "gemma", "train_args": {"report_to": "tensorboard"}}],
        train_sizes=[16], seeds=[1],
        train={"args": {"num_train_epochs": 1, "learning_rate": 5.0e-4, "cutoff_len": 128,
                        "per_device_train_batch_size": 8}},
        eval={"max_model_len": 512},
    )
    env = {**os.environ, "LORASWEEP_ROOT": str(root), "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1"}
    return root, exp, env, snap


def _check(exp, env):
    p = subprocess.run([sys.executable, "-m", "lorasweep", "check", str(exp)], capture_output=True, text=True,
                       env={**env, "PYTHONPATH": str(ROOT / "src")}, timeout=600)
    print(p.stdout, p.stderr[-3000:])
    return p


def test_check_says_where_each_model_is(sweep):
    root, exp, env, snap = sweep
    p = _check(exp, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"model gemma-hub ({HUB_ID}): available (Hub cache): {snap}" in p.stdout
    assert "model qwen (embedded:qwen2.5-coder-0.5b-instruct): available (embedded)" in p.stdout
    # Not in the cache and offline: check names the model and why, before any training.
    missing = write_experiment(root / "experiments" / "missing.yaml",
                               models=[{"name": "absent", "path": "lorasweep-e2e/absent", "template": "gemma"}])
    p = _check(missing, env)
    assert p.returncode == 1
    assert "models[absent].path: 'lorasweep-e2e/absent' is not a folder here" in p.stdout
    assert "HF_HUB_OFFLINE is set" in p.stdout


def test_train_sh_trains_both_families_with_their_own_args(sweep):
    root, exp, env, snap = sweep
    p = _sh("train.sh", exp, env, 1500)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 trained, 0 already finished, 0 failed" in p.stdout
    runs = root / "experiments" / "two" / "runs"
    import yaml
    qwen = yaml.safe_load((runs / "qwen" / "n16" / "seed1" / "train.yaml").read_text())
    gemma = yaml.safe_load((runs / "gemma-hub" / "n16" / "seed1" / "train.yaml").read_text())
    assert qwen["template"] == "qwen" and qwen["learning_rate"] == 1.0e-3
    assert qwen["model_name_or_path"] == str(embedded_model_dir("qwen2.5-coder-0.5b-instruct"))
    assert gemma["template"] == "gemma" and gemma["learning_rate"] == 5.0e-4
    assert gemma["model_name_or_path"] == str(snap)          # the Hub id's local snapshot
    # report_to: tensorboard works out of the box: event files next to the adapter
    assert list((runs / "gemma-hub" / "n16" / "seed1" / "adapter").rglob("events.out.tfevents.*"))
    for name in ("qwen", "gemma-hub"):
        res = json.loads((runs / name / "n16" / "seed1" / "train_result.json").read_text())
        assert res["train_samples_per_s"] > 0 and res["fast_loss"].startswith("on (")
        assert (runs / name / "n16" / "seed1" / "adapter" / "adapter_model.safetensors").is_file()


def test_eval_sh_serves_each_family_with_parity_and_scores(sweep):
    root, exp, env, snap = sweep
    p = _sh("eval.sh", exp, env, 1800)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = root / "experiments" / "two" / "runs"
    qwen = json.loads((runs / "qwen" / "parity.json").read_text())
    # Qwen's prompt as LLaMA-Factory trained it is what vLLM served, and its
    # answers stop at <|im_end|> (151645), found from the template's encoding.
    assert qwen["ok"] and qwen["prompt_identical"] and qwen["answer_end_token"] == 151645
    assert qwen["stop_token_ids"] == [151645] and qwen["stops_at_answer_end"]
    assert qwen["served_prompt_ids"][:3] == [151644, 8948, 198]     # <|im_start|>system\n
    gemma = json.loads((runs / "gemma-hub" / "parity.json").read_text())
    assert gemma["ok"] and gemma["answer_end_token"] == 106 and gemma["served_prompt_ids"][0] == 2
    for name in ("qwen", "gemma-hub"):
        assert f"parity {name}: the served prompt is the trained one" in p.stderr
        for sub in ("n0/base", "n16/seed1"):
            m = json.loads((runs / name / sub / "metrics.free.json").read_text())["metrics"]
            assert m["n"] == TEST_SIZE and 0 <= m["f1_macro"] <= 1
            raw = [json.loads(x)["raw"] for x in (runs / name / sub / "predictions.free.jsonl").read_text().splitlines()]
            assert len(raw) == TEST_SIZE and not [a for a in raw if "<|im_end|>" in a or "<end_of_turn>" in a]
    # The trained Qwen adapter answers with labels (it learnt the format), ended at the turn end.
    raw = [json.loads(x)["raw"] for x in (runs / "qwen" / "n16" / "seed1" / "predictions.free.jsonl").read_text().splitlines()]
    assert sum(a.strip() in DEMO_LABELS for a in raw) >= TEST_SIZE // 2, raw
    import pandas as pd
    df = pd.read_csv(root / "experiments" / "two" / "results.csv")
    assert sorted(df[df.model.isin(["qwen", "gemma-hub"])].groupby("model")["size"].apply(sorted).tolist()) == \
        [[0, 16], [0, 16]]
