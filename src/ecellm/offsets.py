"""Per-task answer offsets for choice scoring, fitted on the validation split.

Why: choice scoring answers with the choice of highest log-likelihood, so it inherits whatever
constant preference a model has for one answer. The untuned SmolLM2-135M prefers ``yes`` and
``A`` for every input; a briefly tuned one moves its ``yes``/``no`` preference by one to two nats
while its ranking of the samples (AUC) improves (docs/training.md). The decision rule, not the
ranking, is then what fails. A per-task offset per answer label, added to the choice scores, is
the decision threshold a classifier is normally given: it is fitted on validation samples only,
to maximise the task's own primary metric (strict scoring), and kept in a JSON file beside the
model, so it is part of the model as shipped and disclosed in every report that uses it.

How the fit regularises (40-odd validation samples per task): labels are the scored texts
(``yes``/``no``, option letters); the first label of a task is the reference (offset 0); the
others move on a grid of ``step`` nats within ``[-limit, limit]`` by coordinate ascent (two
sweeps). A candidate is judged by the metric averaged over its grid neighbours (the middle of a
plateau rather than its edge at one sample's margin) minus ``penalty`` per nat of offset, so a
tie keeps the smaller offset, and a task keeps offsets only when they raise the validation metric
by at least ``min_gain``. Tasks with more than ``max_labels`` labels (SR's 20 options) are left
alone: there are too few samples per label.

No single-label rules: when the validation gold has two or more labels, offsets under which every
validation sample gets the same answer are not candidates. Such a rule is not a classifier, yet
F1 of the positive class rewards it (``yes`` to everything scores ``2p / (1 + p)``, 0.67 on a
balanced set), so a fit to the metric alone chose it whenever the scores carried little signal:
the demo's tuned model answered ``yes`` to every PM and AP test sample. When the model's own
rule (no offsets) already gives one label, the best non-degenerate offsets are kept even if
the validation metric falls (``forced_two_labels`` in the fit says so).

Applying offsets never runs the model: :func:`decide` re-picks from the choice scores a
prediction record keeps (``choice_scores``), and :class:`OffsetBackend` does the same for a
backend's completions at prediction time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.infer.rescoring import RescoringBackend

FILE = "offsets.json"
VERSION = 1


def label_of(task: str, choice: str) -> str:
    """The scored label of a choice: the option letter for option tasks, else the choice."""
    from ecellm.tasks import get_task

    if get_task(task).answer_kind == "option":
        return choice.split(":", 1)[0].strip()
    return choice


def decide(task: str, scores: Mapping[str, float], offsets: Mapping[str, float] | None) -> str:
    """The choice with the best score plus its label's offset (ties: the first choice)."""
    choices = list(scores)
    off = offsets or {}
    adj = [scores[c] + off.get(label_of(task, c), 0.0) for c in choices]
    best = max(range(len(adj)), key=lambda k: (adj[k], -k))
    return choices[best]


def _metric(task: str, samples: Sequence[Sample], texts: Sequence[str]) -> float:
    from ecellm.evaluate.evaluator import score_group, score_of
    from ecellm.tasks import get_task

    t = get_task(task)
    scored = score_group(t, samples[0].setting, samples, texts, mode="strict", lenient=False)
    return float(score_of(scored, t.primary_metric))


def _grid(limit: float, step: float) -> list[float]:
    n = round(limit / step)
    return [round(k * step, 6) for k in range(-n, n + 1)]


def fit_task(
    task: str,
    samples: Sequence[Sample],
    scores: Sequence[Mapping[str, float]],
    *,
    limit: float = 4.0,
    step: float = 0.1,
    penalty: float = 0.002,
    min_gain: float = 0.01,
    max_labels: int = 5,
) -> dict[str, Any]:
    """Offsets of one task from its validation samples and their choice scores (same order)."""
    labels: list[str] = []
    for sc in scores:
        for c in sc:
            if (lab := label_of(task, c)) not in labels:
                labels.append(lab)
    base = _metric(task, samples, [decide(task, sc, None) for sc in scores])
    out: dict[str, Any] = {"n": len(samples), "labels": labels, "val_before": round(base, 6)}
    if len(labels) < 2 or len(labels) > max_labels:
        out.update(offsets={}, val_after=round(base, 6), skipped=f"{len(labels)} labels")
        return out
    grid = _grid(limit, step)
    cache: dict[tuple[float, ...], float] = {}
    several = len({s.output.strip() for s in samples}) > 1  # the gold itself has two labels or more

    def metric_at(off: dict[str, float]) -> float:
        """The metric under ``off``; ``-1`` (below any metric) for a single-label rule."""
        key = tuple(round(off.get(lab, 0.0), 6) for lab in labels)
        if key not in cache:
            picks = [decide(task, sc, off) for sc in scores]
            one = several and len({label_of(task, c) for c in picks}) == 1
            cache[key] = -1.0 if one else _metric(task, samples, picks)
        return cache[key]

    def smoothed(off: dict[str, float], lab: str) -> float:
        v = off[lab]
        near = [metric_at({**off, lab: v + d}) for d in (-step, 0.0, step)]
        return sum(near) / 3 - penalty * sum(abs(x) for x in off.values())

    off = {lab: 0.0 for lab in labels}
    for _ in range(2):
        for lab in labels[1:]:
            off[lab] = max(grid, key=lambda v, lab=lab: (smoothed({**off, lab: v}, lab), -abs(v)))
    after = metric_at(off)
    zero = {lab: 0.0 for lab in labels}
    if metric_at(zero) < 0 and after >= 0:  # the model's own rule gives one label: must move
        out["forced_two_labels"] = True
    elif after - base < min_gain:
        off, after = zero, base
    out.update(offsets={lab: v for lab, v in off.items() if v != 0.0}, val_after=round(after, 6))
    return out


def fit_offsets(samples: Sequence[Sample], records: Iterable[Mapping[str, Any]], **kw: Any) -> dict[str, Any]:
    """``{"version", "tasks": {task: fit}}`` from validation samples and their prediction records
    (records without ``choice_scores`` are not choice-scored and are ignored)."""
    by_id = {s.id: s for s in samples}
    groups: dict[str, tuple[list[Sample], list[Mapping[str, float]]]] = {}
    for r in records:
        sc = r.get("choice_scores")
        if not sc or r.get("id") not in by_id:
            continue
        s = by_id[r["id"]]
        g = groups.setdefault(s.task, ([], []))
        g[0].append(s)
        g[1].append(sc)
    tasks = {}
    for task in sorted(groups):
        ss, sc = groups[task]
        order = sorted(range(len(ss)), key=lambda i: ss[i].id)  # deterministic whatever the file order
        tasks[task] = fit_task(task, [ss[i] for i in order], [sc[i] for i in order], **kw)
    return {"version": VERSION, "tasks": tasks}


def offsets_of(fitted: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{task: {label: offset}}`` of a fitted file (tasks without offsets left out)."""
    return {t: dict(f["offsets"]) for t, f in fitted.get("tasks", {}).items() if f.get("offsets")}


def apply_offsets(
    records: Iterable[Mapping[str, Any]], offsets: Mapping[str, Mapping[str, float]]
) -> Iterator[dict[str, Any]]:
    """Prediction records with each choice-scored answer re-picked under ``offsets``."""
    for r in records:
        rec = dict(r)
        task, sc = rec.get("task"), rec.get("choice_scores")
        if sc and task in offsets:
            rec["prediction"] = rec["raw"] = decide(task, sc, offsets[task])
            rec["offsets"] = True
        yield rec


def write_offsets(folder: str | Path, fitted: Mapping[str, Any]) -> Path:
    from ecellm.io import write_json

    path = Path(folder) / FILE
    write_json(path, dict(fitted))
    return path


def read_offsets(path: str | Path) -> dict[str, dict[str, float]]:
    """``{task: {label: offset}}`` from an offsets file; a malformed file is an InputError."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        out = offsets_of(data)
        for task, off in out.items():
            for lab, v in off.items():
                if not isinstance(v, int | float):
                    raise ValueError(f"offset of {task}/{lab} is not a number")
        return out
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"unreadable offsets ({exc})", file=str(p), field="tasks") from None


def find_offsets(adapter: str | None) -> Path | None:
    """The offsets file shipped in an adapter folder, if any."""
    if not adapter:
        return None
    p = Path(adapter) / FILE
    return p if p.is_file() else None


class OffsetBackend(RescoringBackend):
    """Wraps a backend so that choice requests are answered under per-task offsets."""

    def __init__(self, backend: Any, offsets: Mapping[str, Mapping[str, float]]) -> None:
        super().__init__(backend)
        self.offsets = {t: dict(v) for t, v in offsets.items()}

    def description(self) -> dict[str, Any]:
        return {"offsets": self.offsets}

    def rescore(self, request: Any, completion: Any) -> Any:
        if request.task not in self.offsets:
            return completion
        text = decide(request.task, completion.choice_logprobs, self.offsets[request.task])
        return replace(completion, text=text)
