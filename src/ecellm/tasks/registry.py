"""Task registry: canonical names, abbreviations and the reference's misspellings all resolve here.

Tasks come in families (the ten ECInstruct tasks; the five ShopBench task types). Every name
resolves across families; listings default to ECInstruct, whose ten tasks make the paper's
tables. A family may also own a file format: ``FORMAT_READERS`` lists modules with
``claims(path)`` and ``read_rows(path)``, which the loaders ask before reading a JSON file.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

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
SHOPBENCH_MODULES: tuple[str, ...] = (
    "ecellm.tasks.shopbench.multiple_choice",
    "ecellm.tasks.shopbench.retrieval",
    "ecellm.tasks.shopbench.ranking",
    "ecellm.tasks.shopbench.ner",
    "ecellm.tasks.shopbench.generation",
)
FAMILIES: dict[str, tuple[str, ...]] = {"ecinstruct": TASK_MODULES, "shopbench": SHOPBENCH_MODULES}
FORMAT_READERS: tuple[str, ...] = ("ecellm.tasks.shopbench.records", "ecellm.tasks.shopbench.instructions")


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@cache
def _load() -> tuple[tuple[Task, ...], dict[str, Task]]:
    tasks = tuple(importlib.import_module(m).TASK for mods in FAMILIES.values() for m in mods)
    index: dict[str, Task] = {}
    for t in tasks:
        for name in (t.abbr, t.name, *t.aliases):
            k = _key(name)
            if k in index and index[k] is not t:
                raise RuntimeError(f"task name {name!r} is claimed by {index[k].abbr} and {t.abbr}")
            index[k] = t
    return tasks, index


def all_tasks(family: str | None = "ecinstruct") -> tuple[Task, ...]:
    """The tasks of ``family`` (``None``: every family) in table order."""
    if family is not None and family not in FAMILIES:
        raise KeyError(f"unknown task family {family!r} (known: {', '.join(FAMILIES)})")
    return tuple(t for t in _load()[0] if family is None or t.family == family)


def format_reader(path: Any) -> Any:
    """The reader module of the family whose format ``path`` is in, or None."""
    for name in FORMAT_READERS:
        reader = importlib.import_module(name)
        if reader.claims(path):
            return reader
    return None


def task_abbrs() -> list[str]:
    return [t.abbr for t in all_tasks()]


def get_task(name: str) -> Task:
    """Resolve an abbreviation, canonical name or alias (case-insensitive)."""
    try:
        return _load()[1][_key(name)]
    except KeyError:
        known = ", ".join(t.abbr for t in all_tasks(None))
        raise KeyError(f"unknown task {name!r} (known: {known}, their full names and aliases)") from None
