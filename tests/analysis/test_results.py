import json
import pickle

import matplotlib
import pandas as pd

from conftest import write_experiment
from lorasweep.analysis import plots
from lorasweep.analysis import results as R
from lorasweep.config import load_config
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.plan import eval_runs

matplotlib.use("Agg")


def test_collect_and_plot(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20], seeds=[1, 2]))
    for i, r in enumerate(eval_runs(cfg)):
        atomic_write_json(r.folder() / "metrics.free.json", {"decoding": "free", "score_s": 1.0,
                                                       "metrics": {"n": 10, "accuracy": 0.1 * i, "f1_macro": 0.1 * i,
                                                                   "invalid": 1, "invalid_rate": 0.1}})
        if not r.is_base:
            atomic_write_json(r.folder() / "train_result.json", {"train_wall_s": 5.0, "train_samples_per_s": 2.0})
    df = R.collect_results(cfg)
    assert len(df) == 5 and list(df.sort_values("size")["size"]) == [0, 10, 10, 20, 20]
    with open(sandbox / "experiments" / "x" / "results.pkl", "rb") as f:
        assert pickle.load(f).equals(df)
    assert len(json.loads((sandbox / "experiments" / "x" / "results.json").read_text())) == 5
    t = R.summary_table(df)
    assert t.loc[("m1", 20), ("score", "mean")] == round((0.3 + 0.4) / 2, 4)
    assert t.loc[("m1", 20), ("seeds", "")] == 2
    fig = plots.plot_learning_curves(df)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 1
    assert R.best_run(df).run_id == "m1__n20__seed2"
    assert isinstance(R.load_results("x"), pd.DataFrame)


def _score_all(cfg):
    for i, r in enumerate(eval_runs(cfg)):
        atomic_write_json(r.metrics_file("free"), {"decoding": "free", "score_s": 1.0,
                                                  "metrics": {"n": 10, "accuracy": 0.5, "f1_macro": 0.05 * i}})


def test_results_collect_every_scored_run_on_disk_and_say_what_the_plan_leaves_out(sandbox, caplog, capsys):
    """train.sh --set seeds=[1,2], then results without it: both seeds' rows stay."""
    from lorasweep.cli import main
    from lorasweep.overrides import record_overrides

    path = write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20], seeds=[1])
    wider = load_config(path, set_args=["seeds=[1,2]"])
    record_overrides(wider, "train")             # what train.sh does
    _score_all(wider)
    (sandbox / "experiments" / "x" / "runs" / "m1" / "stray.json").write_text("{}")   # not a run folder
    assert main(["results", str(path)]) == 0
    df = pd.read_csv(sandbox / "experiments" / "x" / "results.csv")
    assert sorted(df.run_id) == ["m1__n0__base", "m1__n10__seed1", "m1__n10__seed2", "m1__n20__seed1",
                                 "m1__n20__seed2"]
    assert sorted(df[~df.in_plan].run_id) == ["m1__n10__seed2", "m1__n20__seed2"]
    log = caplog.text
    assert "2 scored run(s) on disk are not in the current plan and are included (in_plan=False): " \
           "m1__n10__seed2, m1__n20__seed2; the plan names fewer; train.sh last ran with --set 'seeds=[1,2]'" in log
    assert "this command with no --set" in log
    # The same --set: no such note.
    caplog.clear()
    assert main(["results", str(path), "--set", "seeds=[1,2]"]) == 0
    assert "not in the current plan" not in caplog.text and "last ran with" not in caplog.text


def test_scored_on_disk_reads_run_folders_back(sandbox):
    from lorasweep.runspec import scored_on_disk

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10], seeds=[3],
                                       task={"type": "text_classification", "labels": ["a", "b"],
                                             "prompt": {"terse": "{text}", "long": "分类：{text}"}}))
    _score_all(cfg)
    found = scored_on_disk("x")
    assert sorted((r.run_id, d) for r, d in found) == sorted((r.run_id, "free") for r in eval_runs(cfg))
    assert {r.prompt for r, _ in found} == {"terse", "long"}


def test_training_curves_come_from_each_runs_trainer_log(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[10, 20], seeds=[1]))
    _score_all(cfg)
    for r in eval_runs(cfg):
        if not r.is_base:
            r.adapter_dir.mkdir(parents=True)
            lines = [{"current_steps": s, "total_steps": 4, "loss": 2.0 / s, "epoch": s / 2} for s in (1, 2, 3, 4)]
            lines.append({"current_steps": 4, "total_steps": 4, "epoch": 2.0})        # the closing record: no loss
            r.trainer_log.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    df = R.collect_results(cfg)
    curves = R.training_curves(cfg, df)
    assert sorted(curves.run_id.unique()) == ["m1__n10__seed1", "m1__n20__seed1"]
    assert list(curves[curves.run_id == "m1__n10__seed1"]["loss"]) == [2.0, 1.0, 2.0 / 3, 0.5]
    fig = plots.plot_loss_curves(curves)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
