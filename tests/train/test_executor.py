"""The executors with a stand-in llamafactory-cli: local scheduling of eval
over GPUs, and the Ray executor on a real local Ray cluster (CPU-only tasks,
127.0.0.1). Real training and serving through Ray run in tests/e2e."""
import json
import time
from pathlib import Path

import pytest

from conftest import stand_in_trainer, write_experiment
from lorasweep.config import load_config
from lorasweep.data.splits import prepare_data
from lorasweep.plan import train_runs
from lorasweep.runspec import FAILED_MARKER as FAILED
from lorasweep.runspec import TRAINED_MARKER as RESULT
from lorasweep.score import evaluation
from lorasweep.serve.serve import VLLMServer
from lorasweep.train.train import run_training

# Trains instantly; for a dataset named in KILL_WORKER it first kills the
# process that started it (the Ray worker), once per line of that file's
# budget: "n10_seed1 1" kills once, "n20_seed1 9" kills every time.
FAKE_CLI = """
import json, os, pathlib, signal, sys, yaml
args = yaml.safe_load(open(sys.argv[2]))
out = pathlib.Path(args["output_dir"])
budget = pathlib.Path(os.environ["KILL_WORKER"])
plan = dict(line.split() for line in budget.read_text().splitlines() if line.strip())
for name, left in plan.items():
    if args["dataset"].endswith(name) and int(left) > 0:
        plan[name] = str(int(left) - 1)
        budget.write_text("\\n".join(f"{k} {v}" for k, v in plan.items()))
        os.kill(os.getppid(), signal.SIGKILL)   # the worker dies; this process dies with it
        signal.pause()
out.mkdir(parents=True, exist_ok=True)
(out / "adapter_model.safetensors").write_bytes(b"x")
(out / "train_results.json").write_text(json.dumps({"train_runtime": 0.1, "train_samples_per_second": 1.0,
                                                    "train_loss": 0.5, "pid": os.getpid(), "ppid": os.getppid()}))
"""


def _fake_cli(tmp_path):
    return stand_in_trainer(tmp_path, FAKE_CLI)


def test_ray_executor_trains_on_a_local_loopback_cluster_and_retries_dead_workers(sandbox, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from lorasweep.train.executor import start_ray

    cli, model = _fake_cli(tmp_path)
    budget = tmp_path / "kill-budget"
    budget.write_text("n10_seed1 1\nn30_seed1 9\n")   # n10 dies once then succeeds; n30 always dies
    monkeypatch.setenv("KILL_WORKER", str(budget))
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20, 30],
                                       models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                       train={"llamafactory_cli": str(cli)}),
                      set_args=["executor=ray", "executor.max_retries=1"])
    assert cfg.executor.kind == "ray" and cfg.executor.address is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")   # CPU-only tasks
    assert start_ray(cfg) is True
    try:
        nodes = ray.nodes()
        assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
        assert ray.cluster_resources().get("GPU", 0) == 0
        s = run_training(cfg)
    finally:
        ray.shutdown()
    assert sorted(s.done) == ["m1__n10__seed1", "m1__n20__seed1"], s.text()
    assert list(s.failed) == ["m1__n30__seed1"] and "Ray worker died 2 time(s)" in s.failed["m1__n30__seed1"]
    runs = {r.size: r for r in train_runs(cfg)}
    first = json.loads((runs[10].folder() / RESULT).read_text())
    assert first["attempts"] == 2          # killed once, retried by Ray, finished
    assert json.loads((runs[20].folder() / RESULT).read_text())["attempts"] == 1
    assert (runs[30].folder() / FAILED).is_file() and not (runs[30].folder() / RESULT).is_file()
    # The job ran in a Ray worker, not in this process.
    lf = json.loads((runs[20].folder() / "adapter" / "train_results.json").read_text())
    import os
    assert lf["ppid"] != os.getpid()
    # Resume works as with the local executor: nothing finished is redone.
    budget.write_text("")
    s2 = run_training(cfg)   # starts (and stops) its own local cluster this time
    assert s2.done == ["m1__n30__seed1"] and sorted(s2.skipped) == ["m1__n10__seed1", "m1__n20__seed1"]
    assert not ray.is_initialized()


def _events_overlap(events) -> int:
    marks = sorted([(a, 1) for _, _, a, _ in events] + [(b, -1) for _, _, _, b in events])
    running = peak = 0
    for _, d in marks:
        running += d
        peak = max(peak, running)
    return peak


def _fake_servers(monkeypatch) -> list:
    """evaluate_model replaced by a half-second stand-in; each call is recorded as
    (model, its GPUs, its memory share, start, end)."""
    calls = []

    def fake_evaluate_model(cfg, name, gpus, memory_share=None):
        start = time.time()
        time.sleep(0.5)
        calls.append((name, tuple(gpus or ()), memory_share, start, time.time()))
        return evaluation.EvalSummary(scored=[f"{name}__n0__base"])

    monkeypatch.setattr(evaluation, "evaluate_model", fake_evaluate_model)
    return calls


def _sized_models(sandbox, tmp_path, monkeypatch, n_models: int, gpu_gb: int, **eval_settings):
    """n_models base models of 1000 bytes of weights each, standing for 1 GB, on GPUs of
    gpu_gb GB (gpu_gb x 1000 bytes): the experiment, prepared."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"\0" * 1000)
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", eval={"baselines": [], **eval_settings},
                                       models=[{"name": f"m{i}", "path": str(base), "template": "gemma"}
                                               for i in range(1, n_models + 1)]))
    prepare_data(cfg)
    monkeypatch.setattr(evaluation.tools, "gpu_memory_bytes", lambda gpu: gpu_gb * 1000)
    monkeypatch.setattr(evaluation, "resolve_model_path", lambda path: base)
    return cfg


def _overlap(calls) -> int:
    return _events_overlap([(name, gpus, start, end) for name, gpus, _, start, end in calls])


@pytest.mark.parametrize("gpus, expect_peak", [("0,1", 2), ("", 1)])
def test_eval_serves_different_base_models_on_different_gpus_at_once(sandbox, monkeypatch, gpus, expect_peak):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", eval={"baselines": []},
                                       models=[{"name": f"m{i}", "path": "p", "template": "gemma"} for i in (1, 2, 3)]))
    prepare_data(cfg)
    calls = _fake_servers(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    s = evaluation._run_eval(cfg)
    assert sorted(s.scored) == ["m1__n0__base", "m2__n0__base", "m3__n0__base"]
    assert _overlap(calls) == expect_peak
    if gpus:
        assert {c[1] for c in calls} == {("0",), ("1",)}
    else:
        assert {c[1] for c in calls} == {()}


@pytest.mark.parametrize("setting, gpu_gb, expect", [("auto", 141, (3, 0.3)), ("auto", 4, (1, None)),
                                                     (2, 141, (2, 0.45)), (1, 141, (1, None))])
def test_eval_serves_base_models_side_by_side_on_one_gpu(sandbox, tmp_path, monkeypatch, setting, gpu_gb, expect):
    """eval.models_per_gpu: the base models' servers share one GPU (their starts
    overlap), each with its part of 0.9 of the memory; auto fits 3 x the
    weights each: 3 models of 1 GB on 141 GB -> all three; on 4 GB: 0.9 x 4 /
    3 = 1.2 -> one at a time."""
    cfg = _sized_models(sandbox, tmp_path, monkeypatch, 3, gpu_gb, models_per_gpu=setting)
    calls = _fake_servers(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    s = evaluation._run_eval(cfg)
    assert sorted(s.scored) == ["m1__n0__base", "m2__n0__base", "m3__n0__base"]
    k, share = expect
    assert _overlap(calls) == k
    assert {c[1] for c in calls} == {("0",)}
    assert [c[2] for c in calls] == [pytest.approx(share) if share else None] * 3


def test_server_pinned_to_its_gpus(sandbox, tmp_path):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    srv = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["2", "3"])
    assert srv._env()["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert srv.argv[srv.argv.index("--tensor-parallel-size") + 1] == "2"
    one = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["1"])
    assert one._env()["CUDA_VISIBLE_DEVICES"] == "1" and "--tensor-parallel-size" not in one.argv


def test_server_throughput_settings_and_the_plain_way(sandbox, tmp_path, monkeypatch):
    import lorasweep.infra.tools as tools
    import lorasweep.serve.serve as serve

    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: False)
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    adapters = {"a": tmp_path / "a", "b": tmp_path / "b"}
    tuned = VLLMServer(cfg, cfg.models[0], adapters, None, tmp_path / "s.log")
    argv = tuned.argv
    assert argv[argv.index("--block-size") + 1] == str(serve.CPU_BLOCK_SIZE)
    assert argv[argv.index("--max-loras") + 1] == "2" and "--enable-prefix-caching" in argv
    plain = VLLMServer(load_config(cfg.path, set_args=["eval.tune_server=false"]), cfg.models[0], adapters, None,
                       tmp_path / "s.log")
    assert "--block-size" not in plain.argv and "--max-loras" not in plain.argv
    # Tuned on a CPU: vLLM's server module run through lorasweep's LoRA kernels;
    # plain: the module itself.
    assert Path(argv[1]).name == "cpu_lora.py" and Path(argv[1]).is_file() and argv[2] == serve.SERVER_MODULE
    assert plain.argv[1:3] == ["-m", serve.SERVER_MODULE]
    assert plain.argv[plain.argv.index("--dtype") + 1] == "float32"   # same numbers either way
    own = VLLMServer(load_config(cfg.path, set_args=['eval.extra_server_args=["--block-size","64"]']),
                     cfg.models[0], adapters, None, tmp_path / "s.log")
    assert own.argv.count("--block-size") == 1 and own.argv[-1] == "64"   # the user's choice wins


def test_kv_cache_tokens_from_the_server_log(tmp_path):
    from lorasweep.serve.serve import kv_cache_tokens

    log = tmp_path / "server.log"
    log.write_text("(EngineCore pid=1) INFO [kv_cache_utils.py:2327] CPU KV cache size: 52,745 tokens, "
                   "Maximum concurrency for 1,024 tokens per request: 51.51x\n")
    assert kv_cache_tokens(log) == 52745
    log.write_text("nothing yet\n")
    assert kv_cache_tokens(log) is None and kv_cache_tokens(tmp_path / "missing.log") is None


def test_ray_shares_one_gpu_between_runs_only_for_single_gpu_runs(sandbox, monkeypatch):
    import ray

    from lorasweep.train.executor import _task_options

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 2.0})
    assert _task_options(cfg, 1)["num_gpus"] == 1
    assert _task_options(cfg, 1, share=4)["num_gpus"] == 0.25   # four runs on each GPU
    assert _task_options(cfg, 2)["num_gpus"] == 2
    with pytest.raises(ValueError, match="runs_per_gpu=2 needs train.gpus_per_run=1"):
        _task_options(cfg, 2, share=2)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Resources": {"CPU": 16.0}, "Alive": True}])
    assert _task_options(cfg, 1, share=4)["num_gpus"] == 0   # no GPU in the cluster: CPU jobs


@pytest.mark.parametrize("n_models, expect_share, expect_peak", [(2, None, 2), (3, 0.45, 3)])
def test_models_share_a_gpu_only_when_there_are_more_models_than_gpus(sandbox, tmp_path, monkeypatch, n_models,
                                                                      expect_share, expect_peak):
    """2 models on 2 GPUs: one each, all its memory; 3 on 2: two on one GPU (0.45 each)
    and one on the other (the free slots go round-robin)."""
    cfg = _sized_models(sandbox, tmp_path, monkeypatch, n_models, 141)
    calls = _fake_servers(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    evaluation._run_eval(cfg)
    assert [c[2] for c in calls] == [pytest.approx(expect_share) if expect_share else None] * n_models
    assert _overlap(calls) == expect_peak
    assert {c[1] for c in calls} == {("0",), ("1",)}   # both GPUs used, never three servers on one
    assert max(sum(c[1] == g for c in calls) for g in {c[1] for c in calls}) <= 2


@pytest.mark.parametrize("gpus, alongside", [("0", True), ("", False)])
def test_baselines_run_while_gpu_servers_run_and_after_them_on_a_cpu(sandbox, tmp_path, monkeypatch, gpus,
                                                                     alongside):
    cfg = _sized_models(sandbox, tmp_path, monkeypatch, 2, 141, baselines=["tfidf"])
    calls = _fake_servers(monkeypatch)
    ran = []

    def fake_baselines(cfg_, test):
        start = time.time()
        time.sleep(0.5)
        ran.append((start, time.time()))
        return ["baseline-tfidf-logreg__n10__seed1"], []

    monkeypatch.setattr(evaluation, "_baselines", fake_baselines)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    s = evaluation._run_eval(cfg)
    assert "baseline-tfidf-logreg__n10__seed1" in s.scored and len(ran) == 1
    servers_end = max(c[4] for c in calls)
    assert (ran[0][0] < servers_end) == alongside
