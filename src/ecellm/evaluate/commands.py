"""``ecellm evaluate``: the CLI face of :func:`ecellm.evaluate.run.evaluate_files`.

``ecellm shopbench score`` is an alias kept for earlier scripts: the same function with
``--mode official`` as its default.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    lenient = " +lenient" if result["lenient"] else ""
    table = Table(title=f"ecellm evaluate ({result['mode']} mode{lenient})")
    for col in ("task", "setting", "metric", "score", "n", "invalid", "coverage"):
        right = col in ("score", "n", "invalid", "coverage")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    notes = deviation_notes(result)
    for r in result["results"]:
        marked = bool((r.get("metrics") or {}).get("paper_deviations"))
        table.add_row(
            r["task"],
            r["setting"],
            r["metric"],
            f"{r['score']:.4f}" + ("*" if marked else ""),  # on the score: a narrow table cuts text
            str(r["n"]),
            str(r["invalid"]),
            f"{r['coverage']:.3f}",
        )
    if notes:  # part of the table itself, so a copied table keeps the warning
        table.caption = escape("* not the paper's measurement: " + "; ".join(notes))
    Console().print(table)
    if result.get("bootstrap"):  # below the table, which already fills 80 columns
        b = result["bootstrap"]
        typer.echo(f"{b['level']:.0%} bootstrap intervals ({b['resamples']} resamples, seed {b['seed']}):")
        for r in result["results"]:
            ci = r["ci"]
            typer.echo(
                f"  {r['task']:<4} {r['setting']:<24} {r['score']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]"
            )
    if result.get("bertscore_model"):
        fallback = f" (fallback: {result['bertscore_fallback']})" if result.get("bertscore_fallback") else ""
        typer.echo(f"BERTScore model: {result['bertscore_model']}{fallback}")
    for line in summary_lines(result):
        typer.echo(line)


def deviation_notes(result: dict) -> list[str]:
    """The distinct ``paper_deviations`` of the result's rows, in row order."""
    notes: list[str] = []
    for r in result["results"]:
        for note in (r.get("metrics") or {}).get("paper_deviations") or []:
            if note not in notes:
                notes.append(note)
    return notes


def summary_lines(result: dict) -> list[str]:
    """Per-track and overall lines of the task families that summarise (ShopBench)."""
    lines = []
    for family, summary in sorted((result.get("summary") or {}).items()):
        for tr in summary.get("tracks", []):
            lines.append(f"{family} track {tr['track']}: {tr['score']:.4f} ({tr['tasks']} tasks)")
        o = summary.get("overall")
        if o:
            lines.append(
                f"{family} overall: mean of tasks {o['task_mean']:.4f}, mean of tracks {o['track_mean']:.4f}"
            )
    return lines


def _check_mode(mode: str) -> None:
    from ecellm.errors import InputError
    from ecellm.evaluate.evaluator import MODES

    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r} (choose {', '.join(MODES)})", field="--mode")


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
        mode: str = typer.Option(
            "paper",
            "--mode",
            help="paper or official (the reference evaluator's numbers, defects kept) or strict (corrected).",
        ),
        lenient: bool = typer.Option(
            False, "--lenient", help="Extract answers from chatter (reported as such)."
        ),
        output: Path | None = typer.Option(
            None, "--out", "--output", "-o", help="Write the metrics JSON here."
        ),
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
        allow_partial: bool = typer.Option(
            False,
            "--allow-partial",
            help="Score even if some samples have no prediction (they count as invalid); "
            "without it partial coverage is an error.",
        ),
        log_samples: Path | None = typer.Option(
            None,
            "--log-samples",
            help="Per-sample JSONL: id, task, setting, gold, prediction, parsed, valid, score.",
        ),
        bootstrap: int = typer.Option(
            1000, "--bootstrap", help="Resamples for the seeded 95% interval of every score (0 = none)."
        ),
        seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    ) -> None:
        """Score predictions against references, per task and setting (ShopBench: per task,
        track and overall)."""
        from ecellm.evaluate.run import evaluate_files

        _check_mode(mode)
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
            allow_partial=allow_partial,
            log_samples=log_samples,
            bootstrap=bootstrap,
            seed=seed,
        )
        _print_table(result)
        if output is not None:
            typer.echo(f"wrote {output}")
        if log_samples is not None:
            typer.echo(f"wrote {log_samples}")

    shop = typer.Typer(help="ShopBench (Amazon KDD Cup 2024): alias of evaluate.", no_args_is_help=True)

    @shop.command("score")
    def shopbench_score_cmd(
        data: str = typer.Option(..., "--data", "-d", help="ShopBench records (JSONL or JSON array)."),
        predictions: Path = typer.Option(
            ..., "--predictions", "-p", help="JSONL {id, prediction} or a JSON list in data order."
        ),
        mode: str = typer.Option("official", "--mode", help="official (starter kit, quirks kept) or strict."),
        output: Path | None = typer.Option(
            None, "--output", "--out", "-o", help="Write the result JSON here."
        ),
        allow_partial: bool = typer.Option(
            False, "--allow-partial", help="Score even if some records have no prediction (scored 0)."
        ),
    ) -> None:
        """Same as ``ecellm evaluate --mode official`` on a ShopBench file."""
        from ecellm.evaluate.run import evaluate_files

        _check_mode(mode)
        result = evaluate_files(data, predictions, mode=mode, output=output, allow_partial=allow_partial)
        _print_table(result)
        if output is not None:
            typer.echo(f"wrote {output}")

    @shop.command("compare")
    def shopbench_compare_cmd(
        data: str = typer.Option(..., "--data", "-d", help="ShopBench records or a shopping build folder."),
        base: Path = typer.Option(..., "--base", help="Predictions of the base model."),
        tuned: Path = typer.Option(..., "--tuned", help="Predictions of the tuned model (same records)."),
        split: str | None = typer.Option(None, "--split", help="Split of a build folder (e.g. test)."),
        mode: str = typer.Option("official", "--mode", help="official or strict."),
        bootstrap: int = typer.Option(1000, "--bootstrap", help="Resamples of the paired interval."),
        seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Write the comparison JSON here."),
    ) -> None:
        """Tuned minus base per task, per task type (family) and over the families, each with its
        paired bootstrap interval, and both runs' unparseable answers."""
        from ecellm.data.loaders import load_samples
        from ecellm.evaluate.paired_records import paired_families
        from ecellm.evaluate.predictions import load_predictions
        from ecellm.evaluate.run import check_coverage, check_writable
        from ecellm.io import atomic_open

        _check_mode(mode)
        if output is not None:
            check_writable(output)
        samples = load_samples(data, splits=split)
        runs = {}
        for name, path in (("base", base), ("tuned", tuned)):
            runs[name] = load_predictions(path, samples)
            check_coverage(samples, runs[name], str(path), allow_partial=False)
        res = paired_families(samples, runs["base"], runs["tuned"], mode=mode, resamples=bootstrap, seed=seed)
        pct = f"{res['level']:.0%}"
        typer.echo(f"{'group':<44} {'base':>7} {'tuned':>7} {'delta':>7}  {pct} interval    invalid b/t")
        for name, r in res["groups"].items():
            typer.echo(
                f"{name:<44} {r['base']:7.3f} {r['tuned']:7.3f} {r['delta']:+7.3f}  "
                f"[{r['lo']:+.3f}, {r['hi']:+.3f}]  {r['invalid']['base']}/{r['invalid']['tuned']}"
            )
        for name, r in [*res["families"].items(), ("mean over families", res["overall"])]:
            typer.echo(
                f"{name:<44} {r['base']:7.3f} {r['tuned']:7.3f} {r['delta']:+7.3f}  "
                f"[{r['lo']:+.3f}, {r['hi']:+.3f}]"
            )
        if output is not None:
            with atomic_open(output) as fh:
                json.dump(res, fh, indent=2, sort_keys=True)
            typer.echo(f"wrote {output}")

    app.add_typer(shop, name="shopbench")
