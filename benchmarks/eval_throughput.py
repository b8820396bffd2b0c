"""How fast evaluation is, three ways, on the same adapters and test prompts
of the embedded default model (one run of this script measures all three,
interleaved, `--reps` times):

  (a) the seed's way: one vLLM server start per adapter (vLLM's default
      settings, eager mode as the seed ran it), the test prompts sent one at a
      time;
  (b) lorasweep's way: `evaluate_model`, exactly what eval.sh runs per base
      model: one server for all adapters, lorasweep's settings, concurrent
      requests, parity check, predictions and metrics written;
  (c) the limit: the same prompts through vLLM's offline `LLM.generate` in one
      batch in one process (on a CPU with the LoRA kernels (b)'s server uses),
      plus one server start (b's) for a fair comparison.

All three send the same requests (temperature 0, the same max_tokens and stop
ids), so their answers must agree; the script counts those that do not ((a)
asks the chat endpoint one prompt at a time, (b) sends batches of client-rendered
prompts to the completions endpoint: on a CPU, in float32, a-b = 0 proves the two
paths answer alike; on a GPU, in bf16, a prompt's logits depend a little on its
batch, so a few answers near a tie can differ between any two passes, docs/gpu.md).

Steady state (`--steady N`, default 10,000 on a GPU): once its server is up,
(b) scores the test prompts repeated until there are at least N requests, and
(c) generates the same repeated requests; `lorasweep_req_s` and `limit_req_s`
are those rates, with no server start in them.

    bash benchmarks/run.sh eval_throughput.py            # 8 adapters x 200 prompts x 3 reps
    bash benchmarks/run.sh eval_throughput.py --reps 1   # on a GPU: + the steady state; writes *_gpu.json
    # the ways in two sessions (a machine held too briefly for all three):
    bash benchmarks/run.sh eval_throughput.py --reps 1 --ways a --keep-answers a.json
    bash benchmarks/run.sh eval_throughput.py --reps 1 --ways bc --merge a.json

Needs a trained demo with at least --adapters adapters (e.g.
`bash shell/train.sh --set 'seeds=[1,2,3]'`). Writes
benchmarks/results/eval_throughput.json and appends to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

log = logging.getLogger("eval_throughput")

if "--limit-worker" in sys.argv and os.environ.get("LORASWEEP_CPU_LORA") == "1":
    # (c) on a CPU computes LoRA with the kernels (b)'s server uses. vLLM's
    # spawned engine process runs this file's top level again, so it gets them too.
    from lorasweep.envscripts.cpu_lora import install_and_say

    install_and_say()


# --- (c): runs inside the serving environment, where vLLM is -------------------

def limit_worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    t0 = time.time()
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    t_import = time.time()
    llm = LLM(**spec["engine"])
    t_init = time.time()
    tok = llm.get_tokenizer()
    template = Path(spec["chat_template"]).read_text() if spec.get("chat_template") else None
    loras = {name: LoRARequest(name, i + 1, path) for i, (name, path) in enumerate(spec["adapters"].items())}
    prompts, lora_reqs = [], []
    for name in spec["adapters"]:
        for text in spec["prompts"]:
            ids = tok.apply_chat_template([{"role": "user", "content": text}], chat_template=template,
                                          add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):   # a BatchEncoding in newer transformers
                ids = ids["input_ids"]
            prompts.append({"prompt_token_ids": list(ids)})
            lora_reqs.append(loras[name])
    sp = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"], stop_token_ids=spec["stop_token_ids"])
    t1 = time.time()
    outs = llm.generate(prompts, sp, lora_request=lora_reqs, use_tqdm=False)
    t2 = time.time()
    texts = [o.outputs[0].text for o in outs]
    out = {"import_s": t_import - t0, "init_s": t_init - t_import, "prepare_s": t1 - t_init, "generate_s": t2 - t1,
           "texts": texts}
    if spec.get("steady_repeat"):   # the same requests repeated: the engine's steady rate
        r = spec["steady_repeat"]
        t3 = time.time()
        more = llm.generate(prompts * r, sp, lora_request=lora_reqs * r, use_tqdm=False)
        out["steady_requests"], out["steady_s"] = len(more), time.time() - t3
        out["steady_differing"] = sum(o.outputs[0].text != texts[i % len(texts)] for i, o in enumerate(more))
    Path(spec["out"]).write_text(json.dumps(out, ensure_ascii=False))


# --- the harness side ----------------------------------------------------------

def machine() -> dict:
    import platform

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    gpu_name = None
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True)
        gpu_name = ", ".join(out.stdout.split("\n")[:1]).strip() or None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem, 1),
            "gpu": shutil.which("nvidia-smi") is not None, "gpu_name": gpu_name,
            "os": platform.platform(), "python": platform.python_version()}


def scratch_root(cfg, runs, test, dest: Path, repeat: int = 1) -> Path:
    """A repository root holding only the chosen adapters (linked) and the
    experiment's data, so (b) runs the real eval path without touching the
    experiment's own results."""
    from lorasweep.infra.paths import data_dir, experiment_dir, test_file
    from lorasweep.runspec import ADAPTER_DIR, TRAINED_MARKER

    if dest.exists():
        shutil.rmtree(dest)
    data = dest / "data" / cfg.name
    data.mkdir(parents=True)
    for f in data_dir(cfg.name).iterdir():   # the same data, the test set cut to the prompts measured
        if f.name != test_file(cfg.name).name:
            os.symlink(f, data / f.name)
    (data / test_file(cfg.name).name).write_text(json.dumps(test * repeat, ensure_ascii=False), encoding="utf-8")
    for r in runs:
        rel = r.folder().relative_to(experiment_dir(cfg.name).parent)   # <name>/runs/<model>/...
        target = dest / "experiments" / rel
        target.mkdir(parents=True)
        os.symlink(r.adapter_dir, target / ADAPTER_DIR)
        shutil.copy2(r.trained_marker, target / TRAINED_MARKER)
    return dest


def seed_way(cfg, model, runs, test, chat_template, work: Path) -> dict:
    """(a): per adapter a fresh server with vLLM's defaults, then one request at a time."""
    from langchain_core.messages import HumanMessage
    from tqdm import tqdm

    from lorasweep.models.parity import served_stop_ids
    from lorasweep.score.score import build_result, make_client
    from lorasweep.serve.serve import VLLMServer
    from lorasweep.tasks.prompts import render_prompt

    # as the seed's eval.sh served each adapter: vLLM's defaults, in eager mode
    # (it passed --vllm_enforce_eager); the requests themselves are lorasweep's
    # (same prompts, max_tokens and stop ids), so the answers stay comparable.
    plain = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={
        "tune_server": False, "extra_server_args": [*cfg.eval.extra_server_args, "--enforce-eager"]})})
    t0 = time.time()
    preds, starts = {}, []
    for r in runs:
        with VLLMServer(plain, model, {r.run_id: r.adapter_dir}, chat_template, work / f"a_{r.run_id}.log") as srv:
            starts.append(srv.started_s)
            client = make_client(cfg, srv.base_url, srv.api_key, r.run_id, served_stop_ids(cfg, model), "free")
            answers = []
            for ex in tqdm(test, desc=f"(a) {r.run_id}", unit="req", leave=False):
                msg = client.invoke([HumanMessage(content=render_prompt(cfg.task, ex, r.prompt))])
                answers.append(msg.content)
        preds[r.run_id] = build_result(cfg, r, "free", test, answers).raw
    return {"wall_s": time.time() - t0, "server_start_s": starts, "raw": preds}


def lorasweep_way(cfg, model, runs, test, scratch: Path) -> dict:
    """(b): evaluate_model, as eval.sh runs it, in a scratch root."""
    from lorasweep.plan import eval_runs
    from lorasweep.score.evaluation import evaluate_model

    os.environ["LORASWEEP_ROOT"] = str(scratch)
    try:
        t0 = time.time()
        summary = evaluate_model(cfg, model.name)
        wall = time.time() - t0
        if summary.failed:
            raise RuntimeError(f"(b) failed: {summary.failed}")
        raw = {}
        measured = {x.run_id for x in runs}
        for r in (r for r in eval_runs(cfg) if r.run_id in measured):
            f = r.folder() / "predictions.free.jsonl"
            if f.is_file():
                raw[r.run_id] = [json.loads(x)["raw"] for x in f.read_text(encoding="utf-8").splitlines()]
        log_text = (scratch / "experiments" / cfg.name / "runs" / f"server_{model.name}.log").read_text(errors="ignore")
    finally:
        os.environ.pop("LORASWEEP_ROOT", None)
    # each run's score_s: from its client's first request to its last answer
    score_s = [json.loads(f.read_text())["score_s"]
               for f in (scratch / "experiments" / cfg.name / "runs").rglob("metrics.free.json")]
    if len(score_s) != len(runs):
        raise RuntimeError(f"(b) wrote {len(score_s)} metrics file(s) for {len(runs)} run(s) in {scratch}")
    start = summary.server_start_s[model.name]
    return {"wall_s": wall, "server_start_s": start, "raw": raw, "scoring_s": max(score_s),
            "after_start_s": round(wall - start, 2), "prefix_cache_hit_rates": _hit_rates(log_text)}


def _hit_rates(text: str) -> list[float]:
    import re

    return [float(x) for x in re.findall(r"Prefix cache hit rate: ([\d.]+)%", text)]


def limit_way(cfg, model, runs, test, chat_template, work: Path, server_start_s: float,
              steady_repeat: int = 0) -> dict:
    """(c): offline LLM.generate over every (adapter, prompt) in one batch."""
    from lorasweep.envscripts.cpu_lora import INSTALLED as CPU_LORA_INSTALLED
    from lorasweep.infra import tools
    from lorasweep.models.embedded import resolve_model_path
    from lorasweep.models.parity import served_stop_ids
    from lorasweep.score.score import max_answer_tokens
    from lorasweep.serve.serve import CPU_BLOCK_SIZE, VLLMServer, serve_dtype, uses_cpu_lora, vllm_rank
    from lorasweep.tasks.prompts import render_prompt

    engine = {"model": str(resolve_model_path(model.path)), "dtype": serve_dtype(cfg.eval.dtype),
              "max_model_len": cfg.eval.max_model_len, "enable_prefix_caching": True, "enable_lora": True,
              "max_loras": len(runs), "max_cpu_loras": len(runs),
              "max_lora_rank": vllm_rank(int(cfg.train.resolved_args().get("lora_rank", 8)))}
    if not tools.has_nvidia_gpu():
        engine["block_size"] = CPU_BLOCK_SIZE
    spec = {"engine": engine, "chat_template": str(chat_template) if chat_template else None,
            "adapters": {r.run_id: str(r.adapter_dir) for r in runs},
            "prompts": [render_prompt(cfg.task, ex, runs[0].prompt) for ex in test],
            "max_tokens": max_answer_tokens(cfg), "stop_token_ids": served_stop_ids(cfg, model),
            "out": str(work / "c_out.json"), "steady_repeat": steady_repeat}
    (work / "c_spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    env = VLLMServer(cfg, model, {}, None, work / "unused.log")._env()
    if uses_cpu_lora(cfg):
        env["LORASWEEP_CPU_LORA"] = "1"
    python = tools.vllm_python(cfg)
    with open(work / "c.log", "w") as fh:
        rc = subprocess.run([python, __file__, "--limit-worker", str(work / "c_spec.json")], env=env,
                            stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"(c) failed with exit code {rc}; see {work / 'c.log'}")
    out = json.loads((work / "c_out.json").read_text())
    kernels = (work / "c.log").read_text(errors="ignore").count(CPU_LORA_INSTALLED)
    texts = iter(out["texts"])
    raw = {r.run_id: [next(texts) for _ in test] for r in runs}
    res = {"wall_s": out["generate_s"] + server_start_s, "generate_s": out["generate_s"], "llm_init_s": out["init_s"],
           "server_start_s": server_start_s, "raw": raw, "processes_with_cpu_lora_kernels": kernels}
    if steady_repeat:
        res.update({k: out[k] for k in ("steady_requests", "steady_s", "steady_differing")})
    return res


def compare(a: dict, b: dict) -> int:
    """How many answers differ between two ways (over the runs both have)."""
    return sum(x != y for k in a if k in b for x, y in zip(a[k], b[k], strict=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "demo.yaml"))
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="config overrides (default: seeds=[1,2,3], where the adapters come from)")
    ap.add_argument("--adapters", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ways", default="abc", help="which of a, b, c to run (default all)")
    ap.add_argument("--steady", type=int, default=None,
                    help="steady-state requests for (b) and (c) once up (default 10000 on a GPU, 0 on a CPU)")
    ap.add_argument("--keep-answers", metavar="FILE", help="also write every answer and timing here, for --merge")
    ap.add_argument("--merge", metavar="FILE", action="append",
                    help="add the ways another run kept (--keep-answers), e.g. (a) measured in a lease of its own")
    ap.add_argument("--json", default=None, help="default benchmarks/results/eval_throughput[_gpu].json")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--limit-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.limit_worker:
        limit_worker(args.limit_worker)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from lorasweep.config import load_config
    from lorasweep.infra import tools

    on_gpu = tools.has_nvidia_gpu()
    if args.steady is None:
        args.steady = 10_000 if on_gpu else 0
    if args.json is None:
        args.json = str(ROOT / "benchmarks" / "results" / f"eval_throughput{'_gpu' if on_gpu else ''}.json")
    from lorasweep.data.splits import load_test
    from lorasweep.models.parity import encode_template
    from lorasweep.plan import train_runs
    from lorasweep.tasks.prompts import render_prompt

    set_args = args.set if args.set is not None else ["seeds=[1,2,3]"]
    cfg = load_config(Path(args.experiment), set_args=set_args + ["eval.include_base=false", "eval.baselines=[]",
                                                                  "eval.decoding=free"])
    model = cfg.models[0]
    trained = [r for r in train_runs(cfg) if r.model == model.name and r.is_trained()]
    if len(trained) < args.adapters:
        print(f"error: {len(trained)} trained adapter(s) of {model.name} in {cfg.name}; need {args.adapters}. "
              f"Train them first, e.g. bash shell/train.sh {args.experiment} --set 'seeds=[1,2,3]'", file=sys.stderr)
        return 2
    runs = sorted(trained, key=lambda r: (r.size, r.seed or 0))[:args.adapters]
    test = load_test(cfg)[:args.prompts]
    # the answer-end token every way's requests stop at, as eval records it (runs/<model>/template.json)
    encode_template(cfg, model, render_prompt(cfg.task, test[0], runs[0].prompt), test[0]["label"])
    chat_template = next((r.chat_template for r in runs if r.chat_template.is_file()), None)
    n_req = len(runs) * len(test)
    log.info("%d adapters x %d prompts = %d requests, %d repetition(s), ways %s", len(runs), len(test), n_req,
             args.reps, args.ways)
    work = Path(tempfile.mkdtemp(prefix="lorasweep-bench-"))
    reps = []
    for rep in range(1, args.reps + 1):
        row: dict = {}
        if "a" in args.ways:
            log.info("rep %d: (a) the seed's way", rep)
            row["a"] = seed_way(cfg, model, runs, test, chat_template, work)
            log.info("rep %d: (a) %.1f s", rep, row["a"]["wall_s"])
        if "b" in args.ways or "c" in args.ways:
            log.info("rep %d: (b) lorasweep's way", rep)
            scratch = scratch_root(cfg, runs, test, work / "scratch")
            row["b"] = lorasweep_way(cfg, model, runs, test, scratch)
            log.info("rep %d: (b) %.1f s (server start %.1f s)", rep, row["b"]["wall_s"], row["b"]["server_start_s"])
        repeat = -(-args.steady // n_req) if args.steady and rep == args.reps else 0
        if "c" in args.ways:
            log.info("rep %d: (c) the limit%s", rep, f", then {repeat} x {n_req} requests steady" if repeat else "")
            row["c"] = limit_way(cfg, model, runs, test, chat_template, work, row["b"]["server_start_s"], repeat)
            log.info("rep %d: (c) %.1f s (generate %.1f s + server start %.1f s)", rep, row["c"]["wall_s"],
                     row["c"]["generate_s"], row["c"]["server_start_s"])
        row["differences"] = differences(row)
        log.info("rep %d: answers differing between ways: %s", rep, row["differences"])
        reps.append(row)
    steady = None
    if args.steady and "b" in args.ways:
        repeat = -(-args.steady // n_req)
        log.info("steady state: (b) scores %d x %d = %d requests on one server", repeat, n_req, repeat * n_req)
        scratch = scratch_root(cfg, runs, test, work / "steady", repeat)
        steady = lorasweep_way(cfg, model, runs, test * repeat, scratch)
        first = reps[-1]["b"]["raw"]
        steady["differing_from_b"] = sum(x != first[k][i % len(test)] for k, xs in steady.pop("raw").items()
                                         for i, x in enumerate(xs))
        steady["requests"] = repeat * n_req
        log.info("steady state: (b) %d requests scored in %.1f s (%.0f req/s)", steady["requests"],
                 steady["scoring_s"], steady["requests"] / steady["scoring_s"])
    shutil.rmtree(work, ignore_errors=True)
    measured = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "ways": args.ways,
                "adapters": [r.run_id for r in runs], "prompts": len(test), "reps": reps, "steady": steady}
    if args.keep_answers:
        Path(args.keep_answers).write_text(json.dumps(measured, ensure_ascii=False))
        log.info("answers and timings kept in %s (for --merge)", args.keep_answers)
    merged_from = []
    for path in args.merge or []:
        reps, steady, origin = merge(reps, steady, json.loads(Path(path).read_text()), measured)
        merged_from.append({"file": path, **origin})
    report = summarise(args, cfg, runs, test, reps, steady)
    if merged_from:
        report["merged_from"] = merged_from
    write(report, Path(args.json), Path(args.doc))
    return 0


def differences(row: dict) -> dict:
    """Answers differing between every two ways of one repetition."""
    ways = [w for w in "abc" if w in row]
    return {f"{x}-{y}": compare(row[x]["raw"], row[y]["raw"]) for i, x in enumerate(ways) for y in ways[i + 1:]}


def merge(reps: list[dict], steady: dict | None, saved: dict, measured: dict) -> tuple[list[dict], dict | None, dict]:
    """Add the ways an earlier run measured (--keep-answers) to this run's
    repetitions: rep i gets saved rep i's ways that it lacks, and the answers
    are compared across both. Both runs must have asked the same adapters the
    same number of prompts; the machine and date of each stay in the report."""
    if saved["adapters"] != measured["adapters"] or saved["prompts"] != measured["prompts"]:
        raise SystemExit(f"error: cannot merge: that run measured {len(saved['adapters'])} adapters x "
                         f"{saved['prompts']} prompts ({saved['adapters']}), this one {len(measured['adapters'])} x "
                         f"{measured['prompts']} ({measured['adapters']})")
    n = min(len(reps), len(saved["reps"]))
    out, taken = [], set()
    for row, old in zip(reps[:n], saved["reps"][:n], strict=True):
        extra = {w: old[w] for w in "abc" if w in old and w not in row}
        taken |= set(extra)
        row = {**extra, **row}
        row["differences"] = differences(row)
        out.append(row)
    # "ways": those this report took from that run (a way both runs measured is this run's)
    origin = {"date": saved["date"], "machine": saved["machine"], "ways": "".join(sorted(taken)),
              "steady_state": steady is None and saved.get("steady") is not None}
    return out, steady or saved.get("steady"), origin


def summarise(args, cfg, runs, test, reps, steady: dict | None = None) -> dict:
    n_req = len(runs) * len(test)
    med = {w: statistics.median(r[w]["wall_s"] for r in reps) for w in "abc" if w in reps[0]}
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "command": "bash benchmarks/run.sh eval_throughput.py " + " ".join(sys.argv[1:]),
        "experiment": cfg.name, "model": cfg.models[0].name, "adapters": [r.run_id for r in runs],
        "prompts": len(test), "requests": n_req, "repetitions": len(reps),
        "answers_differing": [r["differences"] for r in reps],
        "per_rep": [{w: {k: v for k, v in r[w].items() if k != "raw"} for w in "abc" if w in r} for r in reps],
    }
    names = {"a": "seed_way_s", "b": "lorasweep_s", "c": "limit_s"}
    for w, key in names.items():
        if w in med:
            out[key] = round(med[w], 1)
            out[key.replace("_s", "_req_per_s")] = round(n_req / med[w], 2)
    if "a" in med and "b" in med:
        out["speedup_vs_seed_way"] = round(med["a"] / med["b"], 2)
    if "b" in med and "c" in med:
        out["slowdown_vs_limit"] = round(med["b"] / med["c"], 2)
    out["gpu"] = out["machine"]["gpu_name"]
    last_c = reps[-1].get("c", {})
    if steady and steady.get("scoring_s"):
        out["steady_state"] = steady
        out["lorasweep_req_s"] = round(steady["requests"] / steady["scoring_s"], 1)
    if last_c.get("steady_s"):
        out["limit_req_s"] = round(last_c["steady_requests"] / last_c["steady_s"], 1)
    if "lorasweep_req_s" in out and "limit_req_s" in out:
        out["steady_lorasweep_over_limit"] = round(out["lorasweep_req_s"] / out["limit_req_s"], 3)
    return out


def write(report: dict, json_path: Path, doc: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    m = report["machine"]
    lines = [f"\n## Evaluation throughput, {report['date']}\n",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
             f"{m['gpu_name'] or 'NVIDIA GPU' if m['gpu'] else 'no GPU'}; {m['os']}.  ",
             f"{len(report['adapters'])} adapters of `{report['model']}` ({report['experiment']}) x "
             f"{report['prompts']} test prompts = {report['requests']} requests; medians of "
             f"{report['repetitions']} repetitions.\n",
             f"    {report['command']}\n",
             "| way | median wall time | requests/s | all repetitions (s) |", "|---|---|---|---|"]
    labels = {"seed_way_s": "(a) seed's way: a server per adapter, one request at a time",
              "lorasweep_s": "(b) lorasweep (eval.sh): one server, all adapters, concurrent",
              "limit_s": "(c) limit: offline LLM.generate in one batch + one server start"}
    keys = {"seed_way_s": "a", "lorasweep_s": "b", "limit_s": "c"}
    for key, label in labels.items():
        if key in report:
            per = ", ".join(f"{r[keys[key]]['wall_s']:.1f}" for r in report["per_rep"])
            lines.append(f"| {label} | {report[key]:.1f} s | {report[key.replace('_s', '_req_per_s')]:.2f} | {per} |")
    lines.append("")
    gpu = report["gpu"] is not None
    if "speedup_vs_seed_way" in report:
        lines.append(f"- a/b (speed-up over the seed's way): **{report['speedup_vs_seed_way']:.2f}x** "
                     f"(target >= {6 if gpu else 4}x)")
    if "slowdown_vs_limit" in report:
        lines.append(f"- b/c (distance from the limit): **{report['slowdown_vs_limit']:.2f}x**"
                     + ("" if gpu else " (target <= 1.5x)"))
    if "steady_lorasweep_over_limit" in report:
        st = report["steady_state"]
        lines.append(f"- steady state ({st['requests']} requests once up): lorasweep **{report['lorasweep_req_s']:.0f} "
                     f"req/s**, offline limit {report['limit_req_s']:.0f} req/s: "
                     f"**{report['steady_lorasweep_over_limit']:.2f}x** (target >= 0.67x); answers differing from "
                     f"(b)'s first pass: {st['differing_from_b']}")
    lines.append(f"- answers differing between the ways, per repetition: {report['answers_differing']}")
    for m in report.get("merged_from", []):
        what = " and ".join(x for x in (f"way(s) {m['ways']}" if m["ways"] else "",
                                         "the steady state" if m.get("steady_state") else "") if x)
        lines.append(f"- {what or 'nothing'} measured by an earlier run ({m['date']}, "
                     f"{m['machine'].get('gpu_name') or m['machine']['cpu']}) and merged from `{m['file']}`")
    append_section(doc, lines)


def append_section(doc: Path, lines: list[str]) -> None:
    """Append a results section to docs/benchmarks.md (and show it)."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    if not doc.exists():
        doc.write_text("# Benchmarks\n\nMeasured by the scripts in `benchmarks/`; each run appends a section.\n")
    with open(doc, "a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
