from conftest import write_experiment
from lorasweep.config import load_config
from lorasweep.plan import eval_runs, plan_text, train_runs
from lorasweep.runspec import RunSpec


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
    assert "8 training run(s)" in plan_text(cfg)


def test_prompt_axis(sandbox):
    import json

    from lorasweep.data.splits import prepare_data

    cfg = load_config(write_experiment(
        sandbox / "experiments" / "x.yaml",
        task={"type": "relation_classification", "labels": __import__("conftest").DEMO_LABELS,
              "prompt": {"short": "{text}|{entity1}|{entity2}", "long": "请判断：{text} {entity1} {entity2} {labels}"}}))
    runs = train_runs(cfg)
    assert len(runs) == 2 * 2   # sizes x prompts
    assert {r.run_id for r in runs} == {"m1__short__n10__seed1", "m1__long__n10__seed1",
                                        "m1__short__n20__seed1", "m1__long__n20__seed1"}
    first = cfg.task.prompt_names()[0]
    assert runs[0].folder().parts[-4:] == ("m1", first, "n10", "seed1")
    assert sorted(r.run_id for r in eval_runs(cfg) if r.is_base) == ["m1__long__n0__base", "m1__short__n0__base"]
    assert "x 2 prompt(s)" in plan_text(cfg)
    prepare_data(cfg)
    info = json.loads((sandbox / "dataset_info.json").read_text())
    short = json.loads((sandbox / info["x__short__n10_seed1"]["file_name"]).read_text())
    long = json.loads((sandbox / info["x__long__n10_seed1"]["file_name"]).read_text())
    # Same examples, different prompt wording.
    assert [r["output"] for r in short] == [r["output"] for r in long]
    assert long[0]["instruction"].startswith("请判断：") and "|" in short[0]["instruction"]
