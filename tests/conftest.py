import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lorasweep.data.demo_data import LABELS as DEMO_LABELS  # noqa: E402

DEMO_PROMPT = "关系分类：{labels}\n句子：{text}\n人物：{entity1}、{entity2}\n关系："


def write_experiment(path: Path, **over) -> Path:
    import yaml

    cfg = {
        "name": path.stem,
        "task": {"type": "relation_classification", "labels": list(DEMO_LABELS), "prompt": DEMO_PROMPT},
        "data": {"source": "generate:people_relations", "generate_size": 200, "test_size": 30},
        "models": [{"name": "m1", "path": "embedded:gemma-3-270m", "template": "gemma"}],
        "train_sizes": [10, 20],
        "seeds": [1],
    }
    for k, v in over.items():
        cfg[k] = v
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A repository root of its own: experiments/, data/, dataset_info.json under tmp."""
    (tmp_path / "experiments").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("LORASWEEP_ROOT", str(tmp_path))
    return tmp_path


def stand_in_trainer(tmp_path: Path, source: str) -> tuple[Path, Path]:
    """A stand-in llamafactory-cli (the Python `source`, run by this interpreter)
    and a model folder for it: (cli, model)."""
    cli = tmp_path / "fake-cli"
    cli.write_text("#!" + sys.executable + "\n" + source)
    cli.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return cli, model


def run_stages(root: Path, exp: Path, *stages: str, timeout: int = 1500) -> list:
    """Run shell/<stage>.sh on `exp` with LORASWEEP_ROOT=root, one stage after the
    other, each required to succeed; their completed processes, in order."""
    import os
    import subprocess
    import time

    env = {**os.environ, "LORASWEEP_ROOT": str(root)}
    done = []
    for stage in stages:
        t0 = time.time()
        p = subprocess.run(["bash", str(ROOT / "shell" / f"{stage}.sh"), str(exp)], env=env,
                           capture_output=True, text=True, timeout=timeout)
        print(f"--- {stage} ({time.time() - t0:.0f} s, exit {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        assert p.returncode == 0, p.stderr[-3000:]
        done.append(p)
    return done
