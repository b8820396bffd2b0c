import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from lorasweep.tasks.metrics import INVALID, classification_metrics, normalise, to_label

LABELS = ["夫妻", "父母", "不确定", "师生"]


def _sk(preds, refs, labels, avg):
    return precision_recall_fscore_support(refs, preds, labels=labels, average=avg, zero_division=0)


def test_matches_sklearn_on_fixture():
    refs = ["夫妻", "父母", "不确定", "夫妻", "父母", "不确定", "师生", "夫妻"]
    preds = ["夫妻", "不确定", "不确定", "父母", "父母", INVALID, "师生", "夫妻"]
    m = classification_metrics(preds, refs, LABELS)
    assert m["accuracy"] == accuracy_score(refs, preds)
    for avg in ("macro", "weighted"):
        p, r, f, _ = _sk(preds, refs, LABELS, avg)
        assert (m[f"precision_{avg}"], m[f"recall_{avg}"], m[f"f1_{avg}"]) == (p, r, f)
    assert m["invalid"] == 1 and m["n"] == 8
    assert m["confusion_matrix"] == confusion_matrix(refs, preds, labels=LABELS + [INVALID]).tolist()


def test_class_absent_from_test_and_never_predicted_is_not_averaged():
    refs = ["夫妻", "父母", "夫妻"]
    preds = ["夫妻", "夫妻", "夫妻"]
    m = classification_metrics(preds, refs, LABELS)
    p, r, f, _ = _sk(preds, refs, ["夫妻", "父母"], "macro")
    assert m["f1_macro"] == f
    assert m["per_class"]["师生"]["support"] == 0


def test_all_invalid():
    m = classification_metrics([INVALID] * 3, ["夫妻", "父母", "夫妻"], LABELS)
    assert m["accuracy"] == 0 and m["f1_macro"] == 0 and m["invalid"] == 3 and m["invalid_rate"] == 1.0


@pytest.mark.parametrize("raw,want", [
    ("夫妻", "夫妻"), (" 夫妻。\n", "夫妻"), ("夫妻！", "夫妻"), ("父母 ", "父母"),
    ("夫 妻", INVALID), ("夫妻\n不确定", INVALID), ("", INVALID), ("妻子", INVALID),
])
def test_to_label_never_guesses(raw, want):
    assert to_label(raw, LABELS) == want


def test_normalise_width_and_case():
    assert normalise("ＰＨＹＳＩＣＳ．") == "physics"
    assert to_label("physics", ["Physics", "Chemistry"]) == "Physics"
