from lorasweep.config import load_config
from lorasweep.plan import RunSpec, describe, eval_runs, train_runs
from conftest import write_experiment


def test_grid_and_ids(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", seeds=[1, 2],
                                       models=[{"name": "a", "path": "p", "template": "gemma"},
                                               {"name": "b", "path": "q", "template": "qwen"}]))
    runs = train_runs(cfg)
    assert len(runs) == 2 * 2 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert runs == train_runs(cfg)   # deterministic
    r = RunSpec("x", "a", 10, 2)
    assert r.run_id == "a__n10__seed2"
    assert r.folder() == sandbox / "experiments" / "x" / "runs" / "a" / "n10" / "seed2"
    base = [r for r in eval_runs(cfg) if r.is_base]
    assert [b.run_id for b in base] == ["a__n0__base", "b__n0__base"]
    assert "8 training run(s)" in describe(cfg)
