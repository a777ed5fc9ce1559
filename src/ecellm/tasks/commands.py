"""``ecellm tasks``: list every registered task with its metric, decoding and settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer


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
            str | None, typer.Option("--family", help="Only this family (ecinstruct, shopbench).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    ) -> None:
        """List every task: family, metric, answer kind, decoding mode, constraint, budget, settings."""
        from ecellm.tasks.describe import describe_tasks

        rows = describe_tasks(family)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"ecellm tasks ({len(rows)})")
        cols = ("family", "abbr", "name", "metric", "primary", "answer", "decode", "constraint",
                "tokens", "settings")
        for col in cols:  # the evaluation modes and full setting names are in --json
            table.add_column(col, justify="right" if col == "tokens" else "left", no_wrap=col == "name")
        for r in rows:
            table.add_row(
                r["family"], r["abbr"], r["name"], r["metric"], r["primary_metric"], r["answer_kind"],
                r["decode"], _constraint_cell(r), str(r["max_new_tokens"]), _short_settings(r["settings"]),
            )
        Console(width=max(Console().width, 160)).print(table)
