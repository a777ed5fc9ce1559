"""The published eCeLLM tables (bundled as package data) and which of our settings each one matches.

The numbers live in ``ecellm/resources/paper_tables.json`` so the report never needs the network
or the shared folder; they are copied into our tables unchanged (no rounding, no renaming of the
task columns) so a reader can check every paper cell against the publication.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ecellm.tasks import all_tasks

PAPER_MODE = "paper"  # every published number was computed by the reference (paper-mode) scorer


@dataclass(frozen=True)
class TableSpec:
    """One report table: which evaluation setting fills it and which paper rows sit beside ours."""

    key: str  # file stem, e.g. "table2_ind"
    title: str
    setting: str  # the ``setting`` value our results must carry to appear in this table
    tasks: tuple[str, ...]  # column order (paper order)
    paper_rows: tuple[tuple[str, dict[str, float]], ...]
    always: bool  # written even when no run has results for the setting


@cache
def paper_tables() -> dict[str, Any]:
    """The bundled ``paper_tables.json`` exactly as shipped."""
    text = resources.files("ecellm").joinpath("resources/paper_tables.json").read_text(encoding="utf-8")
    return json.loads(text)


def _flat_rows(table: dict[str, dict[str, float]]) -> tuple[tuple[str, dict[str, float]], ...]:
    return tuple((name, dict(cells)) for name, cells in table.items())


def _nested_rows(table: dict[str, dict[str, dict[str, float]]], suffix: str) -> tuple:
    """Table 4 nests ``model -> training variant -> cells``; flatten to one labelled row each."""
    rows = []
    for model, variants in table.items():
        for variant, cells in variants.items():
            rows.append((f"{model} ({variant}-{suffix})", dict(cells)))
    return tuple(rows)


def _setting_label(setting: str) -> str:
    return setting.replace("_", " ")


def table_specs() -> tuple[TableSpec, ...]:
    """The paper-aligned tables, in the order the report prints them."""
    paper = paper_tables()
    ind = tuple(t.abbr for t in all_tasks())
    ood = tuple(t.abbr for t in all_tasks() if t.has_ood)
    return (
        TableSpec(
            "table2_ind",
            "Table 2: in-domain (IND) evaluation, diverse instructions",
            "IND_Diverse_Instruction",
            ind,
            _flat_rows(paper["table2_ind"]),
            True,
        ),
        TableSpec(
            "table3_ood",
            "Table 3: out-of-domain (OOD) evaluation, diverse instructions",
            "OOD_Diverse_Instruction",
            ood,
            _flat_rows(paper["table3_ood"]),
            True,
        ),
        TableSpec(
            "table4_unseen_ind",
            "Table 4: IND evaluation with the unseen instruction",
            "IND_Unseen_Instruction",
            ind,
            _nested_rows(paper["table4_unseen_instructions_ind"], "instruction tuning"),
            False,
        ),
        TableSpec(
            "table_unseen_ood",
            "OOD evaluation with the unseen instruction (no paper table)",
            "OOD_Unseen_Instruction",
            ood,
            (),
            False,
        ),
    )


def extra_spec(setting: str) -> TableSpec:
    """A table for a setting the paper does not tabulate (e.g. ``IND_Single_Instruction``)."""
    ood = setting.upper().startswith("OOD")
    tasks = tuple(t.abbr for t in all_tasks() if t.has_ood or not ood)
    key = "table_" + re.sub(r"[^a-z0-9]+", "_", setting.lower().replace("_instruction", "")).strip("_")
    return TableSpec(key, f"{_setting_label(setting)} (no paper table)", setting, tasks, (), False)
