"""NER as generation: an answer is one `entity<sep>type` line per entity (seed
format, e.g. `北京_地名`), or the task's none_answer when there is none.
Scored on exact (entity, type) pairs."""
from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import TaskSpec


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


def abridged(value, limit: int = 80) -> str:
    """A value as a JSON file writes it, cut to `limit` characters, for messages."""
    try:
        s = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:   # a container that holds itself
        s = repr(value)
    return s if len(s) <= limit else s[:limit - 1] + "…"


ENTITY_FORMS = ("[entity, type], {entity, type}, [start, end, label], {start, end, label} or Label Studio's "
                "{start, end, text, labels: [type]}")


def _is_offset(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(item: dict, keys: tuple[str, ...], what: str):
    """The value under whichever of `keys` the item has (they must agree when it has several)."""
    found = [item[k] for k in keys if k in item]
    if not found:
        raise ValueError(f"entity {abridged(item)}: no {what} (key {' or '.join(map(repr, keys))}); "
                         f"write it as {ENTITY_FORMS}")
    if any(v != found[0] for v in found):
        raise ValueError(f"entity {abridged(item)}: {' and '.join(map(repr, keys))} disagree on the {what}")
    return found[0]


def _entity(item, text) -> tuple[str, str]:
    """One gold entity as (entity, type). Anything not in one of ENTITY_FORMS is
    refused rather than turned into a string: str(None) would be an entity "None"."""
    shown = abridged(item)
    if isinstance(item, dict) and ("start" in item or "end" in item):
        if ("label" in item) == ("labels" in item):
            raise ValueError(f"entity {shown}: give the type as 'label' (or Label Studio's 'labels'), once")
        typ = item.get("label")
        if "labels" in item:   # Label Studio: a list, here of exactly one type
            labels = item["labels"]
            if not (isinstance(labels, list) and len(labels) == 1):
                raise ValueError(f"entity {shown}: 'labels' must list exactly one type, as [\"type\"]")
            typ = labels[0]
        given = [item[k] for k in ("text", "entity") if k in item]
        return _span(shown, text, item.get("start"), item.get("end"), typ, given)
    if isinstance(item, (list, tuple)) and len(item) == 3:
        return _span(shown, text, item[0], item[1], item[2], [])
    if isinstance(item, dict):
        ent = _one_of(item, ("entity", "text"), "entity")
        typ = _one_of(item, ("type", "label"), "type")
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        ent, typ = item
    else:
        raise ValueError(f"entity {shown} is none of the accepted forms: {ENTITY_FORMS}")
    if not (isinstance(ent, str) and ent.strip()):
        raise ValueError(f"entity {shown}: the entity must be a non-empty string, found {abridged(ent)}")
    return ent.strip(), _type(shown, typ)


def _type(shown: str, typ) -> str:
    if not (isinstance(typ, str) and typ.strip()):
        raise ValueError(f"entity {shown}: the type must be a non-empty string, found {abridged(typ)}")
    return typ.strip()


def _span(shown: str, text, start, end, typ, given: list) -> tuple[str, str]:
    """The entity at character offsets [start, end) of the row's text as given
    (before any stripping), checked against the entity text when there is one."""
    if not (_is_offset(start) and _is_offset(end)):
        raise ValueError(f"entity {shown}: start and end must be whole numbers, found {abridged(start)} and "
                         f"{abridged(end)}; write it as {ENTITY_FORMS}")
    if not isinstance(text, str):
        raise ValueError(f"entity {shown}: offsets need the row's text, found {abridged(text)}")
    if not 0 <= start < end <= len(text):
        raise ValueError(f"entity {shown}: offsets outside the text, which has {len(text)} characters "
                         f"(need 0 <= start < end <= {len(text)})")
    span = text[start:end]
    for g in given:
        if g != span:
            raise ValueError(f"entity {shown}: the text at [{start}:{end}] is {abridged(span)}, not {abridged(g)}; "
                             "offsets count characters of the text as given, end exclusive")
    if not span.strip():
        raise ValueError(f"entity {shown}: the text at [{start}:{end}] is blank")
    return span.strip(), _type(shown, typ)


def entities_from_row(row: dict, entities_column: str, answer_column: str, task: TaskSpec,
                      text_column: str = "text") -> list[tuple[str, str]]:
    """Gold entities from a data row: a list in ENTITY_FORMS (offsets into
    row[text_column] as given), or an answer text. A ValueError says what is wrong."""
    if entities_column in row and row[entities_column] is not None:
        items = row[entities_column]
        if not isinstance(items, (list, tuple)):
            hint = ("; a CSV cell is plain text: keep entity lists in .jsonl, .json or parquet, or use answer_column"
                    if isinstance(items, str) else "")
            raise ValueError(f"'{entities_column}' must be a list of entities, found {abridged(items)}{hint}")
        return [_entity(item, row.get(text_column)) for item in items]
    if answer_column in row:
        answer = row[answer_column]
        if not isinstance(answer, str):
            raise ValueError(f"'{answer_column}' must be a string, one 'entity{task.entity_separator}type' per line; "
                             f"found {abridged(answer)}")
        pairs, invalid = parse_answer(task, answer)
        if invalid:
            raise ValueError(f"answer {answer!r} has {invalid} line(s) that are not "
                             f"'entity{task.entity_separator}type' with a type in task.labels")
        return pairs
    raise KeyError(f"needs '{entities_column}' or '{answer_column}'")
