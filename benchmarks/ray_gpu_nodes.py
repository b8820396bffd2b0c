"""The helper of benchmarks/ray_gpu_nodes.sh (run with the harness Python):

  raylets                       pids of the raylets on this host, one per line
  nodes <logs> <gpu> <gpu> <step>  which raylet and Ray node is the head, which the worker -> nodes.<step>.json
  runs-dir                      the Ray experiment's run folders
  kill-worker <logs> <runs>     once the worker node has finished a run (in the <runs> folder) and
                                another of its runs has logged training steps, SIGKILL the node (its
                                raylet and everything under it) -> killed.json
  summary <logs> <exp> <seeds>  runs per node, the killed node's jobs, wall times, and the Ray
                                experiment's losses and scores against the local one's ->
                                benchmarks/results/ray_gpu_nodes.json
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ADDRESS = "127.0.0.1:6379"
RESULT = Path(__file__).resolve().parent / "results" / "ray_gpu_nodes.json"


def _procs() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process we can read."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = [a.decode(errors="replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
            except (OSError, ValueError, IndexError):
                continue
            out[int(d.name)] = (ppid, argv)
    return out


def raylets() -> set[int]:
    return {pid for pid, (_, argv) in _procs().items() if argv and argv[0].endswith("/raylet")}


def descendants(root: int, procs: dict) -> set[int]:
    found, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def nodes(logs: Path, head_gpu: str, worker_gpu: str, step: str) -> None:
    import ray

    before = {int(x) for x in (logs / "raylets.before").read_text().split()}
    head = {int(x) for x in (logs / "raylets.head").read_text().split()} - before
    worker = raylets() - before - head
    assert len(head) == 1 and len(worker) == 1, (head, worker)
    ray.init(address=ADDRESS, logging_level="WARNING")
    ids = {}
    for n in ray.nodes():
        for role in ("head", "worker"):
            if f"node_{role}" in n["Resources"]:
                ids[role] = n["NodeID"]
    res = ray.cluster_resources()
    ray.shutdown()
    info = {"head": {"gpu": head_gpu, "raylet": head.pop(), "node_id": ids["head"]},
            "worker": {"gpu": worker_gpu, "raylet": worker.pop(), "node_id": ids["worker"]},
            "cluster": {"CPU": res.get("CPU"), "GPU": res.get("GPU", 0)}}
    (logs / f"nodes.{step}.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


def _training_runs(pids: set[int], procs: dict) -> list[Path]:
    """The run folders of the trainings among `pids` (their argv names the run's train.yaml)."""
    found = set()
    for pid in pids:
        for a in procs.get(pid, (0, []))[1]:
            if a.endswith("train.yaml"):
                found.add(Path(a).resolve().parent)
    return sorted(found)


def _finished_on(runs: Path, node_id: str) -> list[str]:
    """Run folders under `runs` whose training record says it trained on the Ray node."""
    done = []
    for marker in runs.glob("**/train_result.json"):
        try:
            if json.loads(marker.read_text()).get("node") == f"ray:{node_id}":
                done.append(str(marker.parent.relative_to(runs)))
        except (OSError, ValueError):
            continue
    return done


def kill_worker(logs: Path, runs_dir: Path) -> None:
    import yaml

    worker_info = json.loads((logs / "nodes.train_ray.json").read_text())["worker"]
    worker = worker_info["raylet"]
    t0 = time.time()
    while True:
        procs = _procs()
        if worker not in procs:
            print("the worker node is gone before anything was killed", flush=True)
            return
        under = descendants(worker, procs)
        runs = _training_runs(under, procs)
        stepped = []
        for run in runs:
            try:
                out = Path(yaml.safe_load((run / "train.yaml").read_text())["output_dir"])
                if not out.is_absolute():
                    out = run / out
                if (out / "trainer_log.jsonl").is_file() and (out / "trainer_log.jsonl").read_text().strip():
                    stepped.append(run)
            except (OSError, KeyError, TypeError, yaml.YAMLError):
                continue
        finished = _finished_on(runs_dir, worker_info["node_id"]) if stepped else []
        if stepped and finished:
            for pid in under:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            info = {"raylet": worker, "after_s": round(time.time() - t0, 1), "processes": len(under),
                    "finished_on_it_before": len(finished),
                    "running_runs": [str(r.relative_to(runs_dir.resolve())) for r in runs],
                    "runs_with_steps": [str(r.relative_to(runs_dir.resolve())) for r in stepped],
                    "run_folders": [str(r) for r in runs]}
            (logs / "killed.json").write_text(json.dumps(info, indent=1))
            print(f"killed the worker node ({len(under)} processes) after {info['after_s']} s, "
                  f"{len(runs)} run(s) training on it", flush=True)
            return
        time.sleep(0.5)


def _times(logs: Path) -> dict[str, int]:
    out = {}
    for line in (logs / "times.txt").read_text().splitlines():
        m = re.match(r"\S+ (\w+): (\d+) s, exit 0$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def summary(logs: Path, exp: str, seeds: str) -> None:
    from lorasweep.analysis.results import load_results
    from lorasweep.config import load_config
    from lorasweep.infra.atomic import read_json
    from lorasweep.plan import train_runs

    info = json.loads((logs / "nodes.train_ray.json").read_text())
    role_of = {f"ray:{info[r]['node_id']}": r for r in ("head", "worker")}
    at_eval = json.loads((logs / "nodes.eval_ray.json").read_text()) if (logs / "nodes.eval_ray.json").is_file() \
        else info
    killed = json.loads((logs / "killed.json").read_text()) if (logs / "killed.json").is_file() else None
    killed_folders = set(killed["run_folders"]) if killed else set()
    exps = {}
    for name in ("demo_ray", "demo_local"):
        cfg = load_config(exp, set_args=[f"name={name}", f"seeds={seeds}"])
        runs = {}
        for r in train_runs(cfg):
            rec = read_json(r.trained_marker) if r.trained_marker.is_file() else {}
            runs[r.run_id] = {"node": role_of.get(rec.get("node"), rec.get("node")), "attempts": rec.get("attempts"),
                              "train_loss": rec.get("train_loss"), "train_wall_s": rec.get("train_wall_s"),
                              "gpus": rec.get("gpus"), "killed": str(r.folder().resolve()) in killed_folders}
        try:
            df = load_results(cfg)
            for row in df[df["checkpoint"].fillna("") == ""].to_dict(orient="records"):
                if row["run_id"] in runs:
                    runs[row["run_id"]]["score"] = row["score"]
                    runs[row["run_id"]]["invalid"] = row["invalid"]
        except FileNotFoundError:
            pass
        exps[name] = runs
    ray_runs, local_runs = exps["demo_ray"], exps["demo_local"]
    per_node = {}
    for rec in ray_runs.values():
        per_node[rec["node"]] = per_node.get(rec["node"], 0) + 1

    def diff(key):
        pairs = [(a[key], local_runs[k].get(key)) for k, a in ray_runs.items()
                 if a.get(key) is not None and local_runs.get(k, {}).get(key) is not None]
        return {"runs_compared": len(pairs), "equal": sum(a == b for a, b in pairs),
                "max_abs_diff": max((abs(a - b) for a, b in pairs), default=None)}

    eval_nodes = {}
    if (logs / "eval_ray.log").is_file():
        text = (logs / "eval_ray.log").read_text()
        for m in re.finditer(r"ray: (\S+) started on node (\w+)(?:, GPU ([\d,]+))?", text):
            role = next((r for r in ("head", "worker") if at_eval[r]["node_id"].startswith(m.group(2))), m.group(2))
            eval_nodes[m.group(1)] = {"node": role, "gpu": m.group(3)}
    gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip().splitlines() \
        if subprocess.run(["which", "nvidia-smi"], capture_output=True).returncode == 0 else []
    out = {
        "date": time.strftime("%Y-%m-%d"), "gpus": gpus, "experiment": exp, "seeds": seeds,
        "nodes": {r: {k: info[r][k] for k in ("gpu", "node_id")} for r in ("head", "worker")},
        "cluster": info["cluster"],
        "train_runs_per_node": per_node,
        "killed_worker": killed and {
            "after_s": killed["after_s"], "runs_on_it": killed["running_runs"],
            "finished": {k: {"node": v["node"], "attempts": v["attempts"]}
                         for k, v in ray_runs.items() if v["killed"]}},
        "eval_jobs": eval_nodes,
        "wall_s": _times(logs),
        "ray_vs_local": {"train_loss": diff("train_loss"), "score": diff("score")},
        "runs": {"ray": ray_runs, "local": local_runs},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "raylets":
        print("\n".join(str(p) for p in sorted(raylets())))
    elif cmd == "nodes":
        nodes(Path(args[0]), args[1], args[2], args[3])
    elif cmd == "runs-dir":   # the Ray experiment's run folders
        from lorasweep.infra.paths import runs_dir
        print(runs_dir("demo_ray"))
    elif cmd == "kill-worker":
        kill_worker(Path(args[0]), Path(args[1]))
    elif cmd == "summary":
        summary(Path(args[0]), args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")
