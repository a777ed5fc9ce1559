"""``ecellm evaluate``: the CLI face of :func:`ecellm.evaluate.run.evaluate_files`.

``ecellm shopbench score`` is an alias kept for earlier scripts: the same function with
``--mode official`` as its default. ``ecellm shopbench compare`` is the CLI face of
:func:`ecellm.evaluate.run.compare_files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecellm.cli_options import deprecated, one_of, pick_out


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


def _modes() -> tuple[str, ...]:
    from ecellm.evaluate.evaluator import MODES

    return MODES


Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Dataset: build folder, JSONL/JSON/parquet, ECInstruct/ folder, save_to_disk folder "
        "or HF hub id.",
    ),
]
Predictions = Annotated[
    Path,
    typer.Option(
        "--predictions",
        "-p",
        help="ecellm JSONL {id, prediction}, a JSON list in data order, or the reference "
        "evaluation/{Task}/{Setting}.json layout.",
    ),
]
Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write the result JSON here (and its manifest).")
]
# the flag's earlier name, kept working for scripts
OldOutput = Annotated[
    Path | None, typer.Option("--output", hidden=True, callback=deprecated("--out"), help="Same as --out.")
]
AllowPartial = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="Score even if some samples have no prediction (they count as invalid); "
        "without it partial coverage is an error.",
    ),
]
Bootstrap = Annotated[
    int, typer.Option("--bootstrap", min=0, help="Resamples of the seeded 95% interval (0 = none).")
]
Seed = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]


def _mode_option(default_help: str) -> typer.models.OptionInfo:
    return typer.Option("--mode", callback=one_of(_modes), help=default_help)


def register(app: typer.Typer) -> None:
    shop = typer.Typer(help="ShopBench (Amazon KDD Cup 2024): alias of evaluate.", no_args_is_help=True)
    app.add_typer(shop, name="shopbench")

    @app.command("evaluate")
    def evaluate_cmd(
        data: Data,
        predictions: Predictions,
        mode: Annotated[
            str,
            _mode_option(
                "paper or official (the reference evaluator's numbers, defects kept) or strict (corrected)."
            ),
        ] = "paper",
        lenient: Annotated[
            bool, typer.Option("--lenient", help="Extract answers from chatter (reported as such).")
        ] = False,
        out: Out = None,
        output: OldOutput = None,
        tasks: Annotated[
            str | None, typer.Option("--tasks", help="Comma-separated tasks (abbreviations or names).")
        ] = None,
        settings: Annotated[str | None, typer.Option("--settings", help="Comma-separated settings.")] = None,
        split: Annotated[str, typer.Option("--split", help="Split(s) to score, comma-separated.")] = "test",
        qpr_labels: Annotated[
            Path | None, typer.Option("--qpr-labels", help="External QPR label.json.")
        ] = None,
        bertscore_model: Annotated[
            str | None,
            typer.Option(
                "--bertscore-model",
                help="BERTScore model name, hub id or folder (default roberta-large if cached, else MiniLM).",
            ),
        ] = None,
        only_predicted: Annotated[
            bool,
            typer.Option(
                "--only-predicted", help="Skip samples without a prediction instead of counting them invalid."
            ),
        ] = False,
        allow_partial: AllowPartial = False,
        log_samples: Annotated[
            Path | None,
            typer.Option(
                "--log-samples",
                help="Per-sample JSONL: id, task, setting, gold, prediction, parsed, valid, score.",
            ),
        ] = None,
        bootstrap: Bootstrap = 1000,
        seed: Seed = 0,
    ) -> None:
        """Score predictions against references, per task and setting (ShopBench: per task,
        track and overall)."""
        from ecellm.evaluate.run import evaluate_files

        out = pick_out(out, output)
        result = evaluate_files(
            data,
            predictions,
            mode=mode,
            lenient=lenient,
            out=out,
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
        for path in (out, log_samples):
            if path is not None:
                typer.echo(f"wrote {path}")

    @shop.command("score")
    def shopbench_score_cmd(
        data: Annotated[str, typer.Option("--data", "-d", help="ShopBench records (JSONL or JSON array).")],
        predictions: Predictions,
        mode: Annotated[str, _mode_option("official (starter kit, quirks kept) or strict.")] = "official",
        out: Out = None,
        output: OldOutput = None,
        allow_partial: AllowPartial = False,
    ) -> None:
        """Same as ``ecellm evaluate --mode official`` on a ShopBench file."""
        from ecellm.evaluate.run import evaluate_files

        out = pick_out(out, output)
        result = evaluate_files(data, predictions, mode=mode, out=out, allow_partial=allow_partial)
        _print_table(result)
        if out is not None:
            typer.echo(f"wrote {out}")

    @shop.command("compare")
    def shopbench_compare_cmd(
        data: Annotated[
            str, typer.Option("--data", "-d", help="ShopBench records or a shopping build folder.")
        ],
        base: Annotated[Path, typer.Option("--base", help="Predictions of the base model.")],
        tuned: Annotated[
            Path, typer.Option("--tuned", help="Predictions of the tuned model (same records).")
        ],
        split: Annotated[
            str | None, typer.Option("--split", help="Split of a build folder (e.g. test).")
        ] = None,
        mode: Annotated[str, _mode_option("official or strict.")] = "official",
        bootstrap: Bootstrap = 1000,
        seed: Seed = 0,
        out: Out = None,
        output: OldOutput = None,
    ) -> None:
        """Tuned minus base per task, per task type (family) and over the families, each with its
        paired bootstrap interval, and both runs' unparseable answers."""
        from ecellm.evaluate.run import compare_files

        out = pick_out(out, output)
        res = compare_files(
            data, base, tuned, split=split, mode=mode, bootstrap=bootstrap, seed=seed, out=out
        )
        pct = f"{res['level']:.0%}"
        typer.echo(
            f"{'group':<44} {'base':>7} {'tuned':>7} {'delta':>7}  {pct} interval    invalid b/t"
            "  most common answer b / t"
        )
        for name, r in res["groups"].items():
            top = r.get("most_common")
            tops = (
                ""
                if top is None
                else " / ".join(f"{top[w]['share']:.0%} {top[w]['answer'][:12]}" for w in ("base", "tuned"))
            )
            typer.echo(
                f"{name:<44} {r['base']:7.3f} {r['tuned']:7.3f} {r['delta']:+7.3f}  "
                f"[{r['lo']:+.3f}, {r['hi']:+.3f}]  {r['invalid']['base']}/{r['invalid']['tuned']}"
                f"{'':<9}{tops}".rstrip()
            )
        for name, r in [*res["families"].items(), ("mean over families", res["overall"])]:
            typer.echo(
                f"{name:<44} {r['base']:7.3f} {r['tuned']:7.3f} {r['delta']:+7.3f}  "
                f"[{r['lo']:+.3f}, {r['hi']:+.3f}]"
            )
        if out is not None:
            typer.echo(f"wrote {out}")
