"""``ecellm experiment``: the CLI face of :func:`ecellm.experiment.run_experiment`."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("experiment")
    def experiment_cmd(
        config: Annotated[
            str, typer.Argument(help="Experiment file, e.g. configs/experiments/cpu-small.yaml.")
        ],
        out: Annotated[
            str | None, typer.Option("--out", "-o", help="Output folder (default: the config's out_dir).")
        ] = None,
        plan: Annotated[
            bool, typer.Option("--plan", help="List the steps, cached or not, and the estimated time.")
        ] = False,
        stop_after: Annotated[
            int | None,
            typer.Option("--stop-after", help="Stop after this many steps that do work (rerun to continue)."),
        ] = None,
        no_progress: Annotated[
            bool, typer.Option("--no-progress", help="No per-sample progress bars.")
        ] = False,
    ) -> None:
        """Build the data, train every run, predict and score every test set, write the report (cached)."""
        from ecellm.experiment import run_experiment

        summary = run_experiment(
            config, stop_after=stop_after, plan_only=plan, progress=not no_progress, out=out
        )
        if plan:
            for s in summary["steps"]:
                typer.echo(f"{s['status']:<8} {s['step']}")
            typer.echo(f"estimated time left: {summary['estimated_minutes_left']:.1f} min")
        for name in ("report.md", "report.html"):
            if name in summary["report"]:
                typer.echo(f"wrote {summary['report'][name]}")
