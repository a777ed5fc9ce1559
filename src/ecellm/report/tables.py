"""Lay our runs out beside the paper's rows, table by table, with invalid rates and deltas.

The tables are plain data (:class:`Table`, :class:`Row`) so the markdown, CSV, JSON and PNG
writers all show exactly the same numbers. Means are never silently computed over a different
task set than the paper's: ``mean`` needs every task of the table, and ``mean_shared`` is taken
over the tasks that every one of our rows covers (the same set for the paper rows), so a partial
run is compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from ecellm.report.inputs import Run
from ecellm.report.paper import PAPER_MODE, TableSpec, extra_spec, paper_tables, table_specs

ROW_KINDS = ("paper", "ours", "invalid_rate", "delta")


@dataclass
class Row:
    """One table row; ``cells`` maps task abbreviation to value (None = no result)."""

    label: str
    kind: str  # one of ROW_KINDS
    mode: str
    cells: dict[str, float | None]
    mean: float | None = None
    mean_shared: float | None = None
    n: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "kind": self.kind,
            "mode": self.mode,
            "cells": self.cells,
            "mean": self.mean,
            "mean_shared": self.mean_shared,
        }
        if self.n:
            out["n"] = self.n
        return out


@dataclass
class Table:
    spec: TableSpec
    metrics: dict[str, str]
    rows: list[Row]
    shared_tasks: list[str]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "title": self.spec.title,
            "setting": self.spec.setting,
            "tasks": list(self.spec.tasks),
            "metrics": self.metrics,
            "shared_tasks": self.shared_tasks,
            "rows": [r.to_dict() for r in self.rows],
            "notes": self.notes,
        }


def _mean(cells: dict[str, float | None], tasks: list[str] | tuple[str, ...]) -> float | None:
    values = [cells.get(t) for t in tasks]
    if not values or any(v is None for v in values):
        return None
    return fmean(values)  # type: ignore[arg-type]


def _pooled_invalid(results: dict, tasks: list[str] | tuple[str, ...]) -> float | None:
    """Invalid outputs over all outputs of the given tasks (pooled, so big tasks weigh more)."""
    picked = [results.get(t) for t in tasks]
    if not picked or any(r is None or r.invalid is None or r.n is None for r in picked):
        return None
    total = sum(r.n for r in picked)
    return sum(r.invalid for r in picked) / total if total else None


def _our_rows(run: Run, spec: TableSpec) -> list[tuple[str, dict]]:
    return [(mode, run.cells[(spec.setting, mode)]) for mode in run.modes(spec.setting)]


def _delta_summary(label: str, cells: dict[str, float | None]) -> str:
    up = [t for t, d in cells.items() if d is not None and d > 0]
    down = [t for t, d in cells.items() if d is not None and d < 0]
    same = [t for t, d in cells.items() if d is not None and d == 0]
    parts = [
        f"better on {len(up)} ({', '.join(up) or '-'})",
        f"worse on {len(down)} ({', '.join(down) or '-'})",
    ]
    if same:
        parts.append(f"unchanged on {len(same)} ({', '.join(same)})")
    return f"{label}: " + ", ".join(parts) + "."


def build_table(spec: TableSpec, runs: list[Run], baseline: Run | None = None) -> Table:
    """Paper rows first, then each of our runs (baseline first) with its invalid-rate row, then deltas."""
    paper_metrics = paper_tables()["metrics"]
    ours = ([baseline] if baseline else []) + runs
    entries = [(run, mode, res) for run in ours for mode, res in _our_rows(run, spec)]
    shared = [
        t
        for t in spec.tasks
        if all(res.get(t) is not None and res[t].score is not None for _r, _m, res in entries)
    ]
    notes: list[str] = []
    rows = [
        Row(
            name,
            "paper",
            PAPER_MODE,
            {t: cells.get(t) for t in spec.tasks},
            _mean(cells, spec.tasks),
            _mean(cells, shared),
        )
        for name, cells in spec.paper_rows
    ]
    metrics = {t: paper_metrics.get(t, "") for t in spec.tasks}
    for run, mode, res in entries:
        cells = {t: (res[t].score if t in res else None) for t in spec.tasks}
        rows.append(
            Row(
                run.label,
                "ours",
                mode,
                cells,
                _mean(cells, spec.tasks),
                _mean(cells, shared),
                n={t: (res[t].n if t in res else None) for t in spec.tasks},
            )
        )
        rates = {t: (res[t].invalid_rate if t in res else None) for t in spec.tasks}
        rows.append(
            Row(
                f"{run.label}: invalid rate",
                "invalid_rate",
                mode,
                rates,
                _pooled_invalid(res, spec.tasks),
                _pooled_invalid(res, shared),
            )
        )
        missing = [t for t in spec.tasks if cells[t] is None]
        if missing:
            notes.append(
                f"{run.label} [{mode}] has no score for {', '.join(missing)}; "
                f"its mean is over the {len(shared)} shared tasks only (mean_shared)."
            )
        if mode != PAPER_MODE and spec.paper_rows:
            notes.append(
                f"{run.label} is scored in {mode} mode; the paper rows are paper-mode, "
                "so that comparison is not like for like."
            )
        low = [
            f"{t} {res[t].coverage:.1%}"
            for t in spec.tasks
            if t in res
            and res[t].coverage is not None
            and res[t].coverage < 1
            and (res[t].invalid_rate is None or abs(res[t].coverage - (1 - res[t].invalid_rate)) > 1e-9)
        ]
        if low:
            notes.append(f"{run.label} [{mode}] coverage below 100%: {', '.join(low)}.")
        gone = [f"{t} {res[t].missing}/{res[t].n}" for t in spec.tasks if t in res and res[t].missing]
        if gone:
            notes.append(
                f"{run.label} [{mode}] has missing predictions (scored as wrong): {', '.join(gone)}."
            )
    if baseline is not None:
        rows.extend(_delta_rows(spec, runs, baseline, shared, notes))
    if not entries:
        notes.append(f"No run has results for {spec.setting}; only the paper rows are shown.")
    outside = sorted({t for _r, _m, res in entries for t in res} - set(spec.tasks))
    if outside:
        notes.append(f"Results for {', '.join(outside)} are not columns of this table and are not shown.")
    return Table(spec, metrics, rows, shared, list(dict.fromkeys(notes)))


def _delta_rows(
    spec: TableSpec, runs: list[Run], baseline: Run, shared: list[str], notes: list[str]
) -> list[Row]:
    """Run minus baseline per task, same scoring mode only; losses are shown as negative numbers."""
    out = []
    base_modes = baseline.modes(spec.setting)
    if not base_modes and any(run.modes(spec.setting) for run in runs):
        notes.append(f"{baseline.label} has no results for {spec.setting}, so this table has no delta row.")
    for run in runs:
        for mode in run.modes(spec.setting):
            if mode not in base_modes:
                if base_modes:
                    notes.append(
                        f"No delta for {run.label} [{mode}]: {baseline.label} has no {mode}-mode results."
                    )
                continue
            now, before = run.cells[(spec.setting, mode)], baseline.cells[(spec.setting, mode)]
            cells: dict[str, float | None] = {}
            for t in spec.tasks:
                a = now[t].score if t in now else None
                b = before[t].score if t in before else None
                cells[t] = None if a is None or b is None else a - b
                if t in now and t in before and now[t].n != before[t].n:
                    notes.append(
                        f"{t}: {run.label} was scored on n={now[t].n}, {baseline.label} on "
                        f"n={before[t].n}; the delta compares different sample sets."
                    )
            label = f"delta: {run.label} - {baseline.label}"
            out.append(Row(label, "delta", mode, cells, _mean(cells, spec.tasks), _mean(cells, shared)))
            notes.append(_delta_summary(f"{run.label} vs {baseline.label} [{mode}]", cells))
    return out


def build_tables(runs: list[Run], baseline: Run | None = None) -> list[Table]:
    """Every paper table (2 and 3 always; the others when a run has that setting) plus extra settings."""
    present = {s for run in ([baseline] if baseline else []) + runs for s in run.settings()}
    specs = list(table_specs())
    known = {s.setting for s in specs}
    specs += [extra_spec(s) for s in sorted(present - known)]
    return [build_table(s, runs, baseline) for s in specs if s.always or s.setting in present]
