import json

from lorasweep.baselines import run_baselines
from lorasweep.config import load_config
from lorasweep.plan import baseline_runs
from lorasweep.score import is_scored
from lorasweep.splits import load_test
from conftest import write_experiment


def test_tfidf_baseline_learns_the_demo_task_and_improves_with_data(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml", train_sizes=[20, 300],
                                       data={"source": "generate:people_relations", "generate_size": 600,
                                             "test_size": 150}, eval={"baselines": ["tfidf"]}))
    test = load_test(cfg)
    done = run_baselines(cfg, test)
    assert done == ["baseline-tfidf-logreg__n20__seed1", "baseline-tfidf-logreg__n300__seed1"]
    runs = baseline_runs(cfg)
    assert all(is_scored(r, "classifier") for r in runs)
    small, big = (json.loads((r.folder() / "metrics.classifier.json").read_text())["metrics"] for r in runs)
    assert big["f1_macro"] > small["f1_macro"]
    assert big["invalid"] == 0 and big["n"] == 150
    assert run_baselines(cfg, test) == []   # finished runs are skipped
