"""Read and validate the metrics files a report is made from.

A *run* is one labelled row of the report: the ``results`` list written by ``ecellm evaluate
--output`` (or the same dict in memory). Everything is validated before anything is written, so a
bad file stops the report with an :class:`InputError` naming the file, the result index and the
field, and leaves no partial output behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.io import read_json
from ecellm.tasks import get_task

Source = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True)
class TaskResult:
    """One task's primary score in one setting and scoring mode, with its honesty counters."""

    task: str
    setting: str
    mode: str
    metric: str
    score: float | None
    n: int | None
    invalid: int | None
    coverage: float | None
    missing: int | None = None  # predictions absent from the file (the evaluator scores them wrong)

    @property
    def invalid_rate(self) -> float | None:
        """Share of outputs that did not parse; None when the evaluator did not report counts."""
        if self.invalid is None or not self.n:
            return None
        return self.invalid / self.n


@dataclass
class Run:
    """One labelled metrics file: ``cells[(setting, mode)][task] -> TaskResult``."""

    label: str
    source: str
    cells: dict[tuple[str, str], dict[str, TaskResult]] = field(default_factory=dict)

    def modes(self, setting: str) -> list[str]:
        return sorted(mode for (s, mode) in self.cells if s == setting)

    def settings(self) -> list[str]:
        return sorted({s for (s, _mode) in self.cells})


def _number(value: Any, *, file: str, record: str, name: str, integer: bool = False) -> Any:
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise InputError(f"expected {kind} or null, got {value!r}", file=file, record=record, field=name)
    if value < 0:
        raise InputError(f"must not be negative, got {value!r}", file=file, record=record, field=name)
    return value if integer else float(value)


def _text(entry: Mapping[str, Any], name: str, *, file: str, record: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InputError("missing or not a non-empty string", file=file, record=record, field=name)
    return value.strip()


def parse_results(obj: Any, *, label: str, source: str) -> Run:
    """Validate an evaluator output dict and index its results by setting, mode and task."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("results"), list):
        raise InputError(
            "expected a JSON object with a 'results' list (ecellm evaluate --output)",
            file=source,
            field="results",
        )
    run = Run(label=label, source=source)
    for i, entry in enumerate(obj["results"]):
        where = f"results[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError("expected an object", file=source, record=where)
        name = _text(entry, "task", file=source, record=where)
        try:
            task = get_task(name)
        except KeyError as exc:
            raise InputError(str(exc.args[0]), file=source, record=where, field="task") from None
        setting = _text(entry, "setting", file=source, record=where)
        mode = _text(entry, "mode", file=source, record=where)
        if entry.get("lenient") is True:  # lenient answer extraction is a different scorer: keep it apart
            mode += "+lenient"
        if "score" not in entry:
            raise InputError(
                "missing (use null for a task that could not be scored)",
                file=source,
                record=where,
                field="score",
            )
        metric = entry.get("metric")
        result = TaskResult(
            task=task.abbr,
            setting=setting,
            mode=mode,
            metric=metric if isinstance(metric, str) and metric else task.metric,
            score=_number(entry["score"], file=source, record=where, name="score"),
            n=_number(entry.get("n"), file=source, record=where, name="n", integer=True),
            invalid=_number(entry.get("invalid"), file=source, record=where, name="invalid", integer=True),
            coverage=_number(entry.get("coverage"), file=source, record=where, name="coverage"),
            missing=_number(entry.get("missing"), file=source, record=where, name="missing", integer=True),
        )
        if result.n is not None and result.invalid is not None and result.invalid > result.n:
            raise InputError(
                f"invalid ({result.invalid}) exceeds n ({result.n})",
                file=source,
                record=where,
                field="invalid",
            )
        bucket = run.cells.setdefault((setting, mode), {})
        if task.abbr in bucket:
            raise InputError(
                f"duplicate result for {task.abbr} / {setting} / {mode}",
                file=source,
                record=where,
                field="task",
            )
        bucket[task.abbr] = result
    return run


def _load_one(item: Source, label: str | None) -> tuple[Run, bool]:
    """Returns the run and whether its label was chosen automatically (file stem)."""
    if isinstance(item, Mapping):
        return parse_results(item, label=label or "ecellm", source="<results>"), label is None
    path = Path(item)
    return parse_results(read_json(path), label=label or path.stem, source=str(path)), label is None


def _split_pair(item: Any) -> tuple[str | None, Source]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return item[0], item[1]
    return None, item


def load_runs(inputs: Source | Sequence[Any], *, label: str = "ecellm") -> list[Run]:
    """Turn the flexible ``make_report`` input into labelled runs with unique labels.

    Accepted: one path or results dict (labelled ``label``); or a list whose items are paths,
    dicts or ``(label, path_or_dict)`` pairs. Unlabelled list items take the file stem; when two
    stems collide (``base/metrics.json``, ``tuned/metrics.json``) the parent folder is prefixed.
    """
    if isinstance(inputs, str | os.PathLike | Mapping) or (
        isinstance(inputs, tuple)
        and len(inputs) == 2
        and isinstance(inputs[0], str)
        and isinstance(inputs[1], Mapping | os.PathLike)
    ):
        given, src = _split_pair(inputs)
        return [_load_one(src, given or label)[0]]
    items = list(inputs)
    if not items:
        raise InputError("no metrics files given")
    loaded: list[tuple[Run, bool]] = []
    for n, item in enumerate(items, start=1):
        given, src = _split_pair(item)
        if given is None and isinstance(src, Mapping):
            given = label if len(items) == 1 else f"{label}-{n}"
        loaded.append(_load_one(src, given))
    labels = [r.label for r, _ in loaded]
    for run, auto in loaded:
        if auto and labels.count(run.label) > 1:
            path = Path(run.source)
            run.label = f"{path.parent.name}/{path.stem}"
    return _unique([r for r, _ in loaded])


def _unique(runs: list[Run]) -> list[Run]:
    seen: dict[str, str] = {}
    for run in runs:
        if run.label in seen:
            raise InputError(
                f"label {run.label!r} is used twice (also for {seen[run.label]}); "
                "give each input its own label (--label NAME=path)",
                file=run.source,
            )
        seen[run.label] = run.source
    return runs
