"""``ecellm data build|stats|validate|fetch``: thin CLI wrappers over the data API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from ecellm.cli_options import deprecated, one_of, pick_out

log = logging.getLogger("ecellm.data")
FAMILIES = ("ecinstruct", "shopping")  # build_dataset and build_shopping


def _export_formats() -> tuple[str, ...]:
    from ecellm.data.export import FORMATS

    return FORMATS


def _text_templates() -> tuple[str, ...]:
    from ecellm.data.export import TEXT_TEMPLATES

    return tuple(TEXT_TEMPLATES)


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


def register(app: typer.Typer) -> None:
    """Attach the ``data`` command group to the main CLI."""
    data_app = typer.Typer(help="Build, inspect, validate and fetch ECInstruct data.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("build")
    def build_cmd(
        raw_dir: Annotated[Path, typer.Option("--raw-dir", help="Folder in the ../shared/raw layout.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Build folder to (re)create.")],
        config: Annotated[
            Path | None, typer.Option("--config", help="YAML overriding the ECInstruct-lite config.")
        ] = None,
        tasks: Annotated[
            list[str] | None, typer.Option("--tasks", help="Task subset, repeatable or comma-separated.")
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Override the config seed.")] = None,
        family: Annotated[
            str,
            typer.Option(
                "--family",
                callback=one_of(lambda: FAMILIES),
                help="ecinstruct, or shopping (ShopBench-format records; docs/shopping.md).",
            ),
        ] = "ecinstruct",
        profile: Annotated[
            str | None,
            # checked by the build's config loader, before any raw file is read
            typer.Option(
                "--profile", help="Build profile layered under --config: 'reference' (the eCeLLM rules)."
            ),
        ] = None,
    ) -> None:
        """Build ECInstruct from raw sources: JSONL, parquet, HF DatasetDict, manifest, quality report."""
        from ecellm.data.pipeline import build_dataset

        if family == "shopping":
            from ecellm.data.shopping import build_shopping

            if profile:
                raise typer.BadParameter("--profile applies to ECInstruct builds", param_hint="--profile")
            if tasks:
                raise typer.BadParameter(
                    "--tasks applies to ECInstruct; configure shopping families in --config"
                )
            build_shopping(raw_dir, out, config=config, seed=seed, log=log.info)
            return

        names = [t.strip() for item in tasks or [] for t in item.split(",") if t.strip()] or None
        manifest = build_dataset(
            raw_dir, out, config=config, tasks=names, seed=seed, log=log.info, profile=profile
        )
        for abbr, why in manifest.get("skipped", {}).items():
            log.warning("%s skipped: %s", abbr, why)

    @data_app.command("stats")
    def stats_cmd(
        build_dir: Annotated[Path, typer.Argument(help="A build folder.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
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
        build_dir: Annotated[Path, typer.Argument(help="A build folder.")],
        max_problems: Annotated[
            int, typer.Option("--max", min=1, help="Print at most this many problems.")
        ] = 20,
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
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Cache folder (default ~/.cache/ecellm/raw).")
        ] = None,
        dest: Annotated[
            Path | None,
            typer.Option("--dest", hidden=True, callback=deprecated("--out"), help="Same as --out."),
        ] = None,
        mirror: Annotated[
            Path | None, typer.Option("--from", help="Copy from a local mirror instead of downloading.")
        ] = None,
        only: Annotated[
            list[str] | None, typer.Option("--only", help="Path prefixes to fetch (e.g. esci, pqa).")
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Re-fetch files already in the cache.")] = False,
    ) -> None:
        """Download (or copy from a mirror) the official raw files, verifying known checksums."""
        from ecellm.data.fetch import fetch

        fetch(pick_out(out, dest, old_flag="--dest"), mirror=mirror, only=only, force=force, log=log.info)

    @data_app.command("export")
    def export_cmd(
        source: Annotated[str, typer.Argument(help="A build folder (or any ECInstruct distribution).")],
        fmt: Annotated[
            str,
            typer.Option(
                "--format", "-f", callback=one_of(_export_formats), help="lm-eval, llamafactory or messages."
            ),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output folder (replaced when it is an export).")
        ],
        template: Annotated[
            str,
            typer.Option(
                "--template", callback=one_of(_text_templates), help="Prompt template (any but chat)."
            ),
        ] = "alpaca",
        tasks: Annotated[
            list[str] | None, typer.Option("--tasks", help="Task subset (repeatable or a,b).")
        ] = None,
        settings: Annotated[
            list[str] | None, typer.Option("--settings", help="Settings to export (default all).")
        ] = None,
        splits: Annotated[
            list[str] | None,
            typer.Option("--splits", help="Splits to export (default: test for lm-eval, all otherwise)."),
        ] = None,
    ) -> None:
        """Export samples for lm-evaluation-harness, LLaMA-Factory or TRL (chat messages JSONL)."""
        from ecellm.data.export import export_build

        def names(values: list[str] | None) -> list[str] | None:
            return [v.strip() for item in values or [] for v in item.split(",") if v.strip()] or None

        summary = export_build(
            source,
            out,
            fmt=fmt,
            template=template,
            tasks=names(tasks),
            settings=names(settings),
            splits=names(splits),
        )
        log.info("exported %d samples as %s", summary["samples"], fmt)
        typer.echo(str(out))
