"""Text renderings of the report tables: markdown for people, CSV and JSON for tools.

Markdown rounds to the paper's three decimals; CSV and JSON keep full precision, so a reader can
recompute any mean. Missing cells are ``n/a`` in markdown and empty in CSV (never 0, which would
read as a real score).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from ecellm.report.paper import paper_tables
from ecellm.report.tables import Row, Table

MISSING = "n/a"


def format_cell(value: float | None, kind: str) -> str:
    """How one value reads in markdown: scores to 3 decimals, deltas signed, invalid rates in %."""
    if value is None:
        return MISSING
    if kind == "invalid_rate":
        return f"{value:.1%}"
    if kind == "delta":
        return f"{value:+.3f}"
    return f"{value:.3f}"


def _show_shared(table: Table) -> bool:
    return len(table.shared_tasks) < len(table.spec.tasks)


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _label(row: Row) -> str:
    if row.kind == "ours":
        return f"**{row.label}**"
    if row.kind in ("invalid_rate", "delta"):
        return f"*{row.label}*"
    return row.label


def table_markdown(table: Table) -> str:
    """One table as a markdown section: heading, setting, the grid and its notes."""
    tasks = list(table.spec.tasks)
    shared = _show_shared(table)
    head = ["Model", "Mode", *tasks, "Mean"]
    if shared:
        head.append(f"Mean ({len(table.shared_tasks)} shared)")
    lines = [
        f"## {table.spec.title}",
        "",
        f"Setting `{table.spec.setting}`.",
        "",
        _md_row(head),
        _md_row(["---", "---"] + ["---:"] * (len(head) - 2)),
        _md_row(["*metric*", "", *(table.metrics[t] for t in tasks), ""] + ([""] if shared else [])),
    ]
    for row in table.rows:
        cells = [
            _label(row),
            row.mode,
            *(format_cell(row.cells.get(t), row.kind) for t in tasks),
            format_cell(row.mean, row.kind),
        ]
        if shared:
            cells.append(format_cell(row.mean_shared, row.kind))
        lines.append(_md_row(cells))
    if table.notes:
        lines += ["", *(f"- {note}" for note in table.notes)]
    return "\n".join(lines) + "\n"


def report_markdown(tables: list[Table], run_sources: list[tuple[str, str]]) -> str:
    """The whole ``tables.md``: provenance first, then every table."""
    parts = [
        "# ecellm results beside the eCeLLM paper",
        "",
        f"Paper rows: {paper_tables()['source']}; all paper numbers are paper-mode (reference scorer).",
        "Our rows show the evaluator's primary metric per task; the *invalid rate* row under each run is the "
        "share of outputs that could not be parsed (pooled over tasks in the Mean column). "
        "Delta rows are run minus baseline in the same scoring mode; negative values are losses.",
        "",
        "Inputs:",
        *(f"- `{label}`: {source}" for label, source in run_sources),
        "",
    ]
    parts += [table_markdown(t) for t in tables]
    return "\n".join(parts)


def table_csv(table: Table) -> str:
    """Wide CSV, one line per row, full precision; empty field = no value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    tasks = list(table.spec.tasks)
    writer.writerow(["label", "kind", "mode", *tasks, "mean", "mean_shared"])
    for row in table.rows:
        values = [row.cells.get(t) for t in tasks] + [row.mean, row.mean_shared]
        writer.writerow([row.label, row.kind, row.mode, *("" if v is None else repr(v) for v in values)])
    return buf.getvalue()
