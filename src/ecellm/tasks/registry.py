"""Task registry: canonical names, abbreviations and the reference's misspellings all resolve here.

Tasks come in families (the ten ECInstruct tasks; the five ShopBench task types). Every name
resolves across families; listings default to ECInstruct, whose ten tasks make the paper's
tables. A family may also own a file format: ``FORMAT_READERS`` lists modules with
``claims(path)`` and ``read_rows(path)``, which the loaders ask before reading a JSON file.

Extension without editing this package: an installed distribution declares entry points in the
group ``ecellm.tasks`` (``[project.entry-points."ecellm.tasks"] toy = "my_pkg.toy"``), each
naming a module with a ``TASK`` (or a :class:`Task` itself). The task then resolves by name,
builds (``Task.builder``), predicts and evaluates like a built-in one; give it its own
``family`` so the paper's ECInstruct tables stay the ten tasks. :func:`reload_tasks` re-reads
the entry points (after installing a plugin in a running process).
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
ENTRY_POINT_GROUP = "ecellm.tasks"


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _plugin_tasks() -> list[Task]:
    """The tasks installed distributions declare under :data:`ENTRY_POINT_GROUP`, by name."""
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        obj = ep.load()
        task = getattr(obj, "TASK", obj)
        if not isinstance(task, Task):
            raise RuntimeError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) is not a Task")
        found.append(task)
    return found


@cache
def _load() -> tuple[tuple[Task, ...], dict[str, Task]]:
    tasks = tuple(importlib.import_module(m).TASK for mods in FAMILIES.values() for m in mods)
    tasks += tuple(_plugin_tasks())
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
    if family is not None and family not in families():
        raise KeyError(f"unknown task family {family!r} (known: {', '.join(families())})")
    return tuple(t for t in _load()[0] if family is None or t.family == family)


def families() -> tuple[str, ...]:
    """Every family with a registered task (built-in ones first)."""
    return tuple(dict.fromkeys([*FAMILIES, *(t.family for t in _load()[0])]))


def reload_tasks() -> None:
    """Forget the loaded tasks, so the next lookup re-reads the modules and entry points."""
    importlib.invalidate_caches()
    _load.cache_clear()


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
