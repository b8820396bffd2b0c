import json
import pickle

import matplotlib
import pandas as pd

from conftest import write_experiment
from lorasweep import plots
from lorasweep import results as R
from lorasweep.atomic import atomic_write_json
from lorasweep.config import load_config
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
