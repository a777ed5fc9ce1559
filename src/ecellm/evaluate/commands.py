"""``ecellm evaluate``: the CLI face of :func:`ecellm.evaluate.run.evaluate_files`."""

from __future__ import annotations

from pathlib import Path

import typer


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    lenient = " +lenient" if result["lenient"] else ""
    table = Table(title=f"ecellm evaluate ({result['mode']} mode{lenient})")
    for col in ("task", "setting", "metric", "score", "n", "invalid", "coverage"):
        right = col in ("score", "n", "invalid", "coverage")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for r in result["results"]:
        table.add_row(
            r["task"],
            r["setting"],
            r["metric"],
            f"{r['score']:.4f}",
            str(r["n"]),
            str(r["invalid"]),
            f"{r['coverage']:.3f}",
        )
    Console().print(table)
    if result.get("bertscore_model"):
        typer.echo(f"BERTScore model: {result['bertscore_model']}")


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        data: str = typer.Option(
            ...,
            "--data",
            "-d",
            help="Dataset: build folder, JSONL/JSON/parquet, "
            "ECInstruct/ folder, save_to_disk folder or HF hub id.",
        ),
        predictions: Path = typer.Option(
            ...,
            "--predictions",
            "-p",
            help="ecellm JSONL {id, prediction} or the reference evaluation/{Task}/{Setting}.json layout.",
        ),
        mode: str = typer.Option("paper", "--mode", help="paper (reference numbers) or strict (corrected)."),
        lenient: bool = typer.Option(
            False, "--lenient", help="Extract answers from chatter (reported as such)."
        ),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the metrics JSON here."),
        tasks: str | None = typer.Option(
            None, "--tasks", help="Comma-separated tasks (abbreviations or names)."
        ),
        settings: str | None = typer.Option(None, "--settings", help="Comma-separated settings."),
        split: str = typer.Option("test", "--split", help="Split(s) to score."),
        qpr_labels: Path | None = typer.Option(None, "--qpr-labels", help="External QPR label.json."),
        bertscore_model: str | None = typer.Option(
            None,
            "--bertscore-model",
            help="BERTScore model name, hub id or folder (default roberta-large if cached, else MiniLM).",
        ),
        only_predicted: bool = typer.Option(
            False,
            "--only-predicted",
            help="Skip samples without a prediction instead of counting them invalid.",
        ),
    ) -> None:
        """Score predictions against references, per task and setting."""
        from ecellm.evaluate.run import evaluate_files

        result = evaluate_files(
            data,
            predictions,
            mode=mode,
            lenient=lenient,
            output=output,
            tasks=tasks,
            settings=settings,
            splits=split,
            qpr_labels=qpr_labels,
            bertscore_model=bertscore_model,
            only_predicted=only_predicted,
        )
        _print_table(result)
        if output is not None:
            typer.echo(f"wrote {output}")
