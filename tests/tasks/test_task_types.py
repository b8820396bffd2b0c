"""Task types as one extension point: the registry, and a task type declared
outside the package (here) going through splits, scoring and results."""
import csv
import json

import pytest

from conftest import write_experiment
from lorasweep.analysis import results as R
from lorasweep.config import ConfigError, load_config
from lorasweep.data.splits import make_splits, prepare_data, train_subset
from lorasweep.plan import eval_runs
from lorasweep.score.runresult import write_run_result
from lorasweep.score.score import build_result, max_answer_tokens
from lorasweep.tasks import Task, get_task, register_task, task_types, unregister_task
from lorasweep.tasks.metrics import INVALID


class ParityTask(Task):
    """A toy type: is the text's length even or odd? Each example has a topic the
    prompt must name, splits are stratified by topic, and its own metric scores it."""
    name = "length_parity"
    fields = ("topic",)
    metrics = ("parity_accuracy", "invalid", "invalid_rate")
    headline = "parity_accuracy"
    metric_labels = {"parity_accuracy": "parity accuracy"}

    def stratum(self, ex):
        return ex["topic"]

    def max_answer_tokens(self, spec):
        return 3

    def score(self, spec, test, answers):
        preds = [a.strip().lower() if a.strip().lower() in spec.labels else INVALID for a in answers]
        n = len(test)
        right = sum(p == ex["label"] for p, ex in zip(preds, test, strict=True))
        invalid = preds.count(INVALID)
        return preds, {"n": n, "parity_accuracy": right / n, "invalid": invalid, "invalid_rate": invalid / n}


@pytest.fixture
def parity(sandbox):
    """The toy type registered for one test, and an experiment of it on a small CSV."""
    register_task(ParityTask())
    source = sandbox / "data" / "parity.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "label", "topic"])
        for i in range(80):
            text = "x" * (3 + i)
            w.writerow([text, "even" if len(text) % 2 == 0 else "odd", ["sport", "food", "art", "law"][i % 4]])
    path = write_experiment(sandbox / "experiments" / "p.yaml",
                            task={"type": "length_parity", "labels": ["even", "odd"],
                                  "prompt": "{topic}: is the length of {text} even or odd? ({labels})"},
                            data={"source": str(source), "test_size": 20, "text_column": "sentence"},
                            train_sizes=[8, 16], seeds=[1])
    yield path
    unregister_task("length_parity")


def test_a_task_registered_outside_the_package_runs_through_splits_scoring_and_results(sandbox, parity):
    cfg = load_config(parity)
    assert cfg.task.type == "length_parity" and max_answer_tokens(cfg) == 3

    # splits: the task's columns and its field read, its stratum used
    sp = make_splits(cfg)
    assert len(sp.test) == 20 and set(sp.test[0]) == {"text", "label", "topic"}
    assert sorted(ex["topic"] for ex in sp.test) == sorted(["sport", "food", "art", "law"] * 5)   # by topic
    assert sorted(ex["topic"] for ex in train_subset(sp, 8, 1)) == sorted(["sport", "food", "art", "law"] * 2)
    prepare_data(cfg)
    rows = json.loads((sandbox / "data" / "p" / "train_n8_seed1.json").read_text(encoding="utf-8"))
    prompts = {f"{ex['topic']}: is the length of {ex['text']} even or odd? (even、odd)": ex["label"] for ex in sp.pool}
    assert len(rows) == 8 and all(prompts[r["instruction"]] == r["output"] for r in rows)

    # scoring: the task parses the answers and computes its own metric; the records follow the task
    test = sp.test
    for i, run in enumerate(eval_runs(cfg)):
        answers = [ex["label"].upper() if j >= i else "no idea" for j, ex in enumerate(test)]
        res = build_result(cfg, run, "free", test, answers)
        assert res.task == "length_parity" and res.metrics["invalid"] == i
        assert res.metrics["parity_accuracy"] == (len(test) - i) / len(test)
        write_run_result(run, res, test)
        first = json.loads(run.predictions_file("free").read_text(encoding="utf-8").splitlines()[0])
        assert first["prediction"] == (INVALID if i else test[0]["label"]) and first["valid"] == (i == 0)

    # results: the headline is the score; the task's own metric is a column after the built-in ones
    df = R.collect_results(cfg).set_index("run_id")
    assert set(df["task"]) == {"length_parity"}
    cols = R.columns(get_task("length_parity"))
    assert list(df.reset_index().columns) == cols
    assert cols.index("parity_accuracy") == R.COLUMNS.index("invalid_rate") + 1
    assert [c for c in cols if c != "parity_accuracy"] == R.COLUMNS
    assert (df["score"] == df["parity_accuracy"]).all()
    assert df.loc["m1__n0__base", "score"] == 1.0 and df.loc["m1__n16__seed1", "score"] == 0.9


def test_a_registered_tasks_fields_are_the_prompts(sandbox, parity):
    with pytest.raises(ConfigError, match=r"a length_parity prompt must contain \{topic\}"):
        load_config(write_experiment(sandbox / "experiments" / "q.yaml", task={
            "type": "length_parity", "labels": ["even", "odd"], "prompt": "{text}"}))
    with pytest.raises(ConfigError, match=r"\{topc\} \(did you mean \{topic\}\?\) is not a field of a length_parity"):
        load_config(write_experiment(sandbox / "experiments" / "q.yaml", task={
            "type": "length_parity", "labels": ["even", "odd"], "prompt": "{text} {topc}"}))
    # a task without the classifier baselines: none by default
    assert load_config(parity).eval.baselines == []


def test_the_registry_refuses_an_unknown_type_and_a_taken_name(sandbox):
    assert task_types()[:3] == ["text_classification", "relation_classification", "ner"]
    with pytest.raises(ValueError, match=r"unknown task type 'Ner'; did you mean 'ner'\? known types: "
                                         r"text_classification, relation_classification, ner"):
        get_task("Ner")
    with pytest.raises(ConfigError, match=r"task\.type: unknown task type 'sentiment'; known types: "):
        load_config(write_experiment(sandbox / "experiments" / "x.yaml",
                                     task={"type": "sentiment", "labels": ["a", "b"], "prompt": "{text}"}))
    class Ner(ParityTask):
        name = "ner"

    with pytest.raises(ValueError, match="task type 'ner' is registered already"):
        register_task(Ner())
    with pytest.raises(ValueError, match="has no name"):
        register_task(Task())
    assert get_task("ner").headline == "f1_micro"


def test_the_built_in_types_metrics_are_results_columns():
    """The results table's columns stay those notebooks and earlier pickles read."""
    for name in ("text_classification", "relation_classification", "ner"):
        task = get_task(name)
        assert set(task.metrics) <= set(R.COLUMNS) and task.headline in task.metrics
        assert R.columns(task) == R.COLUMNS
