"""``make_report``: metrics files in, paper-aligned markdown/JSON/CSV tables and PNG charts out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecellm.io import atomic_open, write_json
from ecellm.manifest import manifest_path, write_output_manifest
from ecellm.report.charts import table_png
from ecellm.report.inputs import Run, Source, load_runs
from ecellm.report.paper import paper_tables
from ecellm.report.render import report_markdown, table_csv
from ecellm.report.tables import Table, build_tables


def _write_text(path: Path, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def _baseline(baseline: Source | tuple[str, Source] | None) -> Run | None:
    if baseline is None:
        return None
    if isinstance(baseline, tuple):
        return load_runs([baseline])[0]
    default = "baseline" if not isinstance(baseline, str | os.PathLike) else Path(baseline).stem
    return load_runs(baseline, label=default)[0]


def report_data(runs: list[Run], tables: list[Table], baseline: Run | None) -> dict[str, Any]:
    """The ``tables.json`` document: provenance and every table with full-precision values."""
    return {
        "paper_source": paper_tables()["source"],
        "paper_mode": "paper",
        "runs": [{"label": r.label, "source": r.source} for r in runs],
        "baseline": None if baseline is None else {"label": baseline.label, "source": baseline.source},
        "tables": [t.to_dict() for t in tables],
    }


def make_report(
    results_or_metrics_paths: Source | Sequence[Any],
    out_dir: str | os.PathLike[str],
    *,
    label: str = "ecellm",
    baseline: Source | tuple[str, Source] | None = None,
) -> dict[str, Path]:
    """Write ``tables.md``, ``tables.json``, one CSV and one PNG per table, and a manifest.

    ``results_or_metrics_paths``: a metrics path or ``evaluate()`` dict (labelled ``label``), or a
    list of paths, dicts and ``(label, path_or_dict)`` pairs, one report row each. ``baseline``
    (path, dict or ``(label, source)``) adds the "before" row and a delta row per run. All inputs
    are validated before the first file is written. Returns ``{file name: path}``.
    """
    runs = load_runs(results_or_metrics_paths, label=label)
    base = _baseline(baseline)
    if base is not None and base.label in {r.label for r in runs}:
        base.label = f"{base.label} (baseline)"
    tables = build_tables(runs, base)
    out = Path(out_dir)
    written: dict[str, Path] = {}
    everyone = ([base] if base else []) + runs
    _write_text(out / "tables.md", report_markdown(tables, [(r.label, r.source) for r in everyone]))
    written["tables.md"] = out / "tables.md"
    write_json(out / "tables.json", report_data(runs, tables, base))
    written["tables.json"] = out / "tables.json"
    for table in tables:
        csv_path, png_path = out / f"{table.spec.key}.csv", out / f"{table.spec.key}.png"
        _write_text(csv_path, table_csv(table))
        table_png(table, png_path)
        written[csv_path.name], written[png_path.name] = csv_path, png_path
    sources = [r.source for r in everyone if r.source != "<results>"]
    write_output_manifest(
        out,
        folder=True,
        kind="report",
        config={
            "label": label,
            "runs": [r.label for r in runs],
            "baseline": base.label if base else None,
            "tables": [t.spec.key for t in tables],
        },
        data=sources,
    )
    written["manifest.json"] = manifest_path(out, folder=True)
    return written
