"""What a task type is: `Task`, one declared unit per type (its data columns and
rows, its prompt fields, its stratum, how its answers are parsed and scored,
its metrics and headline, which statistics apply). The stages never ask which
type a task is; they ask its Task (`tasks.get_task(cfg.task.type)`).

The defaults are those of a task whose answer is one label of `task.labels`;
a type that is not (ner) says so and overrides what differs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .metrics import INVALID

if TYPE_CHECKING:
    from ..config import DataSpec, ExperimentConfig, TaskSpec
    from ..score.runresult import RunResult


class Task:
    name: str = ""                     # task.type in the config
    fields: tuple[str, ...] = ()       # example fields a prompt must name besides {text} (e.g. entity1, entity2)
    metrics: tuple[str, ...] = ()      # keys of its metrics the results table shows, a column each
    headline: str = "f1_macro"         # the metric that is the table's `score` and chooses checkpoints
    metric_labels: dict[str, str] = {}  # metric -> how figures and the report name it
    closed_labels: bool = True         # an answer is one label (constrained decoding, label checks apply)
    label_statistics: bool = False     # predictions are labels: macro-F1 bootstraps, paired tests, curve resamples
    baselines: bool = False            # the classifier baselines (TF-IDF, MiniLM) apply
    curve_metrics: tuple[str, ...] = ("score", "accuracy")   # the notebook's learning-curve panels

    @property
    def headline_label(self) -> str:
        return self.metric_labels.get(self.headline, self.headline)

    def metric_label(self, metric: str) -> str:
        return self.metric_labels.get(metric, metric)

    # -- config ---------------------------------------------------------------------------------------------

    def prompt_fields(self) -> list[str]:
        """The placeholders a prompt of this type may use; all but {labels} must appear."""
        return ["text", *self.fields, "labels"]

    def validate(self, spec: TaskSpec) -> None:
        """Rules of this type on the task section; a ValueError says what is wrong."""

    # -- data -----------------------------------------------------------------------------------------------

    def columns(self, data: DataSpec) -> list[str]:
        """The data columns every row must have (a field's column is data.<field>_column, else the field's name)."""
        need = [data.text_column, data.label_column] if self.closed_labels else [data.text_column]
        return need + [getattr(data, f"{f}_column", f) for f in self.fields]

    def read_row(self, cfg: ExperimentConfig, row: dict, where: str) -> dict:
        """One example from a data row whose columns are there and are text; `where` names
        the row in a ConfigError ("<file>: row 3")."""
        d = cfg.data
        ex = {"text": str(row[d.text_column]).strip(), "label": str(row[d.label_column]).strip()}
        for f in self.fields:
            ex[f] = str(row[getattr(d, f"{f}_column", f)]).strip()
        return ex

    def stratum(self, ex: dict) -> str:
        """What splits are stratified by."""
        return ex["label"]

    def example_findings(self, cfg: ExperimentConfig, examples: list, test: list,
                         show: Callable[..., str]) -> tuple[list[str], list[str]]:
        """check's (errors, warnings) about this type's fields; `show(ex)` writes an example for a message."""
        return [], []

    # -- scoring --------------------------------------------------------------------------------------------

    def max_answer_tokens(self, spec: TaskSpec) -> int:
        # A generous bound on the longest label in tokens (one CJK character can
        # be one token; +4 for stray whitespace/punctuation the normaliser drops).
        return max(len(lab) for lab in spec.labels) + 4

    def score(self, spec: TaskSpec, test: list[dict], answers: list[str]) -> tuple[list, dict]:
        """(parsed predictions, metrics) of the answers to `test`, in order."""
        raise NotImplementedError(f"task type {self.name!r} does not say how its answers are scored")

    def prediction_record(self, i: int, ex: dict, raw: str, pred: Any) -> dict:
        """One line of predictions.<mode>.jsonl."""
        return {"i": i, "label": ex["label"], "raw": raw, "prediction": pred,
                "valid": pred != INVALID, "correct": pred == ex["label"]}

    def summary(self, m: dict) -> str:
        """A scored run in one line of the log."""
        text = f"{self.headline_label} {m[self.headline]:.3f}"
        return text + (f", invalid {m['invalid']}/{m['n']}" if "invalid" in m and "n" in m else "")

    def intervals(self, cfg: ExperimentConfig, res: RunResult, n_resamples: int,
                  seed: int) -> tuple[float, float, float, float]:
        """95% bootstrap intervals over the test examples: (score low, high, accuracy low, high); nan: none."""
        nan = float("nan")
        return nan, nan, nan, nan
