"""How long a CPU vLLM server takes from launch to healthy, with vLLM's engine
process spawned (vLLM's own way on a CPU) and forked (lorasweep's way:
envscripts/cpu_lora.py, fork_engine; the worker is spawned both ways),
interleaved `--reps` times; and,
on each server once up, the same requests scored, so that the answers and the
scoring speed of both ways can be compared.

    bash benchmarks/run.sh server_start.py --reps 3 --adapters DIR [DIR ...]

Each start is lorasweep's own (serve.VLLMServer, the demo's first model with
the given LoRA adapters, eval's settings); spawned = VLLM_WORKER_MULTIPROC_METHOD
set to spawn, a start method the user chose, which cpu_lora.py leaves alone.
Where a start goes is read from vLLM's log: its first line (the API server's
Python start and imports), the engine's first line, the worker's first line,
and "Starting vLLM server" (stamps to the second). Default adapters: the
demo's trained ones (`bash shell/train.sh`). Writes
benchmarks/results/server_start.json and appends to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lorasweep.envscripts.cpu_lora import FORKED, START_METHOD_ENV  # noqa: E402

log = logging.getLogger("server_start")

WAYS = {"spawn": "spawn", "fork": None}   # the variable's value for each way (None: unset)
# vLLM's log lines that mark a start's phases: (phase, pattern of the line)
MARKS = [("api_first_line", r"^\(APIServer pid=\d+\) "), ("engine_first_line", r"^\(EngineCore[^)]* pid=\d+\) "),
         ("worker_first_line", r"^\((?:VllmWorker|Worker)[^)]* pid=\d+\) "),
         ("serving", r"Starting vLLM server on")]
STAMP = re.compile(r"(?:INFO|WARNING|DEBUG) \d\d-\d\d (\d\d:\d\d:\d\d) ")


def phases(log_path: Path, launched: float) -> dict[str, float | None]:
    """Seconds from launch to each mark's first line (vLLM stamps to the second)."""
    day = datetime.fromtimestamp(launched).date()
    out: dict[str, float | None] = {name: None for name, _ in MARKS}
    for line in log_path.read_text(errors="ignore").splitlines():
        m = STAMP.search(line)
        if not m:
            continue
        for name, pattern in MARKS:
            if out[name] is None and re.search(pattern, line):
                t = datetime.combine(day, datetime.strptime(m.group(1), "%H:%M:%S").time()).timestamp()
                out[name] = round(t - launched, 1)
    return out


def prompts(n: int) -> list[str]:
    """n short classification requests, alike in length to the demo's (deterministic)."""
    words = ("the device stores energy in a layered cathode and keeps its charge "
             "through cold nights while the housing protects the cells").split()
    return [f"Which field does this patent belong to? {' '.join(words[i % 9:] + words[:i % 9])} (case {i}). "
            "Answer with the field only." for i in range(n)]


def score(base_url: str, api_key: str, names: list[str], texts: list[str], in_flight: int) -> dict:
    """Every prompt to every adapter on the chat endpoint, greedy, `in_flight` at once."""
    import httpx

    client = httpx.Client(timeout=600, trust_env=False, headers={"Authorization": f"Bearer {api_key}"})

    def ask(job: tuple[str, str]) -> str:
        name, text = job
        r = client.post(f"{base_url}/chat/completions", json={
            "model": name, "messages": [{"role": "user", "content": text}], "max_tokens": 8, "temperature": 0})
        if r.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json()["choices"][0]["message"]["content"]

    jobs = [(name, t) for name in names for t in texts]
    t0 = time.time()
    with ThreadPoolExecutor(in_flight) as pool:
        answers = list(pool.map(ask, jobs))
    wall = time.time() - t0
    return {"requests": len(jobs), "scoring_s": round(wall, 2), "req_s": round(len(jobs) / wall, 2),
            "answers": answers}


def one_start(cfg, model, adapters: dict[str, Path], way: str, work: Path, texts: list[str], in_flight: int) -> dict:
    from lorasweep.runspec import CHAT_TEMPLATE
    from lorasweep.serve.serve import VLLMServer

    value = WAYS[way]
    saved = os.environ.pop(START_METHOD_ENV, None)
    if value is not None:
        os.environ[START_METHOD_ENV] = value
    log_path = work / f"server_{way}_{len(list(work.glob(f'server_{way}_*.log')))}.log"
    try:
        launched = time.time()
        # the template LLaMA-Factory saved with the adapters, as eval serves them
        template = next((p / CHAT_TEMPLATE for p in adapters.values() if (p / CHAT_TEMPLATE).is_file()), None)
        with VLLMServer(cfg, model, adapters, template, log_path) as srv:
            started = srv.started_s
            scored = score(srv.base_url, srv.api_key, list(adapters), texts, in_flight)
    finally:
        os.environ.pop(START_METHOD_ENV, None)
        if saved is not None:
            os.environ[START_METHOD_ENV] = saved
    text = log_path.read_text(errors="ignore")
    return {"way": way, "healthy_s": round(started, 1), "phases_s": phases(log_path, launched),
            "forked_engine": FORKED in text, **scored}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "demo.yaml"))
    ap.add_argument("--adapters", nargs="*", default=None, help="LoRA adapter folders (default: the demo's trained)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=100, help="requests per adapter on each server")
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "server_start.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from eval_throughput import append_section, machine

    from lorasweep.config import load_config
    from lorasweep.infra import tools
    from lorasweep.plan import train_runs

    if tools.has_nvidia_gpu():
        print("error: this measures the CPU server's start (on a GPU, vLLM's engine is forked already)",
              file=sys.stderr)
        return 2
    cfg = load_config(Path(args.experiment))
    model = cfg.models[0]
    if args.adapters is None:
        found = [r for r in train_runs(cfg) if r.model == model.name and r.is_trained()][:8]
        adapters = {r.run_id: r.adapter_dir for r in found}
    else:
        adapters = {f"adapter{i}": Path(p).resolve() for i, p in enumerate(args.adapters)}
    if not adapters:
        print(f"error: no LoRA adapters of {model.name}: train the demo first (bash shell/train.sh "
              f"{args.experiment}) or pass --adapters", file=sys.stderr)
        return 2
    texts = prompts(args.prompts)
    work = Path(tempfile.mkdtemp(prefix="lorasweep-starts-"))
    rows = []
    for rep in range(1, args.reps + 1):
        for way in WAYS:
            row = one_start(cfg, model, adapters, way, work, texts, args.in_flight)
            log.info("rep %d, %s: healthy after %.1f s %s; %d requests at %.2f req/s", rep, way, row["healthy_s"],
                     row["phases_s"], row["requests"], row["req_s"])
            rows.append({"rep": rep, **row})
    first = {w: next(r["answers"] for r in rows if r["way"] == w) for w in WAYS}
    differing = sum(a != b for a, b in zip(first["spawn"], first["fork"], strict=True))
    med = {w: {k: statistics.median(r[k] for r in rows if r["way"] == w) for k in ("healthy_s", "req_s")}
           for w in WAYS}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
              "command": "bash benchmarks/run.sh server_start.py " + " ".join(sys.argv[1:]),
              "model": model.name, "adapters": len(adapters), "prompts_per_adapter": args.prompts,
              "in_flight": args.in_flight, "repetitions": args.reps, "median": med,
              "start_saved_s": round(med["spawn"]["healthy_s"] - med["fork"]["healthy_s"], 1),
              "answers_differing_spawn_fork": differing,
              "per_start": [{k: v for k, v in r.items() if k != "answers"} for r in rows]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    lines = [f"\n## CPU server start, engine spawned or forked, {report['date']}\n",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM.  ",
             f"`{model.name}` with {len(adapters)} LoRA adapter(s); per start {args.prompts} requests per adapter, "
             f"{args.in_flight} in flight; {args.reps} repetition(s), interleaved.\n",
             f"    {report['command']}\n",
             "| way | healthy after (median) | all starts (s) | API first line / engine / worker / serving (s, "
             "first rep) | scoring req/s (median) |", "|---|---|---|---|---|"]
    for w in WAYS:
        mine = [r for r in rows if r["way"] == w]
        p = mine[0]["phases_s"]
        lines.append(f"| {w} | {med[w]['healthy_s']:.1f} s | {', '.join(str(r['healthy_s']) for r in mine)} | "
                     f"{p['api_first_line']} / {p['engine_first_line']} / {p['worker_first_line']} / "
                     f"{p['serving']} | {med[w]['req_s']:.2f} |")
    lines += ["", f"- forking the engine saves **{report['start_saved_s']} s** of a start; answers differing between "
              "the ways: "
              f"{differing} of {len(first['fork'])}"]
    append_section(Path(args.doc), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
