"""Task registry: canonical names, abbreviations and the reference's misspellings all resolve here."""

from __future__ import annotations

import importlib
from functools import cache

from ecellm.tasks.base import Task

# One line per task; the order is the paper's table order.
TASK_MODULES: tuple[str, ...] = (
    "ecellm.tasks.ave",
    "ecellm.tasks.prp",
    "ecellm.tasks.pm",
    "ecellm.tasks.sa",
    "ecellm.tasks.sr",
    "ecellm.tasks.mpc",
    "ecellm.tasks.psi",
    "ecellm.tasks.qpr",
    "ecellm.tasks.ap",
    "ecellm.tasks.ag",
)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@cache
def _load() -> tuple[tuple[Task, ...], dict[str, Task]]:
    tasks = tuple(importlib.import_module(m).TASK for m in TASK_MODULES)
    index: dict[str, Task] = {}
    for t in tasks:
        for name in (t.abbr, t.name, *t.aliases):
            k = _key(name)
            if k in index and index[k] is not t:
                raise RuntimeError(f"task name {name!r} is claimed by {index[k].abbr} and {t.abbr}")
            index[k] = t
    return tasks, index


def all_tasks() -> tuple[Task, ...]:
    """Every registered task in table order."""
    return _load()[0]


def task_abbrs() -> list[str]:
    return [t.abbr for t in all_tasks()]


def get_task(name: str) -> Task:
    """Resolve an abbreviation, canonical name or alias (case-insensitive)."""
    try:
        return _load()[1][_key(name)]
    except KeyError:
        known = ", ".join(t.abbr for t in all_tasks())
        raise KeyError(f"unknown task {name!r} (known: {known}, their full names and aliases)") from None
