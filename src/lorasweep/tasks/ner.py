"""NER as generation: the answer is one `entity<sep>type` line per entity, or
task.none_answer (lorasweep/ner.py formats and parses them), scored on exact
(entity, type) pairs: entity micro-F1 (metric_modules/ner_report)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Task
from .metrics import ner_metrics
from .ner_format import entities_from_row, format_answer, parse_answer

if TYPE_CHECKING:
    from ..config import DataSpec, ExperimentConfig, TaskSpec
    from ..score.runresult import RunResult


class NerTask(Task):
    name = "ner"
    metrics = ("f1_micro", "precision_micro", "recall_micro", "exact_match", "accuracy", "f1_macro", "invalid",
               "invalid_rate")
    headline = "f1_micro"
    metric_labels = {"f1_micro": "entity micro-F1", "exact_match": "exact match"}
    closed_labels = False   # the labels are entity types; an answer is free structured text
    curve_metrics = ("score", "exact_match")

    def validate(self, spec: TaskSpec) -> None:
        # an answer line `entity<sep>type` is split at its last separator (ner.parse_answer)
        sep = spec.entity_separator
        if not sep:
            raise ValueError("entity_separator is empty; write the string between entity and type, e.g. '_'")
        for lab in spec.labels:
            if sep in lab:
                raise ValueError(f"labels: {lab!r} contains the entity_separator {sep!r}: an answer line "
                                 "could not be split; set task.entity_separator to another string (e.g. '|') "
                                 "or rename the type")

    def columns(self, data: DataSpec) -> list[str]:
        return [data.text_column]

    def read_row(self, cfg: ExperimentConfig, row: dict, where: str) -> dict:
        from ..config import ConfigError

        d = cfg.data
        # Offsets count characters of the text as given, so the entities
        # come from the raw text; the example keeps the stripped one.
        try:
            ents = entities_from_row(row, d.entities_column, d.answer_column, cfg.task, d.text_column)
        except KeyError as e:
            raise ConfigError(f"{where}: {e.args[0] if e.args else e} "
                              "(set data.entities_column or data.answer_column)") from None
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from None
        bad_types = sorted({t for _, t in ents if t not in cfg.task.labels})
        if bad_types:
            raise ConfigError(f"{where} has entity types not in task.labels: {bad_types}; "
                              "add them to task.labels or fix the data")
        return {"text": str(row[d.text_column]).strip(), "entities": [list(p) for p in ents],
                "label": format_answer(cfg.task, ents)}

    def stratum(self, ex: dict) -> str:
        """The set of entity types present."""
        return "+".join(sorted({t for _, t in ex["entities"]})) or "-"

    def max_answer_tokens(self, spec: TaskSpec) -> int:
        return 128

    def score(self, spec: TaskSpec, test: list[dict], answers: list[str]) -> tuple[list, dict]:
        parsed = [parse_answer(spec, a) for a in answers]
        preds = [pairs for pairs, _ in parsed]
        gold = [[tuple(p) for p in ex["entities"]] for ex in test]
        return preds, ner_metrics(preds, gold, spec.labels, invalid_answers=sum(bad > 0 for _, bad in parsed),
                                  invalid_lines=sum(bad for _, bad in parsed))

    def prediction_record(self, i: int, ex: dict, raw: str, pred: Any) -> dict:
        gold = sorted(tuple(p) for p in ex["entities"])
        return {"i": i, "label": ex["label"], "raw": raw, "prediction": [list(p) for p in pred],
                "correct": sorted(pred) == gold}

    def summary(self, m: dict) -> str:
        return (f"entity micro-F1 {m['f1_micro']:.3f}, exact match {m['exact_match']:.3f}, "
                f"invalid {m['invalid']}/{m['n']}")

    def intervals(self, cfg: ExperimentConfig, res: RunResult, n_resamples: int,
                  seed: int) -> tuple[float, float, float, float]:
        """The score's interval only (entity micro-F1 over resampled texts)."""
        from ..analysis import stats
        from ..data.splits import load_test

        gold = [{tuple(p) for p in ex["entities"]} for ex in load_test(cfg)]
        _, a, b = stats.bootstrap_ner_ci([set(map(tuple, p)) for p in res.predictions], gold, n_resamples, seed)
        return a, b, float("nan"), float("nan")
