"""``ecellm tasks``: list every registered task with its metric, decoding and settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ecellm.cli_options import one_of


def _families() -> tuple[str, ...]:
    from ecellm.tasks.registry import families

    return families()


def _short_settings(names: list[str]) -> str:
    """``IND, OOD`` for the six instruction settings; other settings as they are."""
    prefixes = {n.split("_", 1)[0] for n in names if n.startswith(("IND_", "OOD_"))}
    groups = sorted(prefixes, key=["IND", "OOD"].index)
    return ", ".join(groups) if groups else ", ".join(names)


def _constraint_cell(row: dict) -> str:
    if row["constraint"]:
        return " | ".join(row["constraint"])
    return "choices" if row["choices"] else "-"


def register(app: typer.Typer) -> None:
    @app.command("tasks")
    def tasks_cmd(
        family: Annotated[
            str | None,
            typer.Option(
                "--family", callback=one_of(_families), help="Only this family (ecinstruct, shopbench)."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    ) -> None:
        """List every task: family, metric, answer kind, decoding mode, constraint, token budget,
        evaluation modes and settings (--json: every field, settings in full)."""
        from ecellm.tasks.describe import describe_tasks

        rows = describe_tasks(family)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"ecellm tasks ({len(rows)})")
        # the JSON key of the primary metric and the full setting names are in --json
        cols = ("family", "abbr", "name", "metric", "answer", "decode", "constraint", "tokens", "eval modes",
                "settings")
        for col in cols:  # cells wrap (at spaces, else anywhere), never cut: every value stays readable
            table.add_column(col, justify="right" if col == "tokens" else "left", overflow="fold",
                             no_wrap=col in ("abbr", "name"), min_width=12 if col == "metric" else None)
        for r in rows:
            table.add_row(
                r["family"], r["abbr"], r["name"], r["metric"], r["answer_kind"], r["decode"],
                _constraint_cell(r), str(r["max_new_tokens"]), ", ".join(r["modes"]),
                _short_settings(r["settings"]),
            )
        Console(width=max(Console().width, 160)).print(table)
