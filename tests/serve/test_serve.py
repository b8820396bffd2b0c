"""serve.py: how full/freeze-tuned models are served (their own server, their share of a GPU)."""
import json

from lorasweep.config import load_config
from lorasweep.serve.serve import VLLMServer, servers_at_once

GB = 1_000_000_000


def _one_model_config(tmp_path, model_path):
    """A one-model text-classification experiment whose model is the folder `model_path`."""
    exp = tmp_path / "x.yaml"
    exp.write_text(json.dumps({"name": "x", "task": {"type": "text_classification", "labels": ["a", "b"],
                                                     "prompt": "{text}"},
                               "data": {"source": "d.jsonl"}, "train_sizes": [10],
                               "models": [{"name": "m1", "path": str(model_path), "template": "gemma"}]}))
    return load_config(exp)


def test_servers_at_once_fit_three_times_their_weights_in_the_gpus_share():
    # 0.9 x 141 GB / (3 x 15 GB) = 2.8 -> 2 at once (a 7B bf16 model on an H200)
    assert servers_at_once("auto", 8, 15 * GB, 141 * GB) == 2
    # a 0.5B model (1 GB): 0.9 x 141 / 3 = 42 fit; capped at the runs, then at 8
    assert servers_at_once("auto", 5, 1 * GB, 141 * GB) == 5
    assert servers_at_once("auto", 20, 1 * GB, 141 * GB) == 8
    # larger than a third of the share: still one (vLLM says whether it fits)
    assert servers_at_once("auto", 4, 60 * GB, 80 * GB) == 1
    # a CPU, or a single run: one at a time
    assert servers_at_once("auto", 4, 1 * GB, None) == 1
    assert servers_at_once(3, 1, 1 * GB, 80 * GB) == 1
    # a number is taken as given, up to the runs
    assert servers_at_once(3, 8, 60 * GB, 80 * GB) == 3
    assert servers_at_once(3, 2, 1 * GB, 80 * GB) == 2


def test_a_full_tuned_model_is_served_from_its_folder_under_its_run_id(tmp_path, monkeypatch):
    from lorasweep.infra import tools

    monkeypatch.setattr(tools, "gpu_memory_bytes", lambda gpu: 140 * 10**9)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({}))
    cfg = _one_model_config(tmp_path, model)
    ckpt = tmp_path / "runs" / "adapter"
    srv = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["0"], checkpoint=ckpt,
                     served_name="m1__full__n10__seed1", memory_share=0.45)
    argv = srv.argv
    assert argv[argv.index("--model") + 1] == str(ckpt)
    assert argv[argv.index("--served-model-name") + 1] == "m1__full__n10__seed1"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.450"
    # a fixed KV cache, half its share (0.45 x 140 GB / 2): no memory profiling beside other servers
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(int(0.45 * 140 * 10**9 / 2))
    assert "--enable-lora" not in argv
    base = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log")
    assert base.argv[base.argv.index("--model") + 1] == str(model)
    assert "--gpu-memory-utilization" not in base.argv and "--kv-cache-memory-bytes" not in base.argv


def test_a_full_tuned_run_whose_weights_were_deleted_fails_with_the_reason(sandbox):
    from conftest import write_experiment
    from lorasweep.plan import train_runs
    from lorasweep.score.evaluation import EvalSummary, _serve_whole_models

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10],
                                       variants={"full": {"finetuning_type": "full"}}))
    run = train_runs(cfg)[0]
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "config.json").write_text("{}")          # scored once, weights deleted since
    run.trained_marker.write_text(json.dumps({"run_id": run.run_id}))
    summary = EvalSummary()
    _serve_whole_models(cfg, cfg.models[0], [run], None, None, summary)   # no server is started for it
    assert "its weights are gone from" in summary.failed[run.run_id]
    assert "train it again to score it" in summary.failed[run.run_id] and not summary.scored


def test_a_server_that_stopped_says_why_in_one_line(tmp_path):
    # a stand-in server process: writes its last words and exits 3, as a vLLM server
    # killed by an engine error would; state() gives the code and that line
    import sys

    from lorasweep.infra.procs import Child

    cfg = _one_model_config(tmp_path, tmp_path)
    srv = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log")
    assert srv.state() == "the server was stopped"
    srv.child = Child([sys.executable, "-c", "import time; print('loading'); time.sleep(30)"], srv.log_path)
    assert srv.state() == "the server is running"
    srv.child.stop()
    srv.child = Child([sys.executable, "-c", "print('engine core died: RuntimeError: boom\\n'); raise SystemExit(3)"],
                      srv.log_path)
    srv.child.proc.wait()
    assert srv.state() == "the server exited with code 3; its log ends: engine core died: RuntimeError: boom"


def test_a_gpu_server_captures_few_graph_sizes_and_shares_compiler_caches(tmp_path, monkeypatch):
    from lorasweep.infra import tools
    from lorasweep.serve import serve

    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: True)
    monkeypatch.setenv(tools.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv("TRITON_CACHE_DIR", "/mine/triton")        # the user's own setting is kept
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = _one_model_config(tmp_path, model)
    srv = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["0"])
    sizes = json.loads(srv.argv[srv.argv.index("--compilation-config") + 1])["cudagraph_capture_sizes"]
    assert sizes == list(serve.GPU_CAPTURE_SIZES) and max(sizes) == 512
    env = srv._env()
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "home" / "compile" / "vllm")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "home" / "compile" / "inductor")
    assert env["TRITON_CACHE_DIR"] == "/mine/triton"
    assert env[serve.GREEDY_SAMPLER_ENV] == "0"     # greedy answers: no sampler kernels compiled at start
    # the user's own compilation or eager mode wins; so does tune_server: false
    for extra in (["--enforce-eager"], ["--compilation-config", "{}"], ["-O0"]):
        cfg.eval.extra_server_args = extra
        assert "--compilation-config" not in VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log",
                                                        gpus=["0"]).argv[:-len(extra)]
    cfg.eval.extra_server_args = []
    cfg.eval.tune_server = False
    assert "--compilation-config" not in VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log", gpus=["0"]).argv
    # a CPU server keeps vLLM's own compilation settings
    monkeypatch.setattr(tools, "has_nvidia_gpu", lambda: False)
    cfg.eval.tune_server = True
    assert "--compilation-config" not in VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "s.log").argv
