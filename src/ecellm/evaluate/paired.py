"""Paired bootstrap of the difference between two runs scored on the same samples.

Why: on a few dozen samples per task, a delta of a few points between a base and a tuned model
can be noise. Resampling the samples of every (task, setting) group with replacement, scoring
both runs on the *same* resample and averaging the tasks of a setting gives an interval for the
per-task deltas and for the setting mean delta that accounts for the pairing.

Scores are strict-mode primary metrics (:mod:`ecellm.evaluate.strict`), recomputed on each
resample from answers parsed once; generation tasks (AG) use per-sample BERTScore F1 computed
once, so a resample is a mean of those.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecellm.data.schema import Sample
from ecellm.evaluate import strict
from ecellm.evaluate.evaluator import _gold_letter, _gold_list, _qpr_labels, primary_metric, scorer_kind
from ecellm.tasks import get_task

Scorer = Callable[[Sequence[int]], float]


def _scorer(
    task_abbr: str, setting: str, samples: Sequence[Sample], texts: Sequence[str], bert: Any
) -> Scorer:
    """A function from sample indices to the group's strict primary metric on those samples."""
    task = get_task(task_abbr)
    kind, metric = scorer_kind(task), primary_metric(task)
    if kind == "generation":
        from ecellm.evaluate.bertscore import bertscore, cut_words

        preds = [cut_words(t.strip()) for t in texts]
        per = bertscore(preds, [cut_words(s.output.strip()) for s in samples], bert)["f1"]
        return lambda idx: sum(per[i] for i in idx) / len(idx)
    answers = [task.parse(t, s) for t, s in zip(texts, samples, strict=True)]
    if kind == "binary":
        gold: list[Any] = [s.output for s in samples]
        fn: Callable[[list[Any], list[Any]], dict[str, Any]] = strict.score_binary
    elif kind == "multiclass":
        gold, fn = [_gold_letter(task, s) for s in samples], strict.score_multiclass
    elif kind == "sr":
        gold, fn = [_gold_letter(task, s) for s in samples], strict.score_sr
    elif kind == "ave":
        gold = [_gold_list(s) for s in samples]

        def fn(g: list[Any], a: list[Any]) -> dict[str, Any]:
            return strict.score_ave(g, a, setting)
    else:
        gold = list(_qpr_labels(samples))

        def fn(g: list[Any], a: list[Any]) -> dict[str, Any]:
            return strict.score_qpr(a, g)

    return lambda idx: float(fn([gold[i] for i in idx], [answers[i] for i in idx])["metrics"][metric])


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
    if bertscore_model is None and any(scorer_kind(get_task(t)) == "generation" for t, _ in groups):
        from ecellm.evaluate.bertscore import resolve_model

        bertscore_model = resolve_model(None)
    scorers = {
        k: tuple(
            _scorer(k[0], k[1], g, [run.get(s.id, "") for s in g], bertscore_model) for run in (base, tuned)
        )
        for k, g in sorted(groups.items())
    }
    rng = random.Random(seed)
    draws: dict[tuple[str, str], list[float]] = {k: [] for k in scorers}
    for _ in range(resamples):
        for k, (sb, st) in scorers.items():
            n = len(groups[k])
            idx = [rng.randrange(n) for _ in range(n)]
            draws[k].append(st(idx) - sb(idx))
    full = {k: st(range(len(groups[k]))) - sb(range(len(groups[k]))) for k, (sb, st) in scorers.items()}
    alpha = (1 - level) / 2

    def summary(point: float, values: list[float]) -> dict[str, float]:
        v = sorted(values)
        lo = v[int(alpha * (len(v) - 1))]
        hi = v[int(round((1 - alpha) * (len(v) - 1)))]
        return {"delta": point, "lo": lo, "hi": hi}

    tasks = {k: summary(full[k], draws[k]) for k in scorers}
    means: dict[str, dict[str, float]] = {}
    for setting in sorted({k[1] for k in scorers}):
        keys = [k for k in scorers if k[1] == setting]
        point = sum(full[k] for k in keys) / len(keys)
        per_draw = [sum(draws[k][b] for k in keys) / len(keys) for b in range(resamples)]
        means[setting] = summary(point, per_draw)
    return {"tasks": tasks, "means": means, "resamples": resamples, "seed": seed, "level": level}
