"""The builder contract shared by the ten task builders and the build pipeline.

A builder turns raw sources into *draft* samples: the input, options, output and metadata of each
sample, grouped by domain (``"IND"`` or ``"OOD"``) and split. It does not pick instructions or
settings: the pipeline (``ecellm.data.pipeline``) assigns the registry's instruction pools,
expands the settings (Diverse / Unseen / Single), runs quality control, assigns stable ids and
writes the files. Builders must be deterministic for a given seed: sort before sampling, use
``random.Random(seed)``, never depend on hash or directory order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Draft:
    """A sample before instruction/setting assignment."""

    input: str
    output: str
    options: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    """``drafts[(domain, split)]`` with domain in {"IND", "OOD"} and split in {"train", "val", "test"}.

    ``dropped`` counts rows removed by the builder itself, by reason; ``sources`` lists the raw
    files read (for checksums in the manifest).
    """

    task: str
    drafts: dict[tuple[str, str], list[Draft]]
    dropped: dict[str, int] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Builder(Protocol):
    task: str  # registry abbreviation

    def __call__(self, raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
        """Read raw sources under ``raw_dir`` (layout of ../shared/raw/README.md) and build drafts."""
        ...
