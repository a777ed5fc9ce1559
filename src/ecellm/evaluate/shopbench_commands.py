"""``ecellm shopbench score``: the CLI face of :func:`ecellm.evaluate.shopbench.score`."""

from __future__ import annotations

from pathlib import Path

import typer

from ecellm.errors import InputError


def summary_lines(result: dict) -> list[str]:
    """Plain-text per-task, per-track and overall lines for the terminal."""
    lines = [
        f"ShopBench ({result['mode']} mode): {result['n']} records, {result['missing']} missing, "
        f"{result['invalid']} invalid"
    ]
    for t in result["tasks"]:
        lines.append(
            f"  {t['task_name']:<10} {t['metric']:<30} {t['score']:.4f}  n={t['n']} "
            f"invalid={t['invalid']} missing={t['missing']}  [{t['track']}]"
        )
    for tr in result["tracks"]:
        lines.append(f"  track {tr['track']}: {tr['score']:.4f} ({tr['tasks']} tasks)")
    o = result["overall"]
    lines.append(f"  overall: mean of tasks {o['task_mean']:.4f}, mean of tracks {o['track_mean']:.4f}")
    return lines


def register(app: typer.Typer) -> None:
    shop = typer.Typer(help="ShopBench (Amazon KDD Cup 2024) scoring.", no_args_is_help=True)

    @shop.command("score")
    def score_cmd(
        data: Path = typer.Option(..., "--data", help="ShopBench records (JSONL or JSON array) with truths."),
        predictions: Path = typer.Option(..., "--predictions", help="JSONL {id, prediction} or a JSON list."),
        mode: str = typer.Option("official", "--mode", help="official (starter kit, bugs kept) or strict."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the full result JSON here."),
        multilingual_model: str | None = typer.Option(
            None, "--multilingual-model", help="Local paraphrase-multilingual-MiniLM-L12-v2 folder."
        ),
        per_sample: bool = typer.Option(False, "--per-sample", help="Include per-sample parses and scores."),
    ) -> None:
        """Score model outputs on ShopBench per task, per track and overall."""
        from ecellm.evaluate.shopbench import score
        from ecellm.io import write_json
        from ecellm.manifest import write_manifest

        if mode not in ("official", "strict"):
            raise InputError(f"unknown mode {mode!r} (official or strict)", field="--mode")
        result = score(
            data, predictions, mode=mode, multilingual_model=multilingual_model, per_sample=per_sample
        )
        if output is not None:
            write_json(output, result)
            write_manifest(
                output.with_name(output.name + ".manifest.json"),
                kind="shopbench-score",
                config={"mode": mode, "per_sample": per_sample},
                data=[data, predictions],
            )
        for line in summary_lines(result):
            typer.echo(line)

    app.add_typer(shop, name="shopbench")
