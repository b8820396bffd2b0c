"""An `evaluate` metric module, loaded from this folder (no hub access):
accuracy, macro and weighted precision/recall/F1, a per-class report and a
confusion matrix for a closed label set.

Predictions outside the label set are passed as the INVALID marker: they count
as wrong answers for their true class and are never replaced by a label.
"""
import datasets
import evaluate
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

INVALID = "<invalid>"

_DESCRIPTION = "Classification report over a closed label set; invalid answers count as wrong."
_KWARGS = """
predictions: list of str, the predicted labels (or the INVALID marker)
references: list of str, the gold labels
labels: list of str, the closed label set, in display order
"""


class ClassificationReport(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, labels=None):
        labels = list(labels or sorted(set(references)))
        n = len(references)
        invalid = sum(p == INVALID for p in predictions)
        # Classes averaged over: those in the gold set or validly predicted,
        # in the task's label order (a class seen nowhere is not averaged).
        seen = set(references) | {p for p in predictions if p != INVALID}
        avg_labels = [lab for lab in labels if lab in seen]
        out = {"n": n, "invalid": invalid, "invalid_rate": invalid / n if n else 0.0,
               "accuracy": float(accuracy_score(references, predictions)) if n else 0.0}
        for avg in ("macro", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(references, predictions, labels=avg_labels,
                                                         average=avg, zero_division=0)
            out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
        p, r, f, s = precision_recall_fscore_support(references, predictions, labels=labels,
                                                     average=None, zero_division=0)
        out["per_class"] = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, lab in enumerate(labels)}
        cm_labels = labels + [INVALID]
        out["confusion_labels"] = cm_labels
        out["confusion_matrix"] = confusion_matrix(references, predictions, labels=cm_labels).tolist()
        return out
