"""Faults injected for real: SIGKILL the LLaMA-Factory trainer mid-training,
and SIGKILL the vLLM server mid-scoring. Running again (or the eval's own
server restart) must finish with results identical to an uninterrupted run."""
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, write_experiment

pytestmark = pytest.mark.e2e
LABELS = ["夫妻", "父母", "兄弟姐妹", "师生", "同学", "好友", "上下级", "合作", "祖孙", "不确定"]
PROMPT = "判断句中两人的关系，从以下标签中选一个：{labels}\n句子：{text}\n人物：{entity1}、{entity2}\n关系："


def _experiment(root, name, **over):
    (root / "experiments").mkdir(exist_ok=True)
    cfg = {
        "task": {"type": "relation_classification", "labels": LABELS, "prompt": PROMPT},
        "data": {"source": "generate:people_relations", "generate_size": 300, "test_size": 40},
        "models": [{"name": "gemma-3-270m", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        "train_sizes": [32], "seeds": [1],
        "train": {"args": {"num_train_epochs": 2, "learning_rate": 1.0e-3, "cutoff_len": 128, "logging_steps": 1}},
        "eval": {"concurrency": 4, "max_model_len": 512, "baselines": [], "include_base": False},
    }
    return write_experiment(root / "experiments" / f"{name}.yaml", **{**cfg, **over})


def _start(script, exp, root):
    env = {**os.environ, "LORASWEEP_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(["bash", str(ROOT / "shell" / script), str(exp)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run(script, exp, root, timeout=1500):
    p = _start(script, exp, root)
    out, _ = p.communicate(timeout=timeout)
    print(f"--- {script} exit {p.returncode}\n{out[-3000:]}")
    return p.returncode, out


def _pids(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def _wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _tensor_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trainer_killed_mid_training_then_resumed_gives_the_same_adapter(tmp_path):
    ref_root, kill_root = tmp_path / "ref", tmp_path / "kill"
    ref_root.mkdir(), kill_root.mkdir()
    # The reference is scored the plain way (vLLM's default server settings,
    # one request at a time); the other copy with lorasweep's throughput
    # settings (small KV blocks so prefix caching hits, 4 requests at once:
    # few enough that the kill lands mid-scoring) and a server kill: the
    # answers must be the same.
    ref = _experiment(ref_root, "faults", eval={"concurrency": 1, "tune_server": False, "max_model_len": 512,
                                                "baselines": [], "include_base": False})
    rc, _ = _run("train.sh", ref, ref_root)
    assert rc == 0
    exp = _experiment(kill_root, "faults")
    run = kill_root / "experiments" / "faults" / "runs" / "gemma-3-270m" / "n32" / "seed1"
    p = _start("train.sh", exp, kill_root)
    # Wait for the first optimisation steps to be logged, then SIGKILL the trainer.
    _wait_for(lambda: (run / "train.log").is_file() and "'loss'" in (run / "train.log").read_text(errors="ignore"),
              600, "training to start")
    trainers = _pids(f"train {run}/train.yaml")
    assert trainers
    for pid in trainers:
        os.kill(pid, signal.SIGKILL)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 1 and "1 failed" in out          # recorded, the sweep ended cleanly
    assert (run / "train_failed.json").is_file() and not (run / "train_result.json").exists()
    assert not _pids(f"train {run}/train.yaml")
    rc, out = _run("train.sh", exp, kill_root)                # run again: it is retrained
    assert rc == 0 and "1 trained" in out
    a = json.loads((run / "train_result.json").read_text())
    b = json.loads((ref_root / "experiments/faults/runs/gemma-3-270m/n32/seed1/train_result.json").read_text())
    assert a["train_loss"] == b["train_loss"]
    assert _tensor_digest(run / "adapter/adapter_model.safetensors") == \
        _tensor_digest(ref_root / "experiments/faults/runs/gemma-3-270m/n32/seed1/adapter/adapter_model.safetensors")

    # Scoring: an uninterrupted eval on the reference, and on the other copy a
    # vLLM server killed mid-scoring; eval restarts it and goes on.
    rc, _ = _run("eval.sh", ref, ref_root)
    assert rc == 0
    p = _start("eval.sh", exp, kill_root)
    partial = run / "answers.free.partial.jsonl"
    _wait_for(lambda: partial.is_file() and len(partial.read_text().splitlines()) >= 8, 900, "first answers")
    servers = _pids(f"vllm.entrypoints.openai.api_server.*{kill_root}")   # this test's server, no other
    assert servers
    for pid in servers:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    out, _ = p.communicate(timeout=1500)
    print(out[-3000:])
    assert p.returncode == 0, out[-2000:]
    assert "restarting the server" in out and "resuming" in out
    assert "the server exited with code -9; its log ends:" in out     # why, in the same line
    got = [json.loads(x) for x in (run / "predictions.free.jsonl").read_text().splitlines()]
    want = [json.loads(x) for x in (ref_root / "experiments/faults/runs/gemma-3-270m/n32/seed1/predictions.free.jsonl")
            .read_text().splitlines()]
    assert [g["i"] for g in got] == list(range(40))            # nothing duplicated or missing
    assert [g["raw"] for g in got] == [w["raw"] for w in want]  # identical to the uninterrupted run
    assert not partial.exists()
    assert not _pids(f"vllm.entrypoints.openai.api_server.*{kill_root}")
