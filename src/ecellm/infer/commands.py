"""``ecellm predict``: a thin CLI over :func:`ecellm.infer.predict.predict`."""

from __future__ import annotations

from pathlib import Path

import typer


def _names(values: list[str] | None) -> list[str] | None:
    out = [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
    return out or None


def predict_cmd(
    model: str = typer.Option(
        "smollm2-135m", "--model", help="Embedded name, HF id or folder, .gguf file, or API model."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Samples: ecellm JSONL, build folder, reference layout, parquet..."
    ),
    out: Path = typer.Option(..., "--out", help="Predictions JSONL (appended record by record)."),
    adapter: str | None = typer.Option(None, "--adapter", help="PEFT adapter folder for the model."),
    backend: str = typer.Option("hf", "--backend", help="hf, llamacpp, openai or vllm."),
    mode: str = typer.Option(
        "auto", "--mode", help="auto (per-task default), generate, choice or constrained."
    ),
    template: str = typer.Option("alpaca", "--template", help="alpaca, mistral or chat."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run: skip ids already in --out."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N samples."),
    tasks: list[str] | None = typer.Option(
        None, "--tasks", help="Task subset (repeatable or comma-separated)."
    ),
    settings: list[str] | None = typer.Option(None, "--settings", help="Setting subset."),
    split: str | None = typer.Option("test", "--split", help="Split to predict (train, val, test)."),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="hf weights: auto (fp32 on CPU), float32, bfloat16 (faster prefill on CPUs with bf16).",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Predict every sample; one JSONL record per sample plus <out>.manifest.json."""
    from ecellm.data.loaders import load_samples
    from ecellm.infer.predict import predict

    samples = load_samples(data, tasks=_names(tasks), settings=_names(settings), splits=split)
    if not samples:
        typer.echo(f"error: no samples in {data} match the filters", err=True)
        raise typer.Exit(2)
    path = predict(
        samples,
        out=out,
        model=model,
        adapter=adapter,
        backend=backend,
        mode=mode,
        template=template,
        resume=resume,
        overwrite=overwrite,
        batch_size=batch_size,
        limit=limit,
        progress=not no_progress,
        source=str(data),
        backend_kw={"dtype": dtype} if backend == "hf" and dtype != "auto" else None,
    )
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
