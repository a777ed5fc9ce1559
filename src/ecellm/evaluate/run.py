"""File-level evaluation: load data and predictions, score, write metrics and a manifest.

Everything is computed before anything is written, and the metrics file is written
atomically, so a bad input never leaves a partial output behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.evaluate.evaluator import evaluate
from ecellm.evaluate.predictions import load_predictions
from ecellm.io import write_json
from ecellm.manifest import write_manifest


def evaluate_files(
    data: str | Path,
    predictions: str | Path,
    *,
    mode: str = "paper",
    lenient: bool = False,
    output: str | Path | None = None,
    tasks: str | Sequence[str] | None = None,
    settings: str | Sequence[str] | None = None,
    splits: str | Sequence[str] | None = "test",
    qpr_labels: str | Path | None = None,
    bertscore_model: str | None = None,
    only_predicted: bool = False,
) -> dict[str, Any]:
    """Score a predictions file against a dataset; write ``output`` (+ ``.manifest.json``)."""
    samples = load_samples(data, tasks=tasks, settings=settings, splits=splits, qpr_labels=qpr_labels)
    if not samples:
        raise InputError("no samples match the filters", file=str(data))
    preds = load_predictions(predictions, samples)
    result = evaluate(
        samples,
        preds,
        mode=mode,
        lenient=lenient,
        bertscore_model=bertscore_model,
        only_predicted=only_predicted,
    )
    if not result["results"]:
        raise InputError("no predictions match the samples", file=str(predictions))
    result["data"] = str(data)
    result["predictions"] = str(predictions)
    if output is not None:
        out = Path(output)
        write_json(out, result)
        write_manifest(
            out.with_name(out.stem + ".manifest.json"),
            kind="evaluate",
            config={
                "mode": mode,
                "lenient": lenient,
                "tasks": tasks,
                "settings": settings,
                "splits": splits,
                "qpr_labels": str(qpr_labels) if qpr_labels else None,
                "bertscore_model": result["bertscore_model"],
                "only_predicted": only_predicted,
            },
            data=[p for p in (Path(data), Path(predictions)) if p.exists()],
        )
    return result
