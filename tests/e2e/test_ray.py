"""The Ray executor for real: LLaMA-Factory training and vLLM scoring as Ray
tasks on a local Ray cluster bound to 127.0.0.1 (CPU-only tasks). The Ray
worker running a training job is SIGKILLed mid-training; Ray runs the job
again and the sweep finishes as if nothing happened."""
import json
import os
import signal

import pytest
from test_faults import _experiment, _pids, _run, _start, _wait_for

pytestmark = pytest.mark.e2e


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ray_executor_trains_and_scores_and_survives_a_dead_worker(tmp_path):
    exp = _experiment(tmp_path, "rayx", train_sizes=[16, 32], executor={"kind": "ray", "max_retries": 2})
    runs = tmp_path / "experiments" / "rayx" / "runs" / "gemma-3-270m"
    victim = runs / "n32" / "seed1"
    p = _start("train.sh", exp, tmp_path)
    _wait_for(lambda: (victim / "train.log").is_file() and "'loss'" in (victim / "train.log").read_text(errors="ignore"),
              900, "the n32 run to train inside a Ray worker")
    trainers = _pids(f"train {victim}/train.yaml")
    assert trainers
    trainer = min(trainers)
    worker = _parent(trainer)
    with open(f"/proc/{worker}/cmdline", "rb") as f:
        cmd = f.read()
    assert b"ray::" in cmd or b"default_worker" in cmd, cmd   # the trainer's parent is a Ray worker
    os.kill(worker, signal.SIGKILL)
    _wait_for(lambda: not _alive(trainer), 30, "the trainer to die with its Ray worker")
    out, _ = p.communicate(timeout=1200)
    print(out[-4000:])
    assert p.returncode == 0, out[-3000:]
    assert "as Ray tasks on a local Ray cluster (127.0.0.1)" in out
    assert "attempt 2" in out
    res32 = json.loads((victim / "train_result.json").read_text())
    res16 = json.loads((runs / "n16" / "seed1" / "train_result.json").read_text())
    assert res32["attempts"] == 2 and res16["attempts"] == 1
    assert (victim / "adapter" / "adapter_model.safetensors").is_file()

    rc, out = _run("eval.sh", exp, tmp_path)
    assert rc == 0, out[-3000:]
    assert "as Ray tasks" in out
    for size in (16, 32):
        m = json.loads((runs / f"n{size}" / "seed1" / "metrics.free.json").read_text())
        assert m["metrics"]["n"] == 40
    assert json.loads((runs / "parity.json").read_text())["ok"]
    # The cluster and every process it started are gone.
    _wait_for(lambda: not _pids(f"raylet|gcs_server|vllm.entrypoints|{tmp_path}"), 60,
              "Ray's and vLLM's processes to end")
