"""Task types, one registry: each type is one `Task` (tasks/base.py) declared in
one file and registered here under its name, the value of `task.type`.

    from lorasweep.tasks import Task, register_task
    register_task(MyTask())            # before the config is loaded

The stages ask `get_task(cfg.task.type)` for everything that differs per type.
"""
from __future__ import annotations

import difflib

from .base import Task
from .classification import ClassificationTask
from .ner import NerTask
from .relation import RelationTask

__all__ = ["Task", "ClassificationTask", "RelationTask", "NerTask", "register_task", "unregister_task",
           "get_task", "task_types"]

_TASKS: dict[str, Task] = {}


def register_task(task: Task, replace: bool = False) -> Task:
    """Make `task` the one of its name; a second task of a taken name is refused unless `replace`."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task instance, not {task!r}")
    if not task.name:
        raise ValueError(f"{type(task).__name__} has no name (set its `name`: the task.type that selects it)")
    if task.name in _TASKS and not replace:
        raise ValueError(f"task type {task.name!r} is registered already ({type(_TASKS[task.name]).__name__}); "
                         "give yours another name, or register_task(task, replace=True)")
    _TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    _TASKS.pop(name, None)


def task_types() -> list[str]:
    """The registered type names, in registration order."""
    return list(_TASKS)


def get_task(name: str) -> Task:
    """The Task registered as `name`; a ValueError names the known types (and the closest one)."""
    task = _TASKS.get(name)
    if task is None:
        known = task_types()
        by_case = {k.casefold(): k for k in known}
        close = difflib.get_close_matches(str(name).casefold(), list(by_case), n=1, cutoff=0.6)
        hint = f"did you mean {by_case[close[0]]!r}? " if close else ""
        raise ValueError(f"unknown task type {name!r}; {hint}known types: {', '.join(known)}")
    return task


for _task in (ClassificationTask(), RelationTask(), NerTask()):
    register_task(_task)
