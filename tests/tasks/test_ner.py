import pytest

from lorasweep.config import TaskSpec
from lorasweep.tasks.metrics import ner_metrics
from lorasweep.tasks.ner_format import entities_from_row, format_answer, parse_answer

TASK = TaskSpec(type="ner", labels=["人名", "地名", "机构名"], prompt="{text}")


def test_format_and_parse_round_trip():
    ents = [("郑振铎", "人名"), ("北京", "地名")]
    ans = format_answer(TASK, ents)
    assert ans == "郑振铎_人名\n北京_地名"
    assert parse_answer(TASK, ans) == (ents, 0)
    assert format_answer(TASK, []) == "没有" and parse_answer(TASK, "没有") == ([], 0)


@pytest.mark.parametrize("raw,pairs,invalid", [
    ("北京_地名\n北京_地名", [("北京", "地名")], 0),          # duplicates count once
    ("北京＿地名", [("北京", "地名")], 0),                    # full-width separator folded
    ("北京_城市\n上海_地名", [("上海", "地名")], 1),          # unknown type: invalid line
    ("我不知道", [], 1),
    ("", [], 1),
    ("张_三_人名", [("张_三", "人名")], 0),                   # the last separator splits
])
def test_parse_edge_cases(raw, pairs, invalid):
    assert parse_answer(TASK, raw) == (pairs, invalid)


def test_entities_from_row_forms():
    assert entities_from_row({"entities": [["北京", "地名"]]}, "entities", "answer", TASK) == [("北京", "地名")]
    assert entities_from_row({"entities": [{"entity": "王", "type": "人名"}]}, "entities", "answer", TASK) == [("王", "人名")]
    assert entities_from_row({"answer": "日_地名\n京_地名"}, "entities", "answer", TASK) == [("日", "地名"), ("京", "地名")]
    with pytest.raises(ValueError):
        entities_from_row({"answer": "日-地名"}, "entities", "answer", TASK)


def _by_hand(preds, golds):
    tp = sum(len(set(p) & set(g)) for p, g in zip(preds, golds, strict=False))
    fp = sum(len(set(p) - set(g)) for p, g in zip(preds, golds, strict=False))
    fn = sum(len(set(g) - set(p)) for p, g in zip(preds, golds, strict=False))
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    return prec, rec, 2 * prec * rec / (prec + rec)


def test_micro_and_per_type_scores():
    golds = [[("王", "人名"), ("北京", "地名")], [("新华社", "机构名")], []]
    preds = [[("王", "人名"), ("北京", "机构名")], [("新华社", "机构名"), ("李", "人名")], []]
    m = ner_metrics(preds, golds, TASK.labels, invalid_answers=0, invalid_lines=0)
    p, r, f = _by_hand(preds, golds)
    assert (m["precision_micro"], m["recall_micro"], m["f1_micro"]) == pytest.approx((p, r, f))
    assert m["per_type"]["地名"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_type"]["人名"]["precision"] == 0.5 and m["per_type"]["人名"]["recall"] == 1.0
    assert m["exact_match"] == pytest.approx(1 / 3)


def test_all_wrong_and_empty():
    m = ner_metrics([[], []], [[("王", "人名")], []], TASK.labels, invalid_answers=2, invalid_lines=2)
    assert m["f1_micro"] == 0 and m["invalid"] == 2 and m["invalid_rate"] == 1.0


TEXT = "罗佳毕业于国家图书馆"


@pytest.mark.parametrize("item,pair", [
    ({"start": 0, "end": 2, "label": "人名"}, ("罗佳", "人名")),                       # character offsets
    ([5, 10, "地名"], ("国家图书馆", "地名")),                                           # spaCy's [start, end, label]
    ({"start": 0, "end": 2, "text": "罗佳", "labels": ["人名"]}, ("罗佳", "人名")),      # Label Studio
    ({"start": 5, "end": 10, "text": "国家图书馆", "label": "地名"}, ("国家图书馆", "地名")),
    ({"text": "罗佳", "label": "人名"}, ("罗佳", "人名")),
])
def test_entities_from_row_offset_forms(item, pair):
    row = {"text": TEXT, "entities": [item]}
    assert entities_from_row(row, "entities", "answer", TASK) == [pair]


def test_offsets_count_in_the_text_as_given_under_its_column():
    row = {"sentence": "  " + TEXT, "entities": [[2, 4, "人名"]]}   # leading spaces count
    assert entities_from_row(row, "entities", "answer", TASK, "sentence") == [("罗佳", "人名")]


@pytest.mark.parametrize("item,msg", [
    ({"start": 0, "end": 3, "text": "罗佳", "label": "人名"}, r'the text at \[0:3\] is "罗佳毕", not "罗佳"'),
    ([0, 3, "人名", "x"], "none of the accepted forms"),
    ([None, "人名"], "the entity must be a non-empty string, found null"),
    (["  ", "人名"], "the entity must be a non-empty string"),
    (["罗佳", None], "the type must be a non-empty string, found null"),
    (["罗佳", 3], "the type must be a non-empty string, found 3"),
    ({"entity": "罗佳"}, "no type"),
    ({"start": 0, "end": 2}, "give the type as 'label'"),
    ({"start": 0, "end": 2, "labels": ["人名", "地名"]}, "exactly one type"),
    ({"start": 0, "end": 20, "label": "人名"}, "offsets outside the text, which has 10 characters"),
    ({"start": 2, "end": 2, "label": "人名"}, "offsets outside the text"),
    ([True, 2, "人名"], "whole numbers"),
    (["罗佳", "人名", "x"], "whole numbers"),
    ({"entity": "罗佳", "text": "国家", "type": "人名"}, "disagree on the entity"),
])
def test_entities_from_row_refuses_what_it_cannot_read_exactly(item, msg):
    with pytest.raises(ValueError, match=msg):
        entities_from_row({"text": TEXT, "entities": [item]}, "entities", "answer", TASK)


def test_entities_column_must_be_a_list_and_answer_a_string():
    with pytest.raises(ValueError, match="must be a list of entities.*a CSV cell is plain text"):
        entities_from_row({"text": TEXT, "entities": '[["罗佳", "人名"]]'}, "entities", "answer", TASK)
    with pytest.raises(ValueError, match="'answer' must be a string"):
        entities_from_row({"text": TEXT, "answer": None}, "entities", "answer", TASK)
    # A null entities cell falls back to the answer column, as before.
    assert entities_from_row({"entities": None, "answer": "罗佳_人名"}, "entities", "answer", TASK) == [("罗佳", "人名")]


def test_a_type_containing_the_entity_separator_is_refused(sandbox):
    from conftest import write_experiment
    from lorasweep.config import ConfigError, load_config

    def cfg(**task):
        return load_config(write_experiment(sandbox / "experiments" / "x.yaml", eval={"baselines": []},
                                            task={"type": "ner", "labels": ["person", "job_title"], "prompt": "{text}",
                                                  **task}))
    with pytest.raises(ConfigError, match=r"task: labels: 'job_title' contains the entity_separator '_': an answer "
                                          r"line could not be split; set task.entity_separator to another string "
                                          r"\(e\.g\. '\|'\) or rename the type"):
        cfg()
    task = cfg(entity_separator="|").task
    assert parse_answer(task, "CEO|job_title") == ([("CEO", "job_title")], 0)
    with pytest.raises(ConfigError, match="entity_separator is empty"):
        cfg(entity_separator="")
