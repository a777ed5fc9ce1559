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
    template: str | None = typer.Option(
        None,
        "--template",
        help="alpaca, mistral, chat, alpaca-ref, mistral-ref or flan-t5-ref; default: the model's own "
        "(its training record, a NingLab eCeLLM checkpoint's reference template, else alpaca).",
    ),
    decoding: str = typer.Option(
        "greedy",
        "--decoding",
        help="greedy (default) or reference (sampling: T 0.15, top_p 0.95, 100 tokens).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (the reference decoding samples)."),
    calibrate: bool = typer.Option(
        False,
        "--calibrate",
        help="Choice tasks: correct each answer's score by its score on a content-free input.",
    ),
    offsets: str | None = typer.Option(
        None,
        "--offsets",
        help="Choice tasks: per-task answer offsets file (default: the adapter's offsets.json, if any).",
    ),
    no_offsets: bool = typer.Option(False, "--no-offsets", help="Ignore the adapter's offsets.json."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run: skip ids already in --out."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Requests per batch (default: the backend's own; hf 8)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N samples."),
    tasks: list[str] | None = typer.Option(
        None, "--tasks", help="Task subset (repeatable or comma-separated)."
    ),
    settings: list[str] | None = typer.Option(None, "--settings", help="Setting subset."),
    split: str | None = typer.Option("test", "--split", help="Split to predict (train, val, test)."),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="auto: the backend's default (hf: fp32 weights, bf16 autocast on CPUs with native bf16); "
        "float32 (hf: fp32 throughout), bfloat16, float16. Backends with fixed weights refuse it.",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="openai: the API's base URL (default $OPENAI_BASE_URL, else OpenAI's)."
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="openai: environment variable holding the key (default OPENAI_API_KEY)."
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="openai: parallel requests."),
    requests_per_minute: float | None = typer.Option(
        None, "--requests-per-minute", min=0.001, help="openai: client-side rate limit."
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", min=0, help="openai: retries of 429/5xx/connection errors."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Predict every sample; one JSONL record per sample plus <out>.manifest.json."""
    from ecellm.data.loaders import load_samples
    from ecellm.infer.backends import capabilities
    from ecellm.infer.predict import check_out_path, predict, validate_options

    validate_options(mode=mode, template=template, backend=backend, dtype=dtype, decoding=decoding)
    check_out_path(out)
    options = {
        "base_url": base_url,
        "api_key_env": api_key_env,
        "concurrency": concurrency,
        "requests_per_minute": requests_per_minute,
        "max_retries": max_retries,
    }
    options = {k: v for k, v in options.items() if v is not None}
    refused = [k for k in options if k not in capabilities(backend).options]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        typer.echo(f"error: {flags}: not an option of --backend {backend}", err=True)
        raise typer.Exit(2)
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
        decoding=decoding,
        seed=seed,
        calibrate=calibrate,
        offsets=False if no_offsets else offsets,
        resume=resume,
        overwrite=overwrite,
        batch_size=batch_size,
        limit=limit,
        progress=not no_progress,
        source=str(data),
        backend_kw={"dtype": dtype, **options},
    )
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
