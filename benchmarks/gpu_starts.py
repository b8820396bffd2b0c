"""Where a GPU eval's time goes, read from the logs `benchmarks/gpu_demo.sh` leaves:
set-up, training, and per eval.sh pass each server's start (split into its phases
from vLLM's own log lines), its scoring, and the baselines.

    python benchmarks/gpu_starts.py LOGS [--out benchmarks/results/eval_starts_gpu.json]

LOGS holds what one lease brought back: times.txt, setup.log, train.log, one log per
eval.sh pass (eval.log, rescore*.log: lorasweep's own lines), gpus.txt, importtime1.txt
(`python -X importtime` of vLLM's API server), and servers_<pass>/server_<model>.log
(vLLM's logs of that pass). Nothing is measured here: every number is read from a log.
"""
from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^(\d\d:\d\d:\d\d) ")
VLLM_STAMP = re.compile(r"(?:INFO|WARNING) \d\d-\d\d (\d\d:\d\d:\d\d) ")


def _t(hms: str) -> datetime:
    return datetime.strptime(hms, "%H:%M:%S")


def _secs(a: str, b: str) -> int:
    return int((_t(b) - _t(a)).total_seconds())


def steps(times: Path) -> dict[str, int]:
    """Each gpu_demo.sh step's seconds (times.txt: 'HH:MM:SS name: N s, exit rc')."""
    out = {}
    for line in times.read_text().splitlines():
        m = re.match(r"\d\d:\d\d:\d\d (\w+): (\d+) s, exit (\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def setup(log: Path) -> dict:
    text = log.read_text(errors="ignore")
    envs = {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+) environment ready \(.*?\) in (\d+) s", text)}
    models = {m.group(1): int(m.group(2)) for m in re.finditer(r"embedded model (\S+) built and verified in (\d+) s",
                                                                 text)}
    stamps = [m.group(1) for m in (STAMP.match(ln) for ln in text.splitlines()) if m]
    ready = [STAMP.match(ln).group(1) for ln in text.splitlines() if "environment ready" in ln and STAMP.match(ln)]
    return {"environments_s": envs, "models_s": models,
            "pieces_to_environments_ready_s": _secs(stamps[0], ready[-1]) if ready else None}


def train(log: Path) -> dict:
    lines = [ln for ln in log.read_text(errors="ignore").splitlines() if STAMP.match(ln)]
    first = STAMP.match(lines[0]).group(1)
    start = next(STAMP.match(ln).group(1) for ln in lines if "run(s) to train" in ln)
    runs = re.search(r"train summary: (\d+) trained", log.read_text(errors="ignore"))
    return {"before_first_run_s": _secs(first, start), "runs": int(runs.group(1)) if runs else None}


def eval_pass(log: Path) -> dict:
    """A pass's servers (start to healthy, healthy to stopped) and its baselines, from lorasweep's lines."""
    servers: dict[str, dict] = {}
    first = last = None
    base_from = base_to = None
    before = None   # lorasweep's last line before the baselines' first: where they started
    for ln in log.read_text(errors="ignore").splitlines():
        m = re.search(r"(\d\d:\d\d:\d\d) INFO lorasweep\.(\w+): (.*)", ln)
        if not m:
            continue
        hms, mod, msg = m.groups()
        first = first or hms
        last = hms
        if mod == "baselines":
            base_from = base_from or before
            base_to = hms
            continue
        before = hms
        s = re.match(r"serve (\S+): (starting|healthy after (\d+) s|stopped)", msg)
        if s:
            srv = servers.setdefault(s.group(1), {})
            if s.group(2) == "starting":
                srv["started"] = hms
            elif s.group(3):
                srv["start_to_healthy_s"], srv["healthy"] = int(s.group(3)), hms
            else:
                srv["healthy_to_stopped_s"] = _secs(srv["healthy"], hms) if "healthy" in srv else None
    for srv in servers.values():
        srv.pop("healthy", None)
    return {"servers": servers, "baselines_s": _secs(base_from, base_to) if base_from and base_to else None,
            "logged_s": _secs(first, last) if first else None}


def server_phases(log: Path, started: str | None = None) -> dict:
    """A vLLM server's start split by its own log lines: the API server's and the engine
    process's Python start, compilation, graph capture, and what came after the capture."""
    text = log.read_text(errors="ignore")
    stamps = [(m.group(1), ln) for ln in text.splitlines() for m in [VLLM_STAMP.search(ln)] if m]

    def at(pattern: str) -> str | None:
        return next((t for t, ln in stamps if re.search(pattern, ln)), None)

    def num(pattern: str) -> float | None:
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None

    api, engine = at(r"non-default args"), at(r"Initializing a V1 LLM engine")
    captured = at(r"Graph capturing finished")
    init, serving = at(r"init engine"), at(r"Starting vLLM server")
    return {
        "api_server_python_start_s": _secs(started, stamps[0][0]) if started and stamps else None,
        "api_args_to_engine_init_s": _secs(api, engine) if api and engine else None,
        "dynamo_s": num(r"Dynamo bytecode transform time: ([\d.]+) s"),
        "inductor_s": num(r"Compiling a graph for compile range .*? takes ([\d.]+) s"),
        "graph_capture_s": num(r"Graph capturing finished in ([\d.]+) secs"),
        "graph_sizes_captured": len(re.findall(r"Capturing CUDA graphs \((?:PIECEWISE|FULL)\)", text)) and
        sum(int(m) for m in re.findall(r"Capturing CUDA graphs \((?:PIECEWISE|FULL)\):\s+0%\|\s*\| 0/(\d+)", text)),
        "capture_to_engine_ready_s": _secs(captured, init) if captured and init else None,
        "engine_init_s": num(r"init engine .*? took ([\d.]+) s"),
        "compilation_s": num(r"\(compilation: ([\d.]+) s\)"),
        "engine_ready_to_serving_s": _secs(init, serving) if init and serving else None,
    }


def import_seconds(path: Path, top: int = 8) -> dict:
    """The slowest top-level imports of `python -X importtime` (cumulative, seconds)."""
    rows = []
    for ln in path.read_text(errors="ignore").splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", ln)
        if m:
            rows.append((int(m.group(1)) / 1e6, len(m.group(2)), m.group(3)))
    total = max((r for r in rows if r[1] == 1), default=(0, 0, ""))
    heavy = sorted((r for r in rows if r[1] <= 11), reverse=True)[:top]
    return {"module": total[2], "cumulative_s": round(total[0], 1),
            "heaviest": {name: round(s, 1) for s, _, name in heavy}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval_starts_gpu.json")
    a = ap.parse_args()
    d = a.logs
    out: dict = {"gpu": (d / "gpus.txt").read_text().split(":", 1)[1].split("(")[0].strip()
                 if (d / "gpus.txt").is_file() else None}
    out["steps_s"] = {}
    for t in sorted(d.glob("times*.txt")):
        out["steps_s"].update(steps(t))
    if (d / "setup.log").is_file():
        out["setup"] = setup(d / "setup.log")
    if (d / "train.log").is_file():
        out["train"] = train(d / "train.log")
    out["eval_passes"] = {}
    for log in sorted([*d.glob("eval*.log"), *d.glob("rescore*.log")]):
        p = eval_pass(log)
        folder = d / f"servers_{log.stem}"
        for name in list(p["servers"]):
            f = folder / f"server_{name}.log"
            if f.is_file():
                p["servers"][name]["phases"] = server_phases(f, p["servers"][name].get("started"))
            p["servers"][name].pop("started", None)
        out["eval_passes"][log.stem] = p
    if (d / "importtime1.txt").is_file():
        out["vllm_import"] = import_seconds(d / "importtime1.txt")
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
