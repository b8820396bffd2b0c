"""NER as generation: an answer is one `entity<sep>type` line per entity (seed
format, e.g. `北京_地名`), or the task's none_answer when there is none.
Scored on exact (entity, type) pairs."""
from __future__ import annotations

import unicodedata

from .config import TaskSpec


def format_answer(task: TaskSpec, entities: list[tuple[str, str]]) -> str:
    if not entities:
        return task.none_answer
    return "\n".join(f"{e}{task.entity_separator}{t}" for e, t in entities)


def parse_answer(task: TaskSpec, raw: str) -> tuple[list[tuple[str, str]], int]:
    """(entity, type) pairs in the answer and the number of lines that are not
    `entity<sep>type` with a known type. Full-width forms are folded (NFKC)."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    none = unicodedata.normalize("NFKC", task.none_answer)
    if text.rstrip("。.") == none:
        return [], 0
    types = set(task.labels)
    sep = task.entity_separator
    pairs: list[tuple[str, str]] = []
    invalid = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        ent, s, typ = line.rpartition(sep)
        if s and ent.strip() and typ.strip() in types:
            pair = (ent.strip(), typ.strip())
            if pair not in pairs:
                pairs.append(pair)
        else:
            invalid += 1
    if not pairs and invalid == 0:
        invalid = 1   # an empty answer is not "no entities": that is none_answer
    return pairs, invalid


def entities_from_row(row: dict, entities_column: str, answer_column: str, task: TaskSpec) -> list[tuple[str, str]]:
    """Gold entities from a data row: a list of pairs/objects, or an answer text."""
    if entities_column in row and row[entities_column] is not None:
        out = []
        for item in row[entities_column]:
            if isinstance(item, dict):
                ent = item.get("entity", item.get("text"))
                typ = item.get("type", item.get("label"))
            else:
                ent, typ = item
            out.append((str(ent).strip(), str(typ).strip()))
        return out
    if answer_column in row:
        pairs, invalid = parse_answer(task, str(row[answer_column]))
        if invalid:
            raise ValueError(f"answer {row[answer_column]!r} has {invalid} line(s) that are not "
                             f"'entity{task.entity_separator}type' with a type in task.labels")
        return pairs
    raise KeyError(f"needs '{entities_column}' or '{answer_column}'")
