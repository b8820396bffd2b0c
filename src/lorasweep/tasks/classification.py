"""Text classification: the answer is one label of task.labels, scored by
accuracy and macro/weighted F1 (metric_modules/classification_report)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Task
from .metrics import classification_metrics, to_label

if TYPE_CHECKING:
    from ..config import ExperimentConfig, TaskSpec
    from ..score.runresult import RunResult


class ClassificationTask(Task):
    name = "text_classification"
    metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted", "precision_weighted",
               "recall_weighted", "invalid", "invalid_rate")
    headline = "f1_macro"
    metric_labels = {"f1_macro": "macro-F1", "accuracy": "accuracy"}
    label_statistics = True
    baselines = True

    def score(self, spec: TaskSpec, test: list[dict], answers: list[str]) -> tuple[list, dict]:
        preds = [to_label(a, spec.labels) for a in answers]
        return preds, classification_metrics(preds, [ex["label"] for ex in test], spec.labels)

    def summary(self, m: dict) -> str:
        return f"accuracy {m['accuracy']:.3f}, macro-F1 {m['f1_macro']:.3f}, invalid {m['invalid']}/{m['n']}"

    def intervals(self, cfg: ExperimentConfig, res: RunResult, n_resamples: int,
                  seed: int) -> tuple[float, float, float, float]:
        from ..analysis import stats

        _, a, b = stats.bootstrap_ci(res.predictions, res.references, res.labels, "f1_macro", n_resamples, seed)
        _, c, d = stats.bootstrap_ci(res.predictions, res.references, res.labels, "accuracy", n_resamples, seed)
        return a, b, c, d
