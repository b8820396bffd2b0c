"""Metrics through `evaluate`, from metric modules shipped in the package (offline)."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from ..infra import tools

MODULES = Path(__file__).parents[1] / "metric_modules"   # metric_modules/ stays at the package top (package data)
INVALID = "<invalid>"
_TRAILING = " \t\r\n。．.，,、；;：:！!？?\"'“”‘’》」』)）]】"


@lru_cache(maxsize=None)
def _module(name: str):
    tools.offline_in_this_process()
    import evaluate

    return evaluate.load(str(MODULES / name))


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), trimmed whitespace and trailing punctuation, case-folded."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    t = t.strip(_TRAILING)
    return t.casefold()


def to_label(raw: str, labels: list[str]) -> str:
    """The label `raw` names after normalisation, or INVALID. Never guesses."""
    table = {normalise(lab): lab for lab in labels}
    return table.get(normalise(raw), INVALID)


def classification_metrics(predictions: list[str], references: list[str], labels: list[str]) -> dict:
    return _module("classification_report").compute(predictions=predictions, references=references,
                                                     labels=labels)


def ner_metrics(predictions: list[list[tuple[str, str]]], references: list[list[tuple[str, str]]],
                types: list[str], invalid_answers: int, invalid_lines: int) -> dict:
    enc = lambda pairs: [f"{e}\t{t}" for e, t in pairs]  # noqa: E731
    out = _module("ner_report").compute(predictions=[enc(p) for p in predictions],
                                        references=[enc(r) for r in references], types=types)
    n = len(references)
    out.update({"invalid": invalid_answers, "invalid_rate": invalid_answers / n if n else 0.0,
                "invalid_lines": invalid_lines})
    return out
