"""Read ShopBench (KDD Cup 2024) files into sample rows the loaders turn into samples.

A file is JSON Lines (the public development set, even when named ``.json``) or one JSON array.
Records with ``task_type``, ``metric`` and ``output_field`` carry what scoring needs; records of
the hidden test set give only ``input_field`` and ``is_multiple_choice``, so their task type is
inferred from the prompt, marked ``meta["task_type_inferred"]`` and reported (one warning with
the counts). Errors name the file, the record (line for JSONL, 1-based position for an array)
and the field.

Row fields: ``id`` (the record's ``id`` or ``shopbench-<0-based position>``), ``task`` (the task
type's registry name), ``setting`` (the record's ``task_name``; ``unnamed`` without one),
``instruction`` (the whole prompt), ``output`` (the truth written as a perfect answer), and
``meta`` with ``truth``, ``metric``, ``track``, ``task_name``, ``is_multiple_choice``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.io import iter_jsonl, read_json
from ecellm.tasks.shopbench import generation, multiple_choice, ner, ranking, retrieval
from ecellm.tasks.shopbench import metrics as M

log = logging.getLogger(__name__)
UNNAMED = "unnamed"
# A file named train/val/test.jsonl (a built shopping split) gives its rows that split; any
# other file is test data, as the benchmark's files are.
SPLIT_OF_STEM = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_RANK_RE = re.compile(r"\b(re-?)?rank(ing|ed)?\b", re.I)
_RETRIEVE_RE = re.compile(r"\b(select|choose|pick|retrieve)\b.*\b(\d+|three|two|one)\b", re.I | re.S)
_INDEX_RE = re.compile(r"\b(indices|index|numbers)\b", re.I)
_NER_RE = re.compile(r"\bentit(y|ies)\b", re.I)
_OPTION_RE = re.compile(r"^\s*(\d+)\.\s", re.M)


def infer_task_type(prompt: str, is_multiple_choice: bool | None = None) -> str:
    """Guess the task type from the prompt, as a runner must on the hidden test set.

    Order: the ``is_multiple_choice`` flag; ranking wording; "select/choose N ... indices"
    (retrieval); "entity" (NER); numbered options followed by "Answer:" (multiple choice);
    otherwise generation.
    """
    if is_multiple_choice:
        return "multiple-choice"
    if _RANK_RE.search(prompt):
        return "ranking"
    if _RETRIEVE_RE.search(prompt) and _INDEX_RE.search(prompt):
        return "retrieval"
    if _NER_RE.search(prompt):
        return "named_entity_recognition"
    if _OPTION_RE.search(prompt) and prompt.rstrip().lower().endswith("answer:"):
        return "multiple-choice"
    return "generation"


def _first_record(path: Path) -> Any:
    """The first record of a JSONL file or JSON array, or None when it is neither."""
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(1 << 16).lstrip()
    except (OSError, UnicodeDecodeError):
        return None
    if head.startswith("["):
        try:
            data = read_json(path)
        except InputError:
            return None
        return data[0] if isinstance(data, list) and data else None
    try:
        return json.loads(head.split("\n", 1)[0])
    except ValueError:
        return None


def claims(path: Path) -> bool:
    """Whether ``path`` is a ShopBench file: its first record has ``input_field`` and no ``task``."""
    rec = _first_record(path)
    return isinstance(rec, Mapping) and "input_field" in rec and "task" not in rec


def _raw(path: Path) -> Iterator[tuple[str, Any]]:
    head = path.read_text(encoding="utf-8").lstrip()[:1]
    if head == "[":
        data = read_json(path)
        if not isinstance(data, list):
            raise InputError("expected a JSON array of records", file=str(path))
        yield from ((str(i), obj) for i, obj in enumerate(data, start=1))
    else:
        yield from ((f"line {n}", obj) for n, obj in iter_jsonl(path))


def _task_types() -> dict[str, Any]:
    """Official task type -> its task (the five modules of this family)."""
    return {m.TASK.extra["task_type"]: m.TASK for m in (multiple_choice, retrieval, ranking, ner, generation)}


def _row(
    obj: Any, index: int, file: str, loc: str, types: dict[str, Any], split: str = "test"
) -> dict[str, Any]:
    def bad(message: str, field: str | None = None) -> InputError:
        return InputError(message, file=file, record=loc, field=field)

    if not isinstance(obj, Mapping):
        raise bad("expected a JSON object")
    prompt = obj.get("input_field")
    if not isinstance(prompt, str):
        raise bad("missing or not a string", "input_field")
    for key in ("task_name", "task_type", "metric", "track"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise bad("expected a string", key)
    mc = obj.get("is_multiple_choice")
    if mc is not None and not isinstance(mc, bool):
        raise bad("expected true or false", "is_multiple_choice")
    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, str | int) or isinstance(rid, bool)):
        raise bad("expected a string or integer", "id")
    task_type, metric, truth = obj.get("task_type"), obj.get("metric"), obj.get("output_field")
    inferred = task_type is None
    if inferred:
        task_type = infer_task_type(prompt, mc)
    if task_type not in types:
        raise bad(f"unknown task type {task_type!r} (known: {', '.join(types)})", "task_type")
    task = types[task_type]
    if metric is not None and metric not in task.extra["metrics"]:
        known = metric in M.METRICS
        why = "does not apply to task type" if known else f"unknown (known: {', '.join(M.METRICS)}) for"
        raise bad(f"metric {metric!r} {why} {task_type!r}", "metric")
    output = ""
    if truth is not None:
        if metric is None:
            raise bad("a record with output_field needs its metric", "metric")
        problem = M.check_truth(metric, truth)
        if problem:
            raise bad(f"{problem} for metric {metric!r}", "output_field")
        output = task.extra["gold_text"](truth)
    meta = {
        "format": "shopbench",
        "truth": truth,
        "metric": metric,
        "track": obj.get("track"),
        "task_name": obj.get("task_name"),
        "is_multiple_choice": mc,
        "task_type_inferred": inferred,
    }
    return {
        "id": str(rid) if rid is not None else f"shopbench-{index:06d}",
        "task": task.abbr,
        "setting": obj.get("task_name") or UNNAMED,
        "split": split,
        "instruction": prompt,
        "input": "",
        "options": [],
        "output": output,
        "meta": meta,
    }


def read_rows(path: str | Path) -> list[tuple[dict[str, Any], str, str]]:
    """``(row, file, record locator)`` for every record, validated; see the module docstring."""
    p = Path(path)
    types = _task_types()
    split = SPLIT_OF_STEM.get(p.stem, "test")
    rows = [(_row(obj, i, str(p), loc, types, split), str(p), loc) for i, (loc, obj) in enumerate(_raw(p))]
    type_of = {t.abbr: name for name, t in types.items()}
    inferred = Counter(type_of[r["task"]] for r, _, _ in rows if r["meta"]["task_type_inferred"])
    if inferred:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(inferred.items()))
        log.warning(
            "%s: %d records without task_type; inferred from the prompt: %s",
            p,
            sum(inferred.values()),
            counts,
        )
    return rows
