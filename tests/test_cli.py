import subprocess
import sys

from conftest import ROOT, write_experiment
from lorasweep.cli import main


def test_dry_run_prints_plan_and_resolved_yaml(sandbox, capsys):
    exp = write_experiment(sandbox / "experiments" / "x.yaml", seeds=[1, 2])
    assert main(["train", str(exp), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 model(s) x 2 size(s) x 2 seed(s) = 4 training run(s)" in out
    assert "m1__n20__seed2" in out and "dataset: x__n10_seed1" in out
    assert "4 to train, 0 already trained; executor: local, one at a time on the CPU" in out
    assert not (sandbox / "experiments" / "x").exists()   # nothing written
    done = sandbox / "experiments" / "x" / "runs" / "m1" / "n10" / "seed2"
    done.mkdir(parents=True)
    (done / "train_result.json").write_text("{}")
    assert main(["plan", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "m1__n10__seed2" in out and "3 to train, 1 already trained" in out
    assert [line.split()[1] for line in out.splitlines() if "m1__n10__seed2" in line] == ["trained"]


def test_dry_run_of_a_model_not_here_shows_the_plan_and_says_why_there_is_no_yaml(sandbox, capsys, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(sandbox / "ms"))
    exp = write_experiment(sandbox / "experiments" / "x.yaml",
                           models=[{"name": "glm", "path": "modelscope:ZhipuAI/glm-4-9b-chat", "template": "glm4"}])
    assert main(["train", str(exp), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "glm__n10__seed1" in out and "Traceback" not in out
    assert "no resolved LLaMA-Factory YAML: model glm: modelscope:ZhipuAI/glm-4-9b-chat: not in the ModelScope cache" in out


def test_the_plan_says_how_many_runs_train_at_once_on_the_gpus(sandbox, capsys, monkeypatch):
    exp = write_experiment(sandbox / "experiments" / "x.yaml")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert main(["plan", str(exp), "--set", "train.runs_per_gpu=4"]) == 0
    assert "executor: local, 8 at a time on GPU(s) [['0'], ['1']], 4 on each" in capsys.readouterr().out
    assert main(["plan", str(exp), "--set", "train.gpus_per_run=3"]) == 0
    assert "cannot start: train.gpus_per_run=3 but only 2 GPU(s) are visible" in capsys.readouterr().out


def test_set_overrides_reach_the_plan(sandbox, capsys):
    exp = write_experiment(sandbox / "experiments" / "x.yaml")
    assert main(["plan", str(exp), "--set", "train_sizes=[5]"]) == 0
    assert "= 1 training run(s)" in capsys.readouterr().out


def test_config_error_exit_code_and_message(sandbox, capsys):
    exp = write_experiment(sandbox / "experiments" / "x.yaml", sedes=[1])
    assert main(["plan", str(exp)]) == 2
    assert "did you mean 'seeds'?" in capsys.readouterr().err


def test_module_entry_point_default_experiment():
    p = subprocess.run([sys.executable, "-m", "lorasweep", "plan"], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert "experiment demo:" in p.stdout
