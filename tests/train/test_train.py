"""Training orchestration with a stand-in llamafactory-cli (a small script):
the real one runs in tests/e2e."""
import json
import stat

import pytest
import yaml

from conftest import DEMO_LABELS, write_experiment
from lorasweep.config import load_config
from lorasweep.plan import train_runs
from lorasweep.runspec import FAILED_MARKER as FAILED
from lorasweep.runspec import TRAINED_MARKER as RESULT
from lorasweep.train.train import resolved_train_yaml, run_training

FAKE_CLI = """#!/usr/bin/env python3
import json, sys, yaml, pathlib
args = yaml.safe_load(open(sys.argv[2]))
print("fake training", args["dataset"])
if args["dataset"].endswith("n20_seed1"):
    print("CUDA out of memory (pretend)"); sys.exit(3)
out = pathlib.Path(args["output_dir"]); out.mkdir(parents=True, exist_ok=True)
(out / "adapter_model.safetensors").write_bytes(b"x")
(out / "train_results.json").write_text(json.dumps({"train_runtime": 1.0, "train_samples_per_second": 10.0, "train_loss": 0.5}))
"""


def _cfg(sandbox, tmp_path):
    cli = tmp_path / "fake-cli"
    cli.write_text(FAKE_CLI.replace("#!/usr/bin/env python3", "#!" + __import__("sys").executable))
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20, 30],
                                        models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                        train={"llamafactory_cli": str(cli)}))


def test_resolved_yaml(sandbox, tmp_path):
    cfg = _cfg(sandbox, tmp_path)
    run = train_runs(cfg)[0]
    args = resolved_train_yaml(cfg, run)
    assert args["dataset"] == "x__n10_seed1" and args["seed"] == 1 and args["template"] == "gemma"
    assert args["output_dir"] == str(run.folder() / "adapter")
    assert args["dataset_dir"] == str(sandbox)


def test_failed_run_recorded_and_sweep_goes_on_then_skips_finished(sandbox, tmp_path):
    cfg = _cfg(sandbox, tmp_path)
    s = run_training(cfg)
    assert sorted(s.done) == ["m1__n10__seed1", "m1__n30__seed1"]
    assert list(s.failed) == ["m1__n20__seed1"] and "exit code 3" in s.failed["m1__n20__seed1"]
    runs = {r.run_id: r for r in train_runs(cfg)}
    failed = json.loads((runs["m1__n20__seed1"].folder() / FAILED).read_text())
    assert "CUDA out of memory (pretend)" in failed["error"]       # the log tail is kept
    assert not (runs["m1__n20__seed1"].folder() / RESULT).exists()
    assert yaml.safe_load((runs["m1__n10__seed1"].folder() / "train.yaml").read_text())["seed"] == 1
    finished = (runs["m1__n10__seed1"].folder() / RESULT).read_text()
    # Second pass: finished runs untouched, the failed one retried (fails again).
    s2 = run_training(cfg)
    assert sorted(s2.skipped) == ["m1__n10__seed1", "m1__n30__seed1"] and list(s2.failed) == ["m1__n20__seed1"]
    assert (runs["m1__n10__seed1"].folder() / RESULT).read_text() == finished
    assert json.loads(finished)["fingerprint"]
    s3 = run_training(cfg, retry_failed=False)
    assert s3.failed["m1__n20__seed1"].startswith("failed earlier") and not s3.done
    # --retry-failed: only the failed run is tried; an unfinished run that never failed waits.
    cfg4 = load_config(cfg.path, set_args=["train_sizes=[10,20,30,40]"])
    s4 = run_training(cfg4, only_failed=True)
    assert list(s4.failed) == ["m1__n20__seed1"] and s4.not_started == ["m1__n40__seed1"] and not s4.done


def test_preflight_reports_missing_model_and_cli_together(sandbox, tmp_path):
    import pytest

    from lorasweep.config import ConfigError

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml",
                                       models=[{"name": "m", "path": str(tmp_path / "nomodel"), "template": "qwen"}],
                                       train={"llamafactory_cli": str(tmp_path / "no-cli")}))
    with pytest.raises(ConfigError) as e:
        run_training(cfg)
    msg = str(e.value)
    assert "2 problem(s) found before train" in msg
    assert "no checkpoint at" in msg and "no-cli not found" in msg
    assert not (sandbox / "experiments" / "x" / "runs").exists()   # nothing started


def test_changed_settings_stop_train_sh_until_retrain_changed(sandbox, tmp_path, capsys):
    from lorasweep.cli import main

    cfg = _cfg(sandbox, tmp_path)
    run_training(cfg)                                           # n10, n30 trained; n20 fails (the fake)
    runs = {r.run_id: r for r in train_runs(cfg)}
    (runs["m1__n10__seed1"].folder() / "metrics.free.json").write_text("{}")   # it was scored, too
    before = {k: (r.folder() / RESULT).read_text() for k, r in runs.items() if r.is_trained()}
    # learning_rate changed: train.sh stops before training anything and names runs and keys
    assert main(["train", str(cfg.path), "--set", "train.args.learning_rate=0.01"]) == 2
    err = capsys.readouterr().err
    assert "2 finished run(s) were trained with other settings or data" in err
    assert "m1__n10__seed1: learning_rate: 0.0002 -> 0.01" in err and "m1__n30__seed1: learning_rate" in err
    assert "--retrain-changed" in err
    assert {k: (r.folder() / RESULT).read_text() for k, r in runs.items() if r.is_trained()} == before
    # --retrain-changed retrains only those two (n20 is retried as a failed run, as always)
    changed = load_config(cfg.path, set_args=["train.args.learning_rate=0.01"])
    s = run_training(changed, retrain_changed=True)
    assert sorted(s.done) == ["m1__n10__seed1", "m1__n30__seed1"] and not s.skipped
    assert not (runs["m1__n10__seed1"].folder() / "metrics.free.json").exists()   # its old score went with it
    assert yaml.safe_load(runs["m1__n10__seed1"].train_yaml.read_text())["learning_rate"] == 0.01
    # the same settings again: nothing changed, nothing retrained
    s = run_training(changed)
    assert sorted(s.skipped) == ["m1__n10__seed1", "m1__n30__seed1"]


def test_changed_training_data_is_named_as_such(sandbox, tmp_path):
    from lorasweep.train.train import changed_runs

    cfg = _cfg(sandbox, tmp_path)
    run_training(cfg)
    run = train_runs(cfg)[0]
    run.train_file.write_text(run.train_file.read_text().replace("关系", "关 系"), encoding="utf-8")
    assert changed_runs(cfg, train_runs(cfg)) == {run: ["its training data (train_n10_seed1.json) changed"]}


def test_gpu_groups():
    from lorasweep.train.executor import gpu_groups
    assert gpu_groups([], 1) == []
    assert gpu_groups(["0", "1", "2", "3"], 1) == [["0"], ["1"], ["2"], ["3"]]
    assert gpu_groups(["0", "1", "2"], 2) == [["0", "1"]]
    with pytest.raises(ValueError, match="only 1 GPU"):
        gpu_groups(["0"], 2)


def _peak(recs) -> int:
    """The most runs training at one moment, from their start and end times."""
    events = sorted([(r["start"], 1) for r in recs] + [(r["end"], -1) for r in recs])
    running, peak = 0, 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("share", [1, 2])
def test_runs_in_parallel_on_the_gpus(sandbox, tmp_path, monkeypatch, share):
    """With 2 (pretend) GPUs, two runs train at once, each pinned to its own
    GPU; with train.runs_per_gpu=2, four (two on each GPU)."""
    cli = tmp_path / "slow-cli"
    cli.write_text("#!" + __import__("sys").executable + """
import json, os, sys, time, yaml, pathlib
args = yaml.safe_load(open(sys.argv[2]))
out = pathlib.Path(args["output_dir"]); out.mkdir(parents=True, exist_ok=True)
start = time.time(); time.sleep(1.5)
(out / "adapter_model.safetensors").write_bytes(b"x")
(out / "train_results.json").write_text(json.dumps({"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}))
""")
    cli.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20, 30, 40],
                                       models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                       train={"llamafactory_cli": str(cli), "runs_per_gpu": share}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    _fake_nvidia_smi(tmp_path, monkeypatch, {"0": "9.0", "1": "7.0"})   # an H100 and a V100
    s = run_training(cfg)
    assert len(s.done) == 4 and not s.failed
    recs = [json.loads((r.folder() / "adapter" / "train_results.json").read_text()) for r in train_runs(cfg)]
    assert {r["gpu"] for r in recs} == {"0", "1"}
    # bf16 where the GPU has it (recorded in the run's train.yaml), float32 on the older one
    for r, rec in zip(train_runs(cfg), recs, strict=True):
        assert yaml.safe_load(r.train_yaml.read_text()).get("bf16", False) is (rec["gpu"] == "0")
    # At any moment at most 2 x share ran, share on each GPU, and that many did overlap.
    assert _peak(recs) == 2 * share
    for gpu in ("0", "1"):
        assert _peak([r for r in recs if r["gpu"] == gpu]) == share
    assert s.wall_s < 4 / share * 1.5


def test_sigterm_stops_the_sweep_and_starts_no_further_run(sandbox, tmp_path):
    """SIGTERM during the first of three runs: the trainer is stopped and no other run starts."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cli = tmp_path / "slow-cli"
    cli.write_text("#!" + sys.executable + """
import sys, time, yaml, pathlib
args = yaml.safe_load(open(sys.argv[2]))
pathlib.Path(args["output_dir"]).mkdir(parents=True, exist_ok=True)
(pathlib.Path(args["output_dir"]).parent / "started").write_text("x")
time.sleep(60)
""")
    cli.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    exp = write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20, 30],
                           models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                           train={"llamafactory_cli": str(cli)})
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    h = subprocess.Popen([sys.executable, "-m", "lorasweep", "train", str(exp)],
                         env={**os.environ, "PYTHONPATH": src, "LORASWEEP_ROOT": str(sandbox)},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = sandbox / "experiments" / "x" / "runs" / "m1"
    deadline = time.time() + 60
    while time.time() < deadline and not (runs / "n10" / "seed1" / "started").exists():
        time.sleep(0.2)
    h.send_signal(signal.SIGTERM)
    h.wait(timeout=30)
    time.sleep(1)
    assert h.returncode != 0
    assert sorted(p.parent.parent.name for p in runs.glob("n*/seed1/started")) == ["n10"]
    assert not (runs / "n10" / "seed1" / "train_result.json").exists()
    out = subprocess.run(["pgrep", "-f", str(cli)], capture_output=True, text=True).stdout
    assert not out.strip()


def test_fingerprint_ignores_where_things_live_but_not_what_defines_the_run(sandbox, tmp_path, monkeypatch):
    from lorasweep.train.train import fingerprint

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    run = train_runs(cfg)[0]
    before = fingerprint(cfg, run)
    monkeypatch.setenv("LORASWEEP_HOME", str(tmp_path / "elsewhere"))   # moved cache
    monkeypatch.setenv("LORASWEEP_ROOT", str(tmp_path / "moved"))       # moved checkout
    assert fingerprint(cfg, run) == before
    changed = load_config(cfg.path, set_args=["train.args.learning_rate=0.01"])
    assert fingerprint(changed, run) != before


def test_fingerprint_of_a_named_prompt_run_hashes_the_file_it_trains_on(sandbox):
    """With named prompts the training file carries the prompt's name; the
    fingerprint must read that file (it once read a path without the name)."""
    from lorasweep.data.splits import prepare_data
    from lorasweep.train.train import fingerprint

    cfg = load_config(write_experiment(
        sandbox / "experiments" / "x.yaml",
        task={"type": "relation_classification", "labels": list(DEMO_LABELS),
              "prompt": {"terse": "{text}|{entity1}|{entity2}", "long": "请判断：{text} {entity1} {entity2}"}},
        data={"source": "generate:people_relations", "generate_size": 200, "test_size": 30}))
    run = next(r for r in train_runs(cfg) if r.prompt == "terse")
    assert run.train_file.name == "train_terse__n10_seed1.json"
    assert resolved_train_yaml(cfg, run)["dataset"] == run.dataset
    prepare_data(cfg)
    registry = json.loads((sandbox / "dataset_info.json").read_text())
    assert (sandbox / registry[run.dataset]["file_name"]) == run.train_file and run.train_file.is_file()
    before = fingerprint(cfg, run)
    run.train_file.write_text(run.train_file.read_text().replace("|", "/"), encoding="utf-8")   # other data
    assert fingerprint(cfg, run) != before


def test_trainer_argv_uses_the_fast_loss_launcher_where_a_training_python_is(sandbox, tmp_path):
    from lorasweep.train.train import trainer_argv

    cfg = _cfg(sandbox, tmp_path)               # a stand-in llamafactory-cli with no python beside it
    run = train_runs(cfg)[0]
    assert trainer_argv(cfg, run) == [cfg.train.llamafactory_cli, "train", str(run.train_yaml)]
    env = tmp_path / "env" / "bin"
    env.mkdir(parents=True)
    (env / "python").symlink_to(__import__("sys").executable)
    (env / "llamafactory-cli").write_text("#!/bin/sh\n")
    with_env = load_config(cfg.path, set_args=[f"train.llamafactory_cli={env / 'llamafactory-cli'}"])
    argv = trainer_argv(with_env, run)
    assert argv[0] == str(env / "python") and argv[1].endswith("envscripts/fast_loss.py")
    assert argv[2:] == ["train", str(run.train_yaml)]
    off = load_config(cfg.path, set_args=[f"train.llamafactory_cli={env / 'llamafactory-cli'}", "train.fast_loss=false"])
    assert trainer_argv(off, run) == [str(env / "llamafactory-cli"), "train", str(run.train_yaml)]


def test_progress_bar_follows_the_trainer_log_and_waits_for_whole_lines(sandbox, tmp_path):
    from lorasweep.train.train import TrainProgress, fast_loss_state

    run = train_runs(_cfg(sandbox, tmp_path))[0]
    run.adapter_dir.mkdir(parents=True)
    step = lambda i: json.dumps({"current_steps": i, "total_steps": 10, "loss": 2.0 / i,  # noqa: E731
                                 "remaining_time": f"0:00:{10 - i:02d}"})
    run.trainer_log.write_text(step(1) + "\n" + step(2) + "\n" + step(3)[:20])   # the third still being written
    progress = TrainProgress(run)
    progress.update()
    assert progress.bar.total == 10 and progress.bar.n == 2 and "loss 1.0000" in progress.bar.postfix
    with open(run.trainer_log, "a") as f:
        f.write(step(3)[20:] + "\n")
    progress.update()
    assert progress.bar.n == 3 and "left 0:00:07" in progress.bar.postfix
    progress.close()
    assert fast_loss_state(run) is None
    run.train_log.write_text("x\nlorasweep: fast loss on (Gemma3ForCausalLM): logits at ...\ny\n")
    assert fast_loss_state(run).startswith("on (Gemma3ForCausalLM)")


def test_a_run_past_its_timeout_is_killed_and_recorded(sandbox, tmp_path):
    cli = tmp_path / "slow-cli"
    cli.write_text("#!/bin/sh\nsleep 60\n")
    cli.chmod(0o755)
    cfg = _cfg(sandbox, tmp_path)
    cfg = load_config(cfg.path, set_args=[f"train.llamafactory_cli={cli}", "train.timeout_s=1", "train_sizes=[10]"])
    s = run_training(cfg)
    assert list(s.failed) == ["m1__n10__seed1"] and "timed out" in s.failed["m1__n10__seed1"]


def test_progress_keeps_the_last_loss_when_the_final_record_has_none(sandbox, tmp_path):
    from lorasweep.train.train import TrainProgress

    run = train_runs(_cfg(sandbox, tmp_path))[0]
    run.adapter_dir.mkdir(parents=True)
    run.trainer_log.write_text(json.dumps({"current_steps": 8, "total_steps": 8, "loss": 3.3243}) + "\n"
                               + json.dumps({"current_steps": 8, "total_steps": 8, "remaining_time": "0:00:00"})
                               + "\n")
    progress = TrainProgress(run)
    progress.update()
    assert progress.bar.n == 8 and "loss 3.3243" in progress.bar.postfix and "nan" not in progress.bar.postfix
    progress.close()


def test_a_models_own_train_args_override_the_experiments_for_its_runs_only(sandbox):
    from lorasweep.train.train import fingerprint

    two = [{"name": "small", "path": "embedded:gemma-3-270m", "template": "gemma"},
           {"name": "big", "path": "embedded:gemma-3-270m", "template": "gemma",
            "train_args": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}}]
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", models=two,
                                       train={"args": {"per_device_train_batch_size": 8}}))
    runs = {r.model: r for r in train_runs(cfg) if r.size == cfg.train_sizes[0]}
    small, big = resolved_train_yaml(cfg, runs["small"]), resolved_train_yaml(cfg, runs["big"])
    assert small["per_device_train_batch_size"] == 8 and "gradient_accumulation_steps" not in cfg.train.args
    assert big["per_device_train_batch_size"] == 2 and big["gradient_accumulation_steps"] == 4
    # the run's identity includes them: the same model without its own args is another run
    plain = load_config(write_experiment(sandbox / "experiments" / "x.yaml", models=[two[0], {**two[1], "train_args": {}}],
                                         train={"args": {"per_device_train_batch_size": 8}}))
    assert fingerprint(plain, runs["big"]) != fingerprint(cfg, runs["big"])
    assert fingerprint(plain, runs["small"]) == fingerprint(cfg, runs["small"])


def _fake_nvidia_smi(tmp_path, monkeypatch, caps: dict[str, str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = "\\n".join(f"{i}, {c}" for i, c in caps.items())
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\nprintf '{lines}\\n'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")


def test_bf16_only_on_gpus_that_have_it(tmp_path, monkeypatch):
    from lorasweep.infra.tools import bf16_capable

    _fake_nvidia_smi(tmp_path, monkeypatch, {"0": "9.0", "1": "7.0"})
    assert bf16_capable(["0"]) and not bf16_capable(["1"]) and not bf16_capable(["0", "1"])
    assert not bf16_capable([]) and not bf16_capable(["5"])
