"""``ecellm predict``: a thin CLI over :func:`ecellm.infer.predict.predict`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer

from ecellm.cli_options import one_of


def _names(values: list[str] | None) -> list[str] | None:
    out = [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
    return out or None


def _choices(name: str) -> Callable[[], Iterable[str]]:
    """The values the Python API accepts for option ``name`` (read when the option is parsed)."""

    def allowed() -> Iterable[str]:
        if name == "mode":
            from ecellm.infer.requests import MODES as values
        elif name == "template":
            from ecellm.prompts import TEMPLATES as values
        elif name == "backend":
            from ecellm.infer.backends import BACKENDS as values
        elif name == "dtype":
            from ecellm.infer.predict import DTYPES as values
        else:
            from ecellm.infer.decoding import PRESETS as values
        return tuple(values)

    return allowed


def register(app: typer.Typer) -> None:

    @app.command("predict")
    def predict_cmd(
        data: Annotated[
            Path,
            typer.Option("--data", help="Samples: ecellm JSONL, build folder, reference layout, parquet..."),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Predictions JSONL (appended record by record).")
        ],
        model: Annotated[
            str,
            typer.Option("--model", "-m", help="Embedded name, HF id or folder, .gguf file, or API model."),
        ] = "smollm2-135m",
        adapter: Annotated[
            str | None, typer.Option("--adapter", help="PEFT adapter folder for the model.")
        ] = None,
        backend: Annotated[
            str,
            typer.Option(
                "--backend", callback=one_of(_choices("backend")), help="hf, llamacpp, openai or vllm."
            ),
        ] = "hf",
        mode: Annotated[
            str,
            typer.Option(
                "--mode",
                callback=one_of(_choices("mode")),
                help="auto (per-task default), generate, choice or constrained.",
            ),
        ] = "auto",
        template: Annotated[
            str | None,
            typer.Option(
                "--template",
                callback=one_of(_choices("template")),
                help="alpaca, mistral, chat, alpaca-ref, mistral-ref or flan-t5-ref; default: the model's "
                "own (its training record, a NingLab eCeLLM checkpoint's reference template, else alpaca).",
            ),
        ] = None,
        decoding: Annotated[
            str,
            typer.Option(
                "--decoding",
                callback=one_of(_choices("decoding")),
                help="greedy (default) or reference (sampling: T 0.15, top_p 0.95, 100 tokens).",
            ),
        ] = "greedy",
        seed: Annotated[
            int, typer.Option("--seed", help="Random seed (the reference decoding samples).")
        ] = 0,
        calibrate: Annotated[
            bool,
            typer.Option(
                "--calibrate",
                help="Choice tasks: correct each answer's score by its score on a content-free input.",
            ),
        ] = False,
        offsets: Annotated[
            str | None,
            typer.Option(
                "--offsets",
                help="Choice tasks: per-task answer offsets file (default: the adapter's offsets.json, "
                "if any).",
            ),
        ] = None,
        no_offsets: Annotated[
            bool, typer.Option("--no-offsets", help="Ignore the adapter's offsets.json.")
        ] = False,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue an interrupted run: skip ids already in --out.")
        ] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
        batch_size: Annotated[
            int | None,
            typer.Option(
                "--batch-size", min=1, help="Requests per batch (default: the backend's own; hf 8)."
            ),
        ] = None,
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N samples.")] = None,
        tasks: Annotated[
            list[str] | None, typer.Option("--tasks", help="Task subset (repeatable or comma-separated).")
        ] = None,
        settings: Annotated[list[str] | None, typer.Option("--settings", help="Setting subset.")] = None,
        split: Annotated[
            str | None, typer.Option("--split", help="Split to predict (train, val, test).")
        ] = "test",
        dtype: Annotated[
            str,
            typer.Option(
                "--dtype",
                callback=one_of(_choices("dtype")),
                help="auto: the backend's default (hf: fp32 weights, bf16 autocast on CPUs with native "
                "bf16); float32 (hf: fp32 throughout), bfloat16, float16. Backends with fixed weights "
                "refuse it.",
            ),
        ] = "auto",
        base_url: Annotated[
            str | None,
            typer.Option(
                "--base-url", help="openai: the API's base URL (default $OPENAI_BASE_URL, else OpenAI's)."
            ),
        ] = None,
        api_key_env: Annotated[
            str | None,
            typer.Option(
                "--api-key-env", help="openai: environment variable holding the key (default OPENAI_API_KEY)."
            ),
        ] = None,
        concurrency: Annotated[
            int | None, typer.Option("--concurrency", min=1, help="openai: parallel requests.")
        ] = None,
        requests_per_minute: Annotated[
            float | None,
            typer.Option("--requests-per-minute", min=0.001, help="openai: client-side rate limit."),
        ] = None,
        max_retries: Annotated[
            int | None,
            typer.Option("--max-retries", min=0, help="openai: retries of 429/5xx/connection errors."),
        ] = None,
        no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
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
