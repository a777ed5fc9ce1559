"""Paired bootstrap of tuned minus base over task families, from per-record scores.

Why not :mod:`ecellm.evaluate.paired`: that one reruns a task's scorer on every resample, which
is right for pooled metrics (F1) but would recompute sentence embeddings a thousand times for a
ShopBench generation task. ShopBench metrics other than micro F1 are means of per-record scores,
so here each run is scored once by its family scorer, the per-record scores are kept, and the
resamples average them: the same numbers, in milliseconds. A group whose scorer gives no
per-record scores, or pools them (micro F1), is refused with one line.

Structure: groups are (task, setting) = (ShopBench task type, ``task_name``); a task type's
score is the mean of its groups (the family score); the overall score is the mean of the task
types. Every group is resampled independently with indices that depend only on (seed, group,
n), identical for both runs, so every interval is paired; replicate r of a family mean is the
mean of its groups' replicate r (stratified).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

import numpy as np

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.evaluate import bootstrap
from ecellm.evaluate.answers import most_common
from ecellm.tasks import get_task


def record_scores(
    task: Any, setting: str, samples: Sequence[Sample], texts: Sequence[str], mode: str
) -> dict[str, Any]:
    """``{"scores": [...], "invalid": n}`` of one group under its family scorer."""
    if task.scorer is None:
        raise InputError(f"task {task.abbr} has no per-record scorer", field="task")
    got = task.scorer(task, setting, samples, texts, mode=mode, lenient=False, bertscore_model=None)
    per = [row.get("score") for row in got.get("samples") or []]
    if len(per) != len(samples) or any(not isinstance(x, int | float) for x in per):
        raise InputError(f"{task.abbr}/{setting}: the scorer gives no per-record scores (pooled metric)")
    out = {"scores": np.asarray(per, dtype=np.float64), "invalid": int(got.get("invalid", 0))}
    if task.countable:
        out["most_common"] = most_common([row.get("parsed") for row in got["samples"]])
    return out


def _summary(tuned: float, base: float, t_reps: np.ndarray, b_reps: np.ndarray, level: float) -> dict:
    lo, hi = bootstrap.interval(t_reps - b_reps, level)
    return {"base": base, "tuned": tuned, "delta": tuned - base, "lo": lo, "hi": hi}


def paired_families(
    samples: Sequence[Sample],
    base: Mapping[str, str],
    tuned: Mapping[str, str],
    *,
    mode: str = "official",
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Base, tuned, delta and its paired interval per group, per task type and overall.

    ``base``/``tuned`` map sample id -> raw model text (a missing id is an empty answer). Groups
    also carry each run's count of unparseable answers (``invalid``) and, for closed answers, its
    most common answer and that answer's share (``most_common``).
    """
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.id):
        groups[(s.task, s.setting)].append(s)
    rows: dict[str, Any] = {}
    reps: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    points: dict[tuple[str, str], tuple[float, float]] = {}
    for key in sorted(groups):
        group = groups[key]
        task = get_task(key[0])
        t = record_scores(task, key[1], group, [tuned.get(s.id, "") for s in group], mode)
        b = record_scores(task, key[1], group, [base.get(s.id, "") for s in group], mode)
        label = f"{key[0]}\0{key[1]}"
        idx = bootstrap.resample_indices(len(group), resamples=resamples, seed=seed, key=label)
        reps[key] = (t["scores"][idx].mean(axis=1), b["scores"][idx].mean(axis=1))
        points[key] = (float(t["scores"].mean()), float(b["scores"].mean()))
        rows[f"{key[0]}/{key[1]}"] = {
            **_summary(*points[key], *reps[key], level),
            "n": len(group),
            "invalid": {"base": b["invalid"], "tuned": t["invalid"]},
        }
        if "most_common" in t:
            rows[f"{key[0]}/{key[1]}"]["most_common"] = {"base": b["most_common"], "tuned": t["most_common"]}
    families: dict[str, Any] = {}
    fam_reps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fam_points: dict[str, tuple[float, float]] = {}
    for abbr in sorted({k[0] for k in groups}):
        keys = [k for k in groups if k[0] == abbr]
        fam_points[abbr] = (fmean(points[k][0] for k in keys), fmean(points[k][1] for k in keys))
        fam_reps[abbr] = tuple(bootstrap.mean_of([reps[k][j] for k in keys]) for j in (0, 1))
        families[abbr] = {**_summary(*fam_points[abbr], *fam_reps[abbr], level), "groups": len(keys)}
    names = sorted(families)
    overall = _summary(
        fmean(fam_points[a][0] for a in names),
        fmean(fam_points[a][1] for a in names),
        bootstrap.mean_of([fam_reps[a][0] for a in names]),
        bootstrap.mean_of([fam_reps[a][1] for a in names]),
        level,
    )
    return {
        "mode": mode,
        "groups": rows,
        "families": families,
        "overall": overall,
        "resamples": resamples,
        "seed": seed,
        "level": level,
    }
