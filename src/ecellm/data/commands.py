"""``ecellm data build|stats|validate|fetch``: thin CLI wrappers over the data API."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

log = logging.getLogger("ecellm.data")
data_app = typer.Typer(help="Build, inspect, validate and fetch ECInstruct data.", no_args_is_help=True)


@data_app.command("build")
def build_cmd(
    raw_dir: Path = typer.Option(..., "--raw-dir", help="Folder in the ../shared/raw layout."),
    out: Path = typer.Option(..., "--out", help="Build folder to (re)create."),
    config: Path | None = typer.Option(None, "--config", help="YAML overriding the ECInstruct-lite config."),
    tasks: list[str] | None = typer.Option(
        None, "--tasks", help="Task subset, repeatable or comma-separated."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Override the config seed."),
    family: str = typer.Option(
        "ecinstruct", "--family", help="ecinstruct, or shopping (ShopBench-format records; docs/shopping.md)."
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="Build profile layered under --config: 'reference' (the eCeLLM rules)."
    ),
) -> None:
    """Build ECInstruct from raw sources: JSONL, parquet, HF DatasetDict, manifest, quality report."""
    from ecellm.data.pipeline import build_dataset

    if family == "shopping":
        from ecellm.data.shopping import build_shopping

        if profile:
            raise typer.BadParameter("--profile applies to ECInstruct builds", param_hint="--profile")
        if tasks:
            raise typer.BadParameter("--tasks applies to ECInstruct; configure shopping families in --config")
        build_shopping(raw_dir, out, config=config, seed=seed, log=log.info)
        return
    if family != "ecinstruct":
        raise typer.BadParameter(f"unknown family {family!r} (ecinstruct or shopping)", param_hint="--family")

    names = [t.strip() for item in tasks or [] for t in item.split(",") if t.strip()] or None
    manifest = build_dataset(
        raw_dir, out, config=config, tasks=names, seed=seed, log=log.info, profile=profile
    )
    for abbr, why in manifest.get("skipped", {}).items():
        log.warning("%s skipped: %s", abbr, why)


def _print_stats(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from ecellm.data.stats import counts_table

    console = Console()
    table = Table(title=f"{stats.get('name') or 'build'}: {stats['total']} samples")
    for col in ("task", "setting", "train", "val", "test"):
        table.add_column(col, justify="right" if col in ("train", "val", "test") else "left")
    for row in counts_table(stats["counts"]):
        table.add_row(*row)
    console.print(table)
    labels = Table(title="Label distributions (Diverse settings)")
    for col in ("task", "setting", "split", "labels"):
        labels.add_column(col)
    for task, per_setting in stats["labels"].items():
        for setting, per_split in per_setting.items():
            for split, dist in per_split.items():
                labels.add_row(task, setting, split, ", ".join(f"{k}={v}" for k, v in sorted(dist.items())))
    console.print(labels)


@data_app.command("stats")
def stats_cmd(
    build_dir: Path = typer.Argument(..., help="A build folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Print sample counts per task/setting/split and label distributions of a build."""
    from ecellm.data.stats import build_stats

    stats = build_stats(build_dir)
    if as_json:
        typer.echo(json.dumps(stats, indent=2, sort_keys=True))
    else:
        _print_stats(stats)


@data_app.command("validate")
def validate_cmd(
    build_dir: Path = typer.Argument(..., help="A build folder."),
    max_problems: int = typer.Option(20, "--max", help="Print at most this many problems."),
) -> None:
    """Check schema, gold answers, duplicate ids, train/val/test leakage and QPR labels."""
    from ecellm.data.validate import validate_build

    problems = validate_build(build_dir)
    for p in problems[:max_problems]:
        typer.echo(f"error: {p}", err=True)
    if problems:
        more = f" ({len(problems) - max_problems} more not shown)" if len(problems) > max_problems else ""
        typer.echo(f"invalid: {len(problems)} problem(s){more}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {build_dir} is valid")


@data_app.command("fetch")
def fetch_cmd(
    dest: Path | None = typer.Option(None, "--dest", help="Cache folder (default ~/.cache/ecellm/raw)."),
    mirror: Path | None = typer.Option(
        None, "--from", help="Copy from a local mirror instead of downloading."
    ),
    only: list[str] | None = typer.Option(None, "--only", help="Path prefixes to fetch (e.g. esci, pqa)."),
    force: bool = typer.Option(False, "--force", help="Re-fetch files already in the cache."),
) -> None:
    """Download (or copy from a mirror) the official raw files, verifying known checksums."""
    from ecellm.data.fetch import fetch

    fetch(dest, mirror=mirror, only=only, force=force, log=log.info)


@data_app.command("export")
def export_cmd(
    source: str = typer.Argument(..., help="A build folder (or any ECInstruct distribution)."),
    fmt: str = typer.Option(..., "--format", "-f", help="lm-eval, llamafactory or messages."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (replaced when it is an export)."),
    template: str = typer.Option("alpaca", "--template", help="Prompt template (any but chat)."),
    tasks: list[str] | None = typer.Option(None, "--tasks", help="Task subset (repeatable or a,b)."),
    settings: list[str] | None = typer.Option(None, "--settings", help="Settings to export (default all)."),
    splits: list[str] | None = typer.Option(
        None, "--splits", help="Splits to export (default: test for lm-eval, all otherwise)."
    ),
) -> None:
    """Export samples for lm-evaluation-harness, LLaMA-Factory or TRL (chat messages JSONL)."""
    from ecellm.data.export import export_build

    def names(values: list[str] | None) -> list[str] | None:
        return [v.strip() for item in values or [] for v in item.split(",") if v.strip()] or None

    summary = export_build(
        source, out, fmt=fmt, template=template, tasks=names(tasks), settings=names(settings),
        splits=names(splits),
    )
    log.info("exported %d samples as %s", summary["samples"], fmt)
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Attach the ``data`` command group to the main CLI."""
    app.add_typer(data_app, name="data")
