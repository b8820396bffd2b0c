"""Rendering a task's prompt for one example: the same text for training and scoring.

A prompt names the example's fields in braces: `{text}` always, the task
type's own fields (`Task.fields`: `{entity1}` and `{entity2}` for relation
classification), `{labels}` (the label list) anywhere. `{{` and `}}` write a literal brace; any other brace (a JSON
example such as `{"label": "x"}`) stays as written. A `{name}` that is not a
field of the task is refused when the config loads: a misspelled `{lables}`
would otherwise reach the model as text and the label list never would.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import get_task

if TYPE_CHECKING:
    from ..config import TaskSpec

# `{{`, `}}`, or one `{identifier}`; nothing else is a placeholder.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    """The `{name}` placeholders of a template, in order (escaped braces are not placeholders)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def unknown_placeholders(template: str, allowed: list[str]) -> list[str]:
    """The placeholders of a template that are not among `allowed` (a task's Task.prompt_fields)."""
    return list(dict.fromkeys(p for p in placeholders(template) if p not in set(allowed)))


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each `{name}` by its value and `{{`/`}}` by one brace, in a
    single pass (a value that itself holds `{text}` is not filled again)."""
    def sub(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        return values.get(m.group(1), m.group(0))
    return _PLACEHOLDER.sub(sub, template)


def render_prompt(task: TaskSpec, example: dict, prompt_name: str | None = None) -> str:
    """The prompt of one example, its fields filled in."""
    values = {"text": example["text"], **{f: example.get(f, "") for f in get_task(task.type).fields},
              "labels": task.label_separator.join(task.labels)}
    return fill(task.prompt_template(prompt_name), values)
