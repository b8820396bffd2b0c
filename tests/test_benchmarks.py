"""The benchmark scripts' bookkeeping (medians, ratios, the appended section),
on made-up timings; the measurements themselves are in docs/benchmarks.md."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import eval_throughput  # noqa: E402
import server_start  # noqa: E402
import train_overhead  # noqa: E402


def _rep(a, b, c, diff=0):
    return {"a": {"wall_s": a, "raw": {}}, "b": {"wall_s": b, "raw": {}}, "c": {"wall_s": c, "raw": {}},
            "differences": {"a-b": diff, "a-c": 0, "b-c": 0}}


def test_eval_summary_takes_medians_and_both_ratios(tmp_path):
    args = SimpleNamespace()
    cfg = SimpleNamespace(name="demo", models=[SimpleNamespace(name="gemma-3-270m")])
    runs = [SimpleNamespace(run_id=f"r{i}") for i in range(8)]
    reps = [_rep(1000, 250, 200), _rep(1200, 300, 190, diff=1), _rep(900, 200, 210)]
    out = eval_throughput.summarise(args, cfg, runs, list(range(200)), reps)
    assert out["requests"] == 1600 and out["repetitions"] == 3
    assert (out["seed_way_s"], out["lorasweep_s"], out["limit_s"]) == (1000, 250, 200)
    assert out["speedup_vs_seed_way"] == 4.0          # medians, not a per-rep ratio
    assert out["slowdown_vs_limit"] == 1.25
    assert out["lorasweep_req_per_s"] == 6.4
    assert out["answers_differing"][1]["a-b"] == 1

    doc, js = tmp_path / "bench.md", tmp_path / "r.json"
    eval_throughput.write(out, js, doc)
    text = doc.read_text()
    assert "**4.00x** (target >= 4x)" in text and "**1.25x** (target <= 1.5x)" in text
    assert "| 1000.0 s | 1.60 | 1000.0, 1200.0, 900.0 |" in text
    assert json.loads(js.read_text())["speedup_vs_seed_way"] == 4.0
    eval_throughput.write(out, js, doc)                # appends, keeps what was there
    assert doc.read_text().count("## Evaluation throughput") == 2


def test_eval_summary_of_the_steady_state_on_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(eval_throughput, "machine", lambda: {
        "cpu": "x", "cores": 16, "ram_gib": 128.0, "gpu": True, "gpu_name": "NVIDIA H100 80GB HBM3", "os": "linux",
        "python": "3.12"})
    cfg = SimpleNamespace(name="demo", models=[SimpleNamespace(name="gemma-3-270m")])
    runs = [SimpleNamespace(run_id=f"r{i}") for i in range(8)]
    rep = _rep(480, 80, 60)
    rep["c"].update(steady_requests=11200, steady_s=8.0, steady_differing=0)
    steady = {"requests": 11200, "scoring_s": 14.0, "after_start_s": 20.0, "differing_from_b": 0}
    out = eval_throughput.summarise(SimpleNamespace(), cfg, runs, list(range(200)), [rep], steady)
    assert out["gpu"] == "NVIDIA H100 80GB HBM3"
    assert out["lorasweep_req_s"] == 800.0 and out["limit_req_s"] == 1400.0   # 11200 / 14 s, 11200 / 8 s
    assert out["steady_lorasweep_over_limit"] == 0.571
    assert out["speedup_vs_seed_way"] == 6.0
    doc = tmp_path / "bench.md"
    eval_throughput.write(out, tmp_path / "r.json", doc)
    text = doc.read_text()
    assert "**6.00x** (target >= 6x)" in text and "NVIDIA H100 80GB HBM3" in text
    assert "lorasweep **800 req/s**, offline limit 1400 req/s: **0.57x** (target >= 0.67x)" in text


def test_eval_compare_counts_differing_answers():
    a = {"r1": ["x", "y", "z"], "r2": ["p"]}
    b = {"r1": ["x", "q", "z"], "r2": ["p"], "r3": ["only in b"]}
    assert eval_throughput.compare(a, b) == 1
    assert eval_throughput.compare(a, a) == 0


def test_train_overhead_section(tmp_path):
    rep = lambda sh, bare: {  # noqa: E731
        "train_sh": {"wall_s": sh, "outside_trainer_s": 1.5, "samples_per_s": 1.0, "loss": 2.0},
        "bare": {"wall_s": bare, "samples_per_s": 1.0, "loss": 2.0}}
    report = {"date": "d", "machine": eval_throughput.machine(), "command": "cmd", "examples": 128,
              "repetitions": 3, "warmup": 1, "train_sh_s": 102.0, "bare_s": 100.0, "train_sh_samples_per_s": 1.0,
              "bare_samples_per_s": 1.0, "overhead_fraction": 0.0196, "outside_trainer_s": 1.5,
              "per_rep": [rep(102.0, 100.0), rep(103.0, 100.5), rep(101.0, 99.0)], "same_loss": True,
              "options": {"packing=true": {"wall_s": 80.0, "samples_per_s": 1.3, "loss": 2.1}}}
    doc = tmp_path / "bench.md"
    train_overhead.write(report, tmp_path / "t.json", doc)
    text = doc.read_text()
    assert "**2.0%** of train.sh's wall time (target <= 3%)" in text
    assert "| packing=true | 80.0 s | 1.300 | 2.1000 |" in text
    assert "1 untimed warm-up" in text


def test_ways_measured_in_two_runs_are_merged_and_compared(tmp_path):
    cfg = SimpleNamespace(name="demo", models=[SimpleNamespace(name="gemma-3-270m")])
    runs = [SimpleNamespace(run_id=f"r{i}") for i in range(2)]
    meta = {"adapters": ["r0", "r1"], "prompts": 3}
    a_run = {"date": "2026-11-24 10:00", "machine": {"gpu_name": "NVIDIA H100 80GB HBM3", "cpu": "x"}, "ways": "a",
             **meta, "steady": None,
             "reps": [{"a": {"wall_s": 600.0, "raw": {"r0": ["x", "y", "z"], "r1": ["p", "q", "r"]}}}]}
    kept = tmp_path / "a.json"
    kept.write_text(json.dumps(a_run))
    bc_row = {"b": {"wall_s": 100.0, "raw": {"r0": ["x", "y", "Z"], "r1": ["p", "q", "r"]}},
              "c": {"wall_s": 80.0, "raw": {"r0": ["x", "y", "z"], "r1": ["p", "q", "r"]}}}
    steady = {"requests": 12, "scoring_s": 1.0, "differing_from_b": 0}
    reps, st, origin = eval_throughput.merge([bc_row], steady, json.loads(kept.read_text()), meta)
    assert reps[0]["differences"] == {"a-b": 1, "a-c": 0, "b-c": 1} and st is steady
    out = eval_throughput.summarise(SimpleNamespace(), cfg, runs, [0, 1, 2], reps, st)
    assert out["speedup_vs_seed_way"] == 6.0 and out["slowdown_vs_limit"] == 1.25
    out["merged_from"] = [{"file": str(kept), **origin}]
    doc = tmp_path / "bench.md"
    eval_throughput.write(out, tmp_path / "r.json", doc)
    assert "- way(s) a measured by an earlier run (2026-11-24 10:00, NVIDIA H100 80GB HBM3)" in doc.read_text()
    # a run that measured a and b again takes only c and the steady state from one that measured b and c
    bc_run = {"date": "2026-11-24 11:00", "machine": {"gpu_name": "NVIDIA H200", "cpu": "x"}, "ways": "bc", **meta,
              "steady": steady, "reps": [bc_row]}
    ab_row = {"a": a_run["reps"][0]["a"], "b": {"wall_s": 90.0, "raw": bc_row["b"]["raw"]}}
    reps, st, origin = eval_throughput.merge([ab_row], None, bc_run, meta)
    assert reps[0]["b"]["wall_s"] == 90.0 and reps[0]["c"] is bc_row["c"] and st is steady
    assert origin["ways"] == "c" and origin["steady_state"] is True
    out = eval_throughput.summarise(SimpleNamespace(), cfg, runs, [0, 1, 2], reps, st)
    out["merged_from"] = [{"file": "bc.json", **origin}]
    eval_throughput.write(out, tmp_path / "r2.json", doc)
    assert "- way(s) c and the steady state measured by an earlier run (2026-11-24 11:00, NVIDIA H200)" in doc.read_text()
    other = {**meta, "adapters": ["r0", "r9"]}
    with pytest.raises(SystemExit, match="cannot merge"):
        eval_throughput.merge([bc_row], steady, json.loads(kept.read_text()), other)


def test_server_start_phases_are_read_from_vllms_log(tmp_path):
    from datetime import datetime

    launched = datetime(2026, 12, 1, 14, 39, 17).timestamp()
    log = tmp_path / "server.log"
    log.write_text("lorasweep: CPU LoRA kernels grouped by adapter (pid 10)\n"
                   "(APIServer pid=10) INFO 12-01 14:39:25 [api_utils.py:347] version\n"
                   "(APIServer pid=10) INFO 12-01 14:39:26 [model.py:733] Resolved architecture\n"
                   "(EngineCore pid=11) INFO 12-01 14:39:37 [core.py:133] Initializing\n"
                   "(Worker pid=12) WARNING 12-01 14:39:38 [cpu_worker.py:114] libtcmalloc\n"
                   "(APIServer pid=10) INFO 12-01 14:39:42 [entry.py:140] Starting vLLM server on http://127.0.0.1:1\n")
    assert server_start.phases(log, launched) == {"api_first_line": 8.0, "engine_first_line": 20.0,
                                                  "worker_first_line": 21.0, "serving": 25.0}
    log.write_text("(APIServer pid=10) INFO 12-01 14:39:25 [api_utils.py:347] version\n")   # died early
    assert server_start.phases(log, launched)["engine_first_line"] is None

