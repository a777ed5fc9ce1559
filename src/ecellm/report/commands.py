"""``ecellm report``: the CLI face of :func:`ecellm.report.make_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecellm.errors import InputError


def split_labelled(arg: str) -> tuple[str | None, str]:
    """``NAME=path`` -> (NAME, path); a plain path (even one containing '=') -> (None, path)."""
    if Path(arg).exists() or "=" not in arg:
        return None, arg
    name, path = arg.split("=", 1)
    if not name.strip() or not path:
        raise InputError(f"expected NAME=path, got {arg!r}", field="--label")
    return name.strip(), path


def collect_inputs(metrics: list[str], labels: list[str]) -> list[tuple[str, str] | str]:
    """Positional inputs in order; ``--label NAME=path`` names a positional path or adds a new row."""
    named = [split_labelled(a) for a in labels]
    for name, _path in named:
        if name is None:
            raise InputError("--label needs NAME=path", field="--label")
    by_path = {str(Path(p)): n for n, p in named}
    items: list[tuple[str, str] | str] = []
    seen: set[str] = set()
    for arg in metrics:
        name, path = split_labelled(arg)
        key = str(Path(path))
        name = name or by_path.get(key)
        items.append((name, path) if name else path)
        seen.add(key)
    items += [(n, p) for n, p in named if str(Path(p)) not in seen]  # type: ignore[misc]
    if not items:
        raise InputError("give at least one metrics.json (positional or --label NAME=path)")
    return items


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for tables.md/json, CSVs and PNGs.")],
        metrics: Annotated[
            list[str] | None,
            typer.Argument(
                help="metrics.json files from `ecellm evaluate --out`; "
                "NAME=path sets the row label (default: file stem).",
            ),
        ] = None,
        label: Annotated[
            list[str] | None, typer.Option("--label", "-l", help="NAME=path: label a row (repeatable).")
        ] = None,
        baseline: Annotated[
            str | None,
            typer.Option("--baseline", "-b", help="[NAME=]path of the 'before' run; adds delta rows."),
        ] = None,
    ) -> None:
        """Tables in the layout of the paper's Tables 2-4, paper rows beside ours, one PNG per table."""
        from ecellm.report import make_report

        items = collect_inputs(list(metrics or []), list(label or []))
        base = None
        if baseline is not None:
            name, path = split_labelled(baseline)
            base = (name, path) if name else path
        written = make_report(items, out, baseline=base)
        for name in sorted(written):
            typer.echo(str(written[name]))
