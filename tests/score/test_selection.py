"""Selection without peeking: the validation set (data.val_size) is held out
once, stratified, apart from the test set and every training subset; with
eval.select: val each trained run reports the checkpoint best on it, chosen
from validation metrics alone and recorded before its test answers are read."""
import json
import random
from collections import Counter

import matplotlib
import pytest

from conftest import write_experiment
from lorasweep.analysis import report
from lorasweep.analysis import results as R
from lorasweep.check.check import data_findings
from lorasweep.config import ConfigError, load_config
from lorasweep.data.splits import example_key, load_split, make_splits, prepare_data, to_alpaca, train_subset
from lorasweep.infra import paths
from lorasweep.infra.atomic import atomic_write_json
from lorasweep.plan import eval_runs, plan_text, train_runs
from lorasweep.runspec import TEST, VAL, RunSpec
from lorasweep.score import evaluation
from lorasweep.score.runresult import RunResult, write_run_result
from lorasweep.score.selection import candidates, choose, record_selections
from lorasweep.tasks.metrics import classification_metrics

matplotlib.use("Agg")


def _cfg(sandbox, val_size=40, select="val", save_epochs=(1,), seeds=(1, 2, 3), **over):
    data = {"source": "generate:people_relations", "generate_size": 400, "test_size": 60, "val_size": val_size}
    return load_config(write_experiment(
        sandbox / "experiments" / "x.yaml", train_sizes=[20, 50, 100], seeds=list(seeds),
        data={**data, **over.pop("data", {})},
        train={"save_epochs": list(save_epochs), "args": {"num_train_epochs": 2, "per_device_train_batch_size": 8}},
        eval={"select": select, "baselines": []}, **over))


def _keys(examples):
    return {example_key(ex) for ex in examples}


def test_the_validation_set_is_disjoint_from_the_test_set_and_every_training_subset(sandbox):
    cfg = _cfg(sandbox)
    s = make_splits(cfg)
    assert len(s.val) == 40 and len(s.test) == 60
    assert not _keys(s.val) & _keys(s.test) and not _keys(s.val) & _keys(s.pool) and not _keys(s.test) & _keys(s.pool)
    for seed in cfg.seeds:
        for size in cfg.train_sizes:
            train = _keys(train_subset(s, size, seed))
            assert len(train) == size and not train & _keys(s.val) and not train & _keys(s.test)
    # the test set is the one it would be without a validation set; the validation set is held out once
    assert s.test == make_splits(_cfg(sandbox, val_size=0, select="last", save_epochs=())).test
    assert make_splits(cfg).val == s.val


def test_the_validation_set_is_stratified_like_the_data(sandbox):
    s = make_splits(_cfg(sandbox, val_size=100))
    everything = Counter(s.stratum(ex) for ex in s.pool + s.test + s.val)
    held = Counter(s.stratum(ex) for ex in s.val)
    n = sum(everything.values())
    for label, count in everything.items():
        # each stratum's share of the 100, within one example: e.g. 80 of 400 -> 20 +- 1
        assert abs(held[label] - 100 * count / n) <= 1.0 + 1e-9, (label, held[label], count)


def test_with_a_test_file_the_validation_set_comes_from_the_rest(sandbox):
    rows = [{"text": f"张三和李四{i}", "entity1": "张三", "entity2": "李四", "label": lab}
            for i, lab in enumerate(["夫妻", "朋友", "同事", "兄弟"] * 50)]
    (sandbox / "data" / "all.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (sandbox / "data" / "test.json").write_text(json.dumps(rows[:40], ensure_ascii=False), encoding="utf-8")
    cfg = _cfg(sandbox, task={"type": "relation_classification", "labels": ["夫妻", "朋友", "同事", "兄弟"],
                              "prompt": "{text} {entity1} {entity2}"},
               data={"source": "data/all.json", "test_file": "data/test.json"})
    s = make_splits(cfg)
    assert len(s.test) == 40 and len(s.val) == 40 and len(s.pool) == 200 - 40 - 40
    assert not _keys(s.val) & _keys(s.test) and not _keys(s.val) & _keys(s.pool)
    assert Counter(ex["label"] for ex in s.val) == {"夫妻": 10, "朋友": 10, "同事": 10, "兄弟": 10}


def test_prepare_writes_the_validation_file_and_no_training_file_holds_one_of_its_examples(sandbox):
    cfg = _cfg(sandbox)
    prepare_data(cfg)
    val = json.loads(paths.val_file("x").read_text(encoding="utf-8"))
    assert len(val) == 40 and load_split(cfg, VAL) == val and load_split(cfg, TEST) == json.loads(
        paths.test_file("x").read_text(encoding="utf-8"))
    held = {row["instruction"] for row in to_alpaca(cfg, val)}
    for run in train_runs(cfg):
        trained = {row["instruction"] for row in json.loads(run.train_file.read_text(encoding="utf-8"))}
        assert len(trained) == run.size and not trained & held
    # without a validation set nothing is written for it
    prepare_data(_cfg(sandbox, val_size=0, select="last", save_epochs=(), name="y"))
    assert not paths.val_file("y").exists()


@pytest.mark.parametrize("val_size, message", [
    (340, "data.val_size=340 leaves nothing to train on (400 distinct examples, 60 held out for the test set)"),
    (300, "train_sizes: [50, 100] larger than the 40 examples left for training after the 60 test and 300 "
          "validation examples"),
])
def test_a_validation_set_too_large_is_an_error_in_make_splits_and_in_check(sandbox, val_size, message):
    cfg = _cfg(sandbox, val_size=val_size)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        make_splits(cfg)
    errors, _ = data_findings(cfg)
    assert any(message in e for e in errors)


@pytest.mark.parametrize("over, missing", [
    ({"val_size": 0}, "data.val_size"),
    ({"save_epochs": ()}, "train.save_epochs"),
    ({"val_size": 0, "save_epochs": ()}, "data.val_size and train.save_epochs"),
])
def test_selection_on_the_validation_set_needs_one_and_checkpoints(sandbox, over, missing):
    with pytest.raises(ConfigError, match=f"eval.select: val chooses .* it needs {missing} "):
        _cfg(sandbox, **over)


def test_the_default_reports_the_last_checkpoint_and_plan_says_what_validation_does(sandbox):
    off = _cfg(sandbox, val_size=0, select="last", save_epochs=())
    assert off.eval.select == "last" and off.data.val_size == 0 and "validation" not in plan_text(off)
    text = plan_text(_cfg(sandbox))
    assert "validation: 40 examples held out (data.val_size)" in text and "n + 40 labels" in text
    assert "not used (eval.select: last" in plan_text(_cfg(sandbox, select="last"))


def test_choose_takes_the_best_validation_score_and_a_tie_goes_to_the_earlier_epoch():
    assert choose([("e1", 0.5), ("e2", 0.7), ("last", 0.6)]) == ("e2", 0.7)
    assert choose([("e1", 0.61), ("e2", 0.64), ("last", 0.64)]) == ("e2", 0.64)
    assert choose([("e1", 0.6), ("last", 0.6)]) == ("e1", 0.6)
    assert choose([("last", 0.3)]) == ("last", 0.3)


def _write(cfg, run, split, f1, examples):
    """A scored RunResult whose macro-F1 is about `f1`: that share of the examples answered right."""
    labels, refs = cfg.task.labels, [ex["label"] for ex in examples]
    rng = random.Random(f"{run.run_id}-{split}")
    right = set(rng.sample(range(len(refs)), round(f1 * len(refs))))
    preds = [r if i in right else next(lab for lab in labels if lab != r) for i, r in enumerate(refs)]
    res = RunResult(run.run_id, cfg.name, run.model, run.size, run.seed, "free", list(labels), references=refs,
                    raw=preds, predictions=preds, metrics=classification_metrics(preds, refs, labels),
                    checkpoint=run.epoch)
    write_run_result(run, res, examples, split)
    return res.metrics["f1_macro"]


def _scored(cfg, val_best):
    """Every run scored: on the validation set the checkpoint `val_best[size]` is best, on the test set
    always the other one (a selection by test scores would pick it)."""
    prepare_data(cfg)
    test, val = load_split(cfg, TEST), load_split(cfg, VAL)
    for run in train_runs(cfg):
        atomic_write_json(run.trained_marker, {"epochs": 2.0, "steps": 10, "train_wall_s": 12.5})
        for cand in candidates(cfg, run):
            good = (cand.epoch and val_best[run.size] == "e1") or (not cand.epoch and val_best[run.size] == "last")
            _write(cfg, cand, VAL, 0.9 if good else 0.4, val)
    record_selections(cfg, eval_runs(cfg))   # before any test answer exists
    for run in train_runs(cfg):
        for cand in candidates(cfg, run):
            good = (cand.epoch and val_best[run.size] == "e1") or (not cand.epoch and val_best[run.size] == "last")
            _write(cfg, cand, TEST, 0.3 if good else 0.8, test)
    for run in [r for r in eval_runs(cfg) if r.is_base]:
        _write(cfg, run, TEST, 0.2, test)


def test_the_selection_reads_validation_metrics_only_and_is_recorded_before_the_test_answers(sandbox):
    cfg = _cfg(sandbox)
    prepare_data(cfg)
    val = load_split(cfg, VAL)
    run = train_runs(cfg)[0]
    f1 = {c: _write(cfg, c, VAL, s, val) for c, s in zip(candidates(cfg, run), (0.9, 0.5), strict=True)}
    assert [c.run_id for c in candidates(cfg, run)] == ["m1__n20__seed1__e1", "m1__n20__seed1"]
    assert record_selections(cfg, [run]) == 1 and not run.is_scored("free")   # no test file was there to read
    record = json.loads(run.selection_file("free").read_text())
    assert record == {"metric": "f1_macro", "val_size": 40, "candidates": {"e1": f1[run.checkpoint(1)],
                      "last": f1[run]}, "selected": "e1", "val_score": f1[run.checkpoint(1)]}
    assert record_selections(cfg, [run]) == 0                       # the same choice: not written again
    other = train_runs(cfg)[1]
    _write(cfg, other, VAL, 0.9, val)
    assert record_selections(cfg, [other]) == 0                     # its checkpoint is not scored on it yet


def test_results_report_the_validation_selected_checkpoints_test_score(sandbox):
    cfg = _cfg(sandbox)
    _scored(cfg, {20: "e1", 50: "last", 100: "e1"})
    df = R.collect_results(cfg)
    assert {"selected", "val_score"} <= set(df.columns)
    trained = df[df["size"] > 0]
    assert trained["val_score"].notna().all() and df[df["size"] == 0]["val_score"].isna().all()
    chosen = trained[trained["selected"] != ""]
    assert len(chosen) == 9                                         # 3 sizes x 3 seeds, one row each
    assert set(chosen[chosen["size"] == 50]["selected"]) == {"last"}
    assert set(chosen[chosen["size"] != 50]["selected"]) == {"e1"} and set(chosen[chosen["size"] != 50][
        "checkpoint"]) == {"e1"}
    shown = R.reported_rows(df)
    assert len(shown) == 9 + 1 and (shown["checkpoint"] == "").all()  # + the zero-shot run
    row = shown[(shown["size"] == 20) & (shown["seed"] == 1)].iloc[0]
    assert row["score"] < 0.5 and row["val_score"] > 0.8             # the test score of the validation's choice
    assert row["train_wall_s"] == 12.5                                # the cost of its training run
    assert RunSpec.from_row("x", row) == RunSpec("x", "m1", 20, 1, epoch=1)
    assert R.load_run_result(cfg, row).checkpoint == 1
    assert RunSpec.from_row("x", shown[(shown["size"] == 50) & (shown["seed"] == 1)].iloc[0]) == \
        RunSpec("x", "m1", 50, 1)
    assert R.series_name(row) == "m1 / free" and R.series_keys(shown) == ["model"]


def test_without_selection_the_table_is_as_before(sandbox):
    cfg = _cfg(sandbox, val_size=0, select="last")
    prepare_data(cfg)
    for run in eval_runs(cfg):
        _write(cfg, run, TEST, 0.5, load_split(cfg, TEST))
    df = R.collect_results(cfg)
    assert list(df.columns) == R.COLUMNS and R.reported_rows(df) is df


def test_the_report_says_scores_are_validation_selected_and_the_epoch_curve_is_not_used(sandbox):
    cfg = _cfg(sandbox)
    _scored(cfg, {20: "e1", 50: "last", 100: "e1"})
    page = report.write_report(cfg, target=0.6, n_resamples=50).read_text()
    assert "Scores are validation-selected" in page and "40 validation examples" in page
    assert "the point at n=20 used 20 + 40 = 60 labels" in page
    assert "not used for selection" in page and "<th>selected</th>" in page and "<th>val_score</th>" in page
    assert "m1 / free / e1" not in page                              # no checkpoint is a series of its own


def test_eval_scores_the_validation_set_and_records_the_choice_before_asking_for_test_answers(sandbox, monkeypatch):
    cfg = _cfg(sandbox, seeds=[1])
    prepare_data(cfg)
    calls = []

    def start(cfg_, srv, runs, share, split=TEST):
        selected = sorted(r.run_id for r in train_runs(cfg) if r.selection_file("free").is_file())
        calls.append((split, sorted(r.run_id for r in runs), selected))
        examples = load_split(cfg, split)
        for r in runs:
            _write(cfg, r, split, 0.9 if r.epoch else 0.5, examples)
        return None

    monkeypatch.setattr(evaluation, "_start_client", start)
    monkeypatch.setattr(evaluation, "_wait", lambda p: 0)
    monkeypatch.setattr(evaluation, "client_processes", lambda *a: 1)

    class Server:
        gpus = ["0"]
    runs = [r for r in eval_runs(cfg)]
    assert evaluation._score_with_client(cfg, Server(), runs) == 0
    trained = sorted(r.run_id for r in runs if not r.is_base)
    assert calls[0] == ("val", trained, [])                          # candidates on the validation set, first
    assert calls[1][0] == "test" and calls[1][2] == sorted(r.run_id for r in train_runs(cfg))  # chosen already
    assert calls[1][1] == ["m1__n0__base"] and calls[2] == ("test", trained, calls[1][2])
    assert all(evaluation._fully_scored(cfg, r) for r in runs)


def test_check_warns_of_runs_that_keep_no_checkpoint_to_choose_among(sandbox):
    from lorasweep.check.check import selection_warnings

    # 2 epochs, save_epochs [2]: the checkpoint after epoch 2 is the final adapter; 3 sizes x 3 seeds = 9 runs
    (w,) = selection_warnings(_cfg(sandbox, save_epochs=(2,)))
    assert w.startswith("eval.select: val: 9 run(s) keep no checkpoint before their last epoch (train.save_epochs "
                        "[2]), e.g. m1__n20__seed1 (2 ep x 3 = 6 steps)")
    assert selection_warnings(_cfg(sandbox)) == [] and selection_warnings(_cfg(sandbox, select="last")) == []
