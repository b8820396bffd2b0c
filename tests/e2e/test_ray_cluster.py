"""The Ray executor joining an existing cluster of two nodes: a head and a
worker started as separate `ray start` processes on this machine, each
offering one unit of a custom resource (in place of a GPU), so at most one
job runs on each node at a time. A stand-in trainer records which node ran
it; the second job that lands on the worker node blocks, the test kills that
node (its raylet and the job's worker), and Ray runs the job again on the
head. Every run ends trained, in the same run folders."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import stand_in_trainer, write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import prepare_data
from lorasweep.plan import train_runs
from lorasweep.runspec import TRAINED_MARKER
from lorasweep.train.train import run_training

pytestmark = pytest.mark.e2e

SLOT = "lorasweep_slot"
# The trainer: its parent is the Ray worker, whose parent is the node's raylet.
FAKE_CLI = """
import json, os, pathlib, sys, time, yaml
args = yaml.safe_load(open(sys.argv[2]))
worker = os.getppid()
raylet = int(open(f"/proc/{worker}/stat").read().rsplit(")", 1)[1].split()[1])
plan = pathlib.Path(os.environ["NODE_PLAN"])
with open(plan / f"jobs-{raylet}", "a") as f:
    f.write(args["dataset"] + "\\n")
n = len((plan / f"jobs-{raylet}").read_text().split())
target = (plan / "kill-raylet").read_text().strip()
if str(raylet) == target and n == 2 and not (plan / "blocked").exists():
    (plan / "blocked").write_text(json.dumps({"raylet": raylet, "worker": worker, "dataset": args["dataset"]}))
    time.sleep(600)
time.sleep(1.5)
out = pathlib.Path(args["output_dir"])
out.mkdir(parents=True, exist_ok=True)
(out / "adapter_model.safetensors").write_bytes(b"x")
(out / "train_results.json").write_text(json.dumps({"train_runtime": 1.5, "train_samples_per_second": 1.0,
                                                    "train_loss": 0.5, "raylet": raylet}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _our_processes(temp_dir: str) -> dict[int, list[str]]:
    """pid -> argv of every process of the cluster whose files live under temp_dir."""
    found = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = [a.decode(errors="replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            if argv and any(temp_dir in a for a in argv):
                found[int(d.name)] = argv
    return found


def _with_descendants(pids: set[int]) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, grew = set(pids), True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def _raylets(temp_dir: str) -> set[int]:
    return {pid for pid, argv in _our_processes(temp_dir).items() if argv[0].endswith("/raylet")}


@pytest.fixture
def cluster(tmp_path):
    """A head and a worker node, 1 CPU and one SLOT each, their files under a
    temp dir of their own; only their processes are stopped afterwards (other
    Ray clusters on this machine are left alone)."""
    ray_cli = Path(sys.executable).parent / "ray"
    plan = tmp_path / "plan"
    plan.mkdir()
    temp_dir = tempfile.mkdtemp(prefix="lsray", dir="/tmp")   # short: Ray's socket paths must stay < 108 bytes
    # RAY_AUTH_MODE: a cluster on this machine's loopback for a test, without Ray's token authentication
    env = {**os.environ, "NODE_PLAN": str(plan), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", f"--resources={json.dumps({SLOT: 1})}",
              "--disable-usage-stats"]
    try:
        subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp_dir}", *common], env=env, check=True, capture_output=True, timeout=180)
        head = _raylets(temp_dir)
        subprocess.run([str(ray_cli), "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        worker = _raylets(temp_dir) - head
        assert len(head) == 1 and len(worker) == 1, (head, worker)
        (plan / "kill-raylet").write_text(str(next(iter(worker))))
        yield {"address": f"127.0.0.1:{port}", "plan": plan, "head": next(iter(head)),
               "worker": next(iter(worker))}
    finally:
        for pid in _with_descendants(set(_our_processes(temp_dir))):   # agents rename themselves "ray::..."
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_two_nodes_share_the_runs_and_a_dead_nodes_job_runs_again(cluster, sandbox, tmp_path, monkeypatch):
    import threading

    import ray

    cli, model = stand_in_trainer(tmp_path, FAKE_CLI)
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20, 30, 40, 50, 60],
                                       models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                       train={"llamafactory_cli": str(cli)}),
                      set_args=["executor=ray", f"executor.address={cluster['address']}", "executor.max_retries=2",
                                f"executor.resources={{{SLOT}: 1}}"])
    prepare_data(cfg)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    killed = {}

    def kill_when_blocked():   # the worker node dies while its second job runs
        deadline = time.time() + 240
        while time.time() < deadline and not (cluster["plan"] / "blocked").exists():
            time.sleep(0.2)
        info = json.loads((cluster["plan"] / "blocked").read_text())
        killed.update(info)
        for pid in (info["raylet"], info["worker"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    killer = threading.Thread(target=kill_when_blocked, daemon=True)
    killer.start()
    try:
        summary = run_training(cfg)
    finally:
        ray.shutdown()
    killer.join(timeout=5)
    assert killed and killed["raylet"] == cluster["worker"], killed
    runs = train_runs(cfg)
    assert sorted(summary.done) == sorted(r.run_id for r in runs) and not summary.failed, summary.text()
    ran_on = {}
    for r in runs:
        record = json.loads((r.folder() / TRAINED_MARKER).read_text())
        lf = json.loads((r.adapter_dir / "train_results.json").read_text())
        ran_on[r.run_id] = (lf["raylet"], record["attempts"])
    nodes = {raylet for raylet, _ in ran_on.values()}
    assert nodes == {cluster["head"], cluster["worker"]}, ran_on        # both nodes trained runs
    retried = next(r.run_id for r in runs if r.dataset == killed["dataset"])
    assert ran_on[retried] == (cluster["head"], 2), ran_on              # the dead node's job, again on the head
