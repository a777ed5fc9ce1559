"""File-level evaluation: load data and predictions, score, write metrics and a manifest.

Everything is computed before anything is written, and the metrics file is written
atomically, so a bad input never leaves a partial output behind. The output path is checked
before scoring starts (BERTScore can take minutes), and predictions that cover only part of
the samples are refused unless ``allow_partial`` (missing ones scored invalid) or
``only_predicted`` (missing ones left out) says that is intended; predictions matching no
sample at all are always refused: a report of zeros for a join that failed is never useful.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.evaluate.evaluator import evaluate
from ecellm.evaluate.predictions import load_predictions
from ecellm.io import write_json, write_jsonl
from ecellm.manifest import write_output_manifest


def evaluate_files(
    data: str | Path,
    predictions: str | Path,
    *,
    mode: str = "paper",
    lenient: bool = False,
    out: str | Path | None = None,
    tasks: str | Sequence[str] | None = None,
    settings: str | Sequence[str] | None = None,
    splits: str | Sequence[str] | None = "test",
    qpr_labels: str | Path | None = None,
    bertscore_model: str | None = None,
    only_predicted: bool = False,
    allow_partial: bool = False,
    log_samples: str | Path | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Score a predictions file against a dataset; write the metrics JSON to ``out`` (and its
    manifest beside it, see :mod:`ecellm.manifest`).

    ``log_samples``: also write one JSONL record per sample there (see :func:`evaluate`).
    ``bootstrap``: resamples for the seeded 95% interval of every score (0 = none).
    ``output``: the earlier name of ``out``, still accepted.
    """
    out = _one_out(out, output)
    for out_path in (out, log_samples):
        if out_path is not None:
            check_writable(Path(out_path))
    samples = load_samples(data, tasks=tasks, settings=settings, splits=splits, qpr_labels=qpr_labels)
    if not samples:
        raise InputError("no samples match the filters", file=str(data))
    preds = load_predictions(predictions, samples)
    check_coverage(samples, preds, str(predictions), allow_partial=allow_partial or only_predicted)
    result = evaluate(
        samples,
        preds,
        mode=mode,
        lenient=lenient,
        bertscore_model=bertscore_model,
        only_predicted=only_predicted,
        bootstrap=bootstrap,
        seed=seed,
        log_samples=log_samples is not None,
    )
    if not result["results"]:
        raise InputError("no predictions match the samples", file=str(predictions))
    result["data"] = str(data)
    result["predictions"] = str(predictions)
    if log_samples is not None:
        write_jsonl(Path(log_samples), result.pop("samples"))
    if out is not None:
        write_json(Path(out), result)
        write_output_manifest(
            out,
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
                "allow_partial": allow_partial,
                "bootstrap": bootstrap,
                "seed": seed,
            },
            data=[p for p in (Path(data), Path(predictions)) if p.exists()],
        )
    return result


def compare_files(
    data: str | Path,
    base: str | Path,
    tuned: str | Path,
    *,
    split: str | Sequence[str] | None = None,
    mode: str = "official",
    bootstrap: int = 1000,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Tuned minus base on per-record scored tasks (ShopBench, the shopping families), with
    paired intervals (:func:`ecellm.evaluate.paired_records.paired_families`); both prediction
    files must cover every sample. Writes the comparison JSON to ``out`` and its manifest."""
    from ecellm.evaluate.paired_records import paired_families
    from ecellm.io import atomic_open

    if out is not None:
        check_writable(Path(out))
    samples = load_samples(data, splits=split)
    if not samples:
        raise InputError("no samples match the filters", file=str(data))
    runs = {}
    for name, path in (("base", base), ("tuned", tuned)):
        runs[name] = load_predictions(path, samples)
        check_coverage(samples, runs[name], str(path), allow_partial=False)
    res = paired_families(samples, runs["base"], runs["tuned"], mode=mode, resamples=bootstrap, seed=seed)
    if out is not None:
        import json

        with atomic_open(Path(out)) as fh:
            json.dump(res, fh, indent=2, sort_keys=True)
        write_output_manifest(
            out,
            kind="compare",
            config={"mode": mode, "split": split, "bootstrap": bootstrap, "seed": seed},
            data=[p for p in (Path(data), Path(base), Path(tuned)) if p.exists()],
        )
    return res


def _one_out(out: str | Path | None, output: str | Path | None) -> str | Path | None:
    if out is not None and output is not None and Path(out) != Path(output):
        raise InputError("give out only (output is its earlier name)", field="out")
    return out if out is not None else output


def check_writable(out: Path) -> None:
    """Refuse an output that cannot be written, before any work is done. Probed by creating a
    temporary file (permission bits alone say nothing for root or a read-only mount)."""
    if out.is_dir():
        raise InputError("is a directory; --out names the output file", file=str(out))
    folder = next((p for p in out.parents if p.exists()), Path("."))
    if not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder", file=str(out))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"cannot write in {folder}: {exc.strerror or exc}", file=str(out)) from None


def check_coverage(
    samples: Sequence[Any], preds: dict[str, str], source: str, *, allow_partial: bool
) -> None:
    """No prediction for any sample is an error; some missing is one unless ``allow_partial``."""
    missing = [s.id for s in samples if s.id not in preds]
    if len(missing) == len(samples):
        hint = f"; first prediction id {next(iter(preds))!r}" if preds else ""
        raise InputError(
            f"no prediction matches any of the {len(samples)} samples' ids "
            f"(first sample id {samples[0].id!r}{hint})",
            file=source,
        )
    if missing and not allow_partial:
        raise InputError(
            f"predictions cover {len(samples) - len(missing)} of {len(samples)} samples (first missing id "
            f"{missing[0]!r}); pass --allow-partial to score the missing ones as invalid or "
            "--only-predicted to leave them out",
            file=source,
        )
