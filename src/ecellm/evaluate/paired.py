"""Paired bootstrap of the difference between two runs scored on the same samples.

Why: on a few dozen samples per task, a delta of a few points between a base and a tuned model
can be noise. Each (task, setting) group is scored by the evaluator's own strict group scorer
(:func:`ecellm.evaluate.evaluator.group_scorer`), both runs on the *same* resamples
(:mod:`ecellm.evaluate.bootstrap` draws them from the seed and the group), so the interval of
the per-task delta accounts for the pairing; a setting's mean delta averages the task deltas
replicate by replicate (tasks resampled independently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecellm.data.schema import Sample
from ecellm.evaluate import bootstrap
from ecellm.evaluate.evaluator import group_scorer, score_of
from ecellm.tasks import get_task


def paired_bootstrap(
    samples: Sequence[Sample],
    base: Mapping[str, str],
    tuned: Mapping[str, str],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bertscore_model: Any = None,
) -> dict[str, Any]:
    """Deltas (tuned - base) per (task, setting) and per setting mean, each with a percentile
    interval: ``{"tasks": {(task, setting): {"delta", "lo", "hi"}}, "means": {setting: {...}}}``.

    ``base``/``tuned`` map sample id -> raw model text (a missing id scores as an empty answer).
    """
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        groups.setdefault((s.task, s.setting), []).append(s)
    if bertscore_model is None and any(get_task(t).score_kind == "generation" for t, _ in groups):
        from ecellm.evaluate.bertscore import resolve_model

        bertscore_model = resolve_model(None)

    def summary(diff: dict[str, Any]) -> dict[str, float]:
        return {"delta": diff["estimate"], "lo": diff["low"], "hi": diff["high"]}

    tasks: dict[tuple[str, str], dict[str, float]] = {}
    reps: dict[tuple[str, str], tuple[Any, Any]] = {}
    points: dict[tuple[str, str], tuple[float, float]] = {}
    for key, group in sorted(groups.items()):
        task = get_task(key[0])
        metric = task.primary_metric
        stats = []
        for run in (tuned, base):
            scorer = group_scorer(
                task, key[1], group, [run.get(s.id, "") for s in group],
                mode="strict", lenient=False, bertscore_model=bertscore_model,
            )

            def stat(idx: Sequence[int], scorer: Any = scorer, metric: str = metric) -> float:
                return float(score_of(scorer(idx), metric))

            stats.append(stat)
        n, label = len(group), f"{key[0]}\0{key[1]}"
        reps[key] = tuple(
            bootstrap.replicates(st, n, resamples=resamples, seed=seed, key=label) for st in stats
        )
        points[key] = (stats[0](range(n)), stats[1](range(n)))
        (t_point, b_point), (t_reps, b_reps) = points[key], reps[key]
        tasks[key] = summary(bootstrap.paired_difference(t_point, t_reps, b_point, b_reps, level=level))
    means: dict[str, dict[str, float]] = {}
    for setting in sorted({k[1] for k in groups}):
        keys = [k for k in tasks if k[1] == setting]
        tuned_mean = sum(points[k][0] for k in keys) / len(keys)
        base_mean = sum(points[k][1] for k in keys) / len(keys)
        diff = bootstrap.paired_difference(
            tuned_mean, bootstrap.mean_of([reps[k][0] for k in keys]),
            base_mean, bootstrap.mean_of([reps[k][1] for k in keys]),
            level=level,
        )
        means[setting] = summary(diff)
    return {"tasks": tasks, "means": means, "resamples": resamples, "seed": seed, "level": level}
