"""runresult.py: a scored run's record, written into its folder marker last, and
still readable from pickles that name it by its former homes (lorasweep.score, lorasweep.runresult)."""
import json
import pickle

import pytest

from conftest import write_experiment
from lorasweep.config import load_config
from lorasweep.plan import train_runs
from lorasweep.score.runresult import RunResult, write_run_result


def _result(run, cfg) -> RunResult:
    return RunResult(run.run_id, cfg.name, run.model, run.size, run.seed, "free", list(cfg.task.labels),
                     references=["夫妻", "父母"], raw=["夫妻", "好"], predictions=["夫妻", "<invalid>"],
                     metrics={"macro_f1": 0.5})


def test_a_result_is_written_with_its_predictions_and_the_scored_marker(sandbox):
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    run = train_runs(cfg)[0]
    test = [{"label": "夫妻"}, {"label": "父母"}]
    write_run_result(run, _result(run, cfg), test)
    lines = [json.loads(x) for x in run.predictions_file("free").read_text(encoding="utf-8").splitlines()]
    assert [(x["i"], x["correct"]) for x in lines] == [(0, True), (1, False)]
    marker = json.loads(run.metrics_file("free").read_text())
    assert marker["metrics"] == {"macro_f1": 0.5} and "raw" not in marker and "predictions" not in marker
    assert pickle.loads(run.result_file("free").read_bytes()).raw == ["夫妻", "好"]


@pytest.mark.parametrize("former", ["lorasweep.runresult", "lorasweep.score"])
def test_a_pickle_naming_the_class_by_a_former_module_still_loads(sandbox, monkeypatch, former):
    """RunResult lived in lorasweep.score, then lorasweep.runresult, before score/runresult.py: pickles
    written then name those modules, and the shims there (runresult.py, score/__init__.py) still load them."""
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    run = train_runs(cfg)[0]
    res = _result(run, cfg)
    # built by hand: protocol 0 names the class as text ("c<module>\nRunResult\n")
    old = pickle.dumps(res, protocol=0).replace(b"clorasweep.score.runresult\n", f"c{former}\n".encode())
    assert f"c{former}\nRunResult\n".encode() in old
    assert pickle.loads(old).predictions == ["夫妻", "<invalid>"]
    # as the writer (atomic_write_pickle, the highest protocol) wrote it when the class's module was `former`
    monkeypatch.setattr(RunResult, "__module__", former)
    old = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
    monkeypatch.undo()
    assert former.encode() in old and b"lorasweep.score.runresult" not in old
    loaded = pickle.loads(old)
    assert type(loaded) is RunResult and loaded.predictions == ["夫妻", "<invalid>"]


def test_the_training_record_round_trips_and_reads_older_records(sandbox):
    from lorasweep.infra.atomic import atomic_write_json
    from lorasweep.runspec import TrainRecord

    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml"))
    run = train_runs(cfg)[0]
    run.folder().mkdir(parents=True)
    TrainRecord(run.run_id, model=run.model, size=run.size, train_wall_s=12.5, steps=40, method="lora").write(run)
    got = TrainRecord.read(run)
    assert (got.train_wall_s, got.steps, got.method, got.node) == (12.5, 40, "lora", None)
    # a record from before some fields existed, with one this version does not know
    atomic_write_json(run.trained_marker, {"train_wall_s": 3.0, "some_later_field": 1})
    old = TrainRecord.read(run)
    assert (old.run_id, old.train_wall_s, old.epochs) == (run.run_id, 3.0, None)
