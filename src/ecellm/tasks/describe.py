"""One row per registered task, read off the task objects themselves.

Why: a user choosing a task, a decoding mode or a metric should not have to read task files,
and a listing that asks each task (never naming one) stays right when a task is added.
"""

from __future__ import annotations

import re
import typing
from functools import partial
from typing import Any

from ecellm.tasks import constraints
from ecellm.tasks.base import Task
from ecellm.tasks.registry import all_tasks

# The constraint spec classes, by name, in the order constraints.py declares them.
_SPEC_NAMES = tuple(c.__name__ for c in typing.get_args(constraints.Constraint))


def constraint_types(task: Task) -> list[str]:
    """The spec classes a task's ``constraint`` can return, from its return annotation.

    Empty when the task has no constraint (closed tasks are decoded by choice, others freely).
    """
    fn = task.constraint
    while isinstance(fn, partial):
        fn = fn.func
    if fn is None:
        return []
    ret = getattr(fn, "__annotations__", {}).get("return")
    text = ret if isinstance(ret, str) else getattr(ret, "__name__", None) or repr(ret)
    words = set(re.findall(r"\w+", text or ""))
    return [name for name in _SPEC_NAMES if name in words] or ["unknown"]


def primary_metric(task: Task) -> str:
    """The figure a task is ranked by: its primary metric, or for a family that scores itself
    (``task.scorer``), the per-record metrics it knows."""
    if task.scorer is not None:
        metrics = task.extra.get("metrics") or ()
        return "per record: " + ", ".join(metrics) if metrics else "per record"
    return task.primary_metric


def settings(task: Task) -> list[str]:
    """The settings a task's samples come in: the instruction settings (OOD ones only where the
    task has an out-of-domain split) for a task with an instruction pool; a task without one
    (whole-prompt records) takes each record's own setting."""
    if not task.instructions:
        return ["per record"]
    from ecellm.tasks.sample import SETTINGS

    return [s for s in SETTINGS if task.has_ood or not s.startswith("OOD")]


def describe_tasks(family: str | None = None) -> list[dict[str, Any]]:
    """Every task of ``family`` (``None``: all families) as a plain dict, in registry order."""
    rows = []
    for t in all_tasks(family):
        rows.append(
            {
                "family": t.family,
                "abbr": t.abbr,
                "name": t.name,
                "category": t.category,
                "metric": t.metric,
                "primary_metric": primary_metric(t),
                "answer_kind": t.answer_kind,
                "decode": t.decode,
                "constraint": constraint_types(t),
                "choices": t.closed,
                "max_new_tokens": t.max_new_tokens,
                "has_ood": t.has_ood,
                "settings": settings(t),
                "modes": list(t.modes),
            }
        )
    return rows
