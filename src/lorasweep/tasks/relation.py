"""Relation classification: the label of the relation between two entities
named in the text ({entity1}, {entity2}); scored as classification."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .classification import ClassificationTask

if TYPE_CHECKING:
    from ..config import ExperimentConfig


class RelationTask(ClassificationTask):
    name = "relation_classification"
    fields = ("entity1", "entity2")

    def example_findings(self, cfg: ExperimentConfig, examples: list, test: list,
                         show: Callable[..., str]) -> tuple[list[str], list[str]]:
        """Empty entity pairs (an error), entities not in their text (a warning)."""
        errors, warnings = [], []
        for name, rows in ((cfg.data.source, examples), (cfg.data.test_file, test)):
            blank = [ex for ex in rows if not ex["entity1"] or not ex["entity2"]]   # read stripped: "  " is ""
            if blank:
                errors.append(f"{name}: {len(blank)} example(s) with an empty entity1/entity2 (columns "
                              f"{cfg.data.entity1_column}, {cfg.data.entity2_column}), e.g. "
                              f"{show(blank[0], blank=True)}; fill them in or remove the rows")
        missing = [ex for ex in examples if ex["entity1"] and ex["entity1"] not in ex["text"]
                   or ex["entity2"] and ex["entity2"] not in ex["text"]]
        if missing:
            warnings.append(f"{cfg.data.source}: {len(missing)} of {len(examples)} example(s) name an entity that "
                            f"does not occur in the text (masked entities?), e.g. {show(missing[0])}; they are "
                            "used as they are")
        return errors, warnings
