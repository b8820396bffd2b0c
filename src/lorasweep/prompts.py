"""Rendering a task's prompt for one example: the same text for training and scoring."""
from __future__ import annotations

from .config import TaskSpec


def render_prompt(task: TaskSpec, example: dict, prompt_name: str | None = None) -> str:
    """Fill {text}, {entity1}, {entity2} and {labels}; other braces stay as written."""
    values = {
        "text": example["text"],
        "entity1": example.get("entity1", ""),
        "entity2": example.get("entity2", ""),
        "labels": task.label_separator.join(task.labels),
    }
    out = task.prompt_template(prompt_name)
    for key, val in values.items():
        out = out.replace("{" + key + "}", val)
    return out
