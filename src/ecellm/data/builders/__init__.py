"""Task builders: raw public sources -> ECInstruct samples (see ``base.py`` for the contract).

Each builder module exposes ``DEFAULTS`` (its configurable keys) and ``build(raw_dir, config,
seed) -> BuildResult``. The registry maps every task abbreviation to its module, so the pipeline
and the benchmark can run "all builders" without importing any of them eagerly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Task abbreviation -> builder module, in the paper's table order.
BUILDERS: dict[str, str] = {
    "AVE": "ecellm.data.builders.ave",
    "PRP": "ecellm.data.builders.prp",
    "PM": "ecellm.data.builders.pm",
    "SA": "ecellm.data.builders.sa",
    "SR": "ecellm.data.builders.sr",
    "MPC": "ecellm.data.builders.mpc",
    "PSI": "ecellm.data.builders.psi",
    "QPR": "ecellm.data.builders.qpr",
    "AP": "ecellm.data.builders.ap",
    "AG": "ecellm.data.builders.ag",
}


class BuilderMissing(LookupError):
    """The registry names a builder module that is not installed (yet)."""


def load_builder(abbr: str) -> ModuleType:
    """Import the builder of ``abbr``; :class:`BuilderMissing` when its module does not exist."""
    name = BUILDERS[abbr]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise BuilderMissing(f"builder module {name} for task {abbr} is not available") from None
        raise
