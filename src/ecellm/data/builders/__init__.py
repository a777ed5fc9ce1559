"""Task builders: raw public sources -> ECInstruct samples (see ``base.py`` for the contract).

Each builder module exposes ``DEFAULTS`` (its configurable keys) and ``build(raw_dir, config,
seed) -> BuildResult``. A task names its builder module (``Task.builder``), so the pipeline and
the benchmark can run "all builders" without importing any of them eagerly, and a task added
through the registry brings its builder with it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def builder_modules() -> dict[str, str]:
    """Task abbreviation -> builder module, for every registered task that is built from raw data,
    in registry (the paper's table) order."""
    from ecellm.tasks import all_tasks

    return {t.abbr: t.builder for t in all_tasks(None) if t.builder}


class BuilderMissing(LookupError):
    """The registry names a builder module that is not installed (yet)."""


def load_builder(abbr: str) -> ModuleType:
    """Import the builder of ``abbr``; :class:`BuilderMissing` when its module does not exist."""
    name = builder_modules()[abbr]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise BuilderMissing(f"builder module {name} for task {abbr} is not available") from None
        raise
