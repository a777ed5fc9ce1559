"""Read ShopBench (KDD Cup 2024) records and prediction files, validating every field.

Records come as JSON Lines (the public development set) or one JSON array. The hidden test set
carries only ``input_field`` and ``is_multiple_choice``, so loading for *inference* needs just the
prompt; loading for *scoring* checks that the truth has the type its metric needs. Errors name the
file, the record (line for JSONL, 1-based position for an array) and the field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.io import iter_jsonl, read_json

TASK_TYPES = ("multiple-choice", "retrieval", "ranking", "named_entity_recognition", "generation")
# metric -> the task type whose parser and truth format it needs
METRIC_TASK_TYPE = {
    "accuracy": "multiple-choice",
    "hit rate@3": "retrieval",
    "ndcg": "ranking",
    "micro f1": "named_entity_recognition",
    "rougel": "generation",
    "bleu": "generation",
    "jp-bleu": "generation",
    "sent-transformer": "generation",
    "multilingual-sent-transformer": "generation",
}


@dataclass(frozen=True)
class ShopRecord:
    """One ShopBench question; ``id`` is the record's own ``id`` or ``shopbench-<position>``."""

    id: str
    input_field: str
    output_field: Any = None
    task_name: str | None = None
    task_type: str | None = None
    metric: str | None = None
    is_multiple_choice: bool | None = None
    track: str | None = None
    where: str = ""  # "file, record N" for error messages


def _read_raw(path: Path) -> list[tuple[str, Any]]:
    """(record locator, object) pairs from a JSONL file or a JSON array."""
    if not path.exists():
        raise InputError("file not found", file=str(path))
    head = path.read_text(encoding="utf-8").lstrip()[:1]
    if head == "[":
        data = read_json(path)
        return [(str(i), obj) for i, obj in enumerate(data, start=1)]
    return [(f"line {n}", obj) for n, obj in iter_jsonl(path)]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _check_truth(metric: str, truth: Any) -> str | None:
    """Why ``truth`` cannot be scored with ``metric`` (None when it can)."""
    if metric == "accuracy":
        return None if _is_int(truth) else "expected an integer option number"
    if metric == "hit rate@3":
        ok = isinstance(truth, list) and truth and all(_is_int(t) for t in truth)
        return None if ok else "expected a non-empty list of item numbers"
    if metric == "ndcg":
        ok = isinstance(truth, list) and truth and all(_is_num(t) for t in truth)
        return None if ok else "expected a non-empty list of per-item gains"
    if metric == "micro f1":
        return (
            None
            if isinstance(truth, list) and all(isinstance(t, str) for t in truth)
            else "expected a list of strings"
        )
    if metric in ("sent-transformer", "multilingual-sent-transformer"):
        ok = isinstance(truth, str) or (
            isinstance(truth, list) and truth and all(isinstance(t, str) for t in truth)
        )
        return None if ok else "expected a string or a non-empty list of strings"
    return None if isinstance(truth, str) else "expected a string"


def _record(obj: Any, index: int, file: str, loc: str, *, for_scoring: bool) -> ShopRecord:
    if not isinstance(obj, Mapping):
        raise InputError("expected a JSON object", file=file, record=loc)
    prompt = obj.get("input_field")
    if not isinstance(prompt, str):
        raise InputError("missing or not a string", file=file, record=loc, field="input_field")
    for key in ("task_name", "task_type", "metric", "track"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise InputError("expected a string", file=file, record=loc, field=key)
    mc = obj.get("is_multiple_choice")
    if mc is not None and not isinstance(mc, bool):
        raise InputError("expected true or false", file=file, record=loc, field="is_multiple_choice")
    task_type, metric = obj.get("task_type"), obj.get("metric")
    if task_type is not None and task_type not in TASK_TYPES:
        raise InputError(
            f"unknown task type {task_type!r} (known: {', '.join(TASK_TYPES)})",
            file=file,
            record=loc,
            field="task_type",
        )
    if for_scoring:
        for key in ("output_field", "task_name", "task_type", "metric"):
            if obj.get(key) is None:
                raise InputError("needed for scoring but missing", file=file, record=loc, field=key)
        if metric not in METRIC_TASK_TYPE:
            raise InputError(
                f"unknown metric {metric!r} (known: {', '.join(METRIC_TASK_TYPE)})",
                file=file,
                record=loc,
                field="metric",
            )
        if METRIC_TASK_TYPE[metric] != task_type:
            raise InputError(
                f"metric {metric!r} does not apply to task type {task_type!r}",
                file=file,
                record=loc,
                field="metric",
            )
        problem = _check_truth(metric, obj["output_field"])
        if problem:
            raise InputError(f"{problem} for metric {metric!r}", file=file, record=loc, field="output_field")
    rid = obj.get("id")
    if rid is not None and not isinstance(rid, str | int):
        raise InputError("expected a string or integer", file=file, record=loc, field="id")
    return ShopRecord(
        id=str(rid) if rid is not None else f"shopbench-{index:06d}",
        input_field=prompt,
        output_field=obj.get("output_field"),
        task_name=obj.get("task_name"),
        task_type=task_type,
        metric=metric,
        is_multiple_choice=mc,
        track=obj.get("track"),
        where=f"{file}, record {loc}",
    )


def load_records(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]], *, for_scoring: bool = True
) -> list[ShopRecord]:
    """Records from a path (JSONL or JSON array) or in-memory dicts, validated, ids unique."""
    if isinstance(source, str | os.PathLike):
        file = str(source)
        raw = _read_raw(Path(source))
    else:
        file = "<records>"
        raw = [(str(i), obj) for i, obj in enumerate(source, start=1)]
    records = [_record(obj, i, file, loc, for_scoring=for_scoring) for i, (loc, obj) in enumerate(raw)]
    seen: dict[str, str] = {}
    for rec in records:
        if rec.id in seen:
            raise InputError(
                f"duplicate id {rec.id!r} (also {seen[rec.id]})",
                file=file,
                record=rec.where.rsplit("record ", 1)[-1],
                field="id",
            )
        seen[rec.id] = rec.where
    if task_conflicts := _task_metric_conflicts(records):
        raise InputError(task_conflicts, file=file, field="metric")
    return records


def _task_metric_conflicts(records: list[ShopRecord]) -> str | None:
    """A task must use one metric, or its score would mix incomparable numbers."""
    metric_of: dict[tuple[str | None, str | None], str] = {}
    for rec in records:
        key = (rec.track, rec.task_name)
        if rec.metric is None or rec.task_name is None:
            continue
        if metric_of.setdefault(key, rec.metric) != rec.metric:
            return f"task {rec.task_name!r} uses both {metric_of[key]!r} and {rec.metric!r} ({rec.where})"
    return None


def load_predictions(
    source: str | os.PathLike[str] | Mapping[str, str] | Sequence[Any], records: Sequence[ShopRecord]
) -> dict[str, str]:
    """Predictions keyed by record id.

    Accepted: a mapping id -> text; a list of strings (aligned by position, as the official
    runner does); or records ``{"id", "prediction"}`` (JSONL or JSON array; ``id`` optional, then
    aligned by position). Unknown ids and non-string predictions are errors.
    """
    if isinstance(source, Mapping):
        items = [(f"key {k!r}", {"id": k, "prediction": v}) for k, v in source.items()]
        file = "<predictions>"
    elif isinstance(source, str | os.PathLike):
        file = str(source)
        items = _read_raw(Path(source))
    else:
        file = "<predictions>"
        items = [(str(i), obj) for i, obj in enumerate(source, start=1)]
    ids = [r.id for r in records]
    known = set(ids)
    out: dict[str, str] = {}
    for pos, (loc, obj) in enumerate(items):
        if isinstance(obj, str):
            obj = {"prediction": obj}
        if not isinstance(obj, Mapping):
            raise InputError("expected a string or an object with 'prediction'", file=file, record=loc)
        text = obj.get("prediction")
        if not isinstance(text, str):
            raise InputError("missing or not a string", file=file, record=loc, field="prediction")
        rid = obj.get("id")
        if rid is None:
            if pos >= len(ids):
                raise InputError(f"more predictions than records ({len(ids)})", file=file, record=loc)
            rid = ids[pos]
        rid = str(rid)
        if rid not in known:
            raise InputError(f"id {rid!r} is not in the data", file=file, record=loc, field="id")
        if rid in out:
            raise InputError(f"second prediction for id {rid!r}", file=file, record=loc, field="id")
        out[rid] = text
    return out
