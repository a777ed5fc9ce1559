"""Threshold-free ranking quality of yes/no choice scores: the AUC of the margin.

Why: F1 of a yes/no task depends on where the decision threshold sits, and a model whose scores
carry no signal can still score F1 0.67 on a balanced set by answering ``yes`` to everything.
The AUC of the margin ``score(yes) - score(no)`` (the probability that a random ``yes`` sample
has a larger margin than a random ``no`` sample, ties counted half) says whether the scores
rank the samples at all, whatever offsets or thresholds are then applied. 0.5 is chance.

The scores come from prediction records of choice scoring (``choice_scores``). Intervals use
:mod:`ecellm.evaluate.bootstrap`, so two runs on the same samples get paired resamples and
:func:`auc_delta` a paired interval for their difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ecellm.data.schema import Sample
from ecellm.evaluate.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, interval, replicates

POSITIVE, NEGATIVE = "yes", "no"


def margin_auc(margins: Sequence[float], positive: Sequence[bool]) -> float:
    """AUC of ``margins`` for the ``positive`` flags (Mann-Whitney, ties half); ``nan`` when one
    class is absent."""
    m = np.asarray(margins, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    a, b = m[pos], m[~pos]
    if not a.size or not b.size:
        return float("nan")
    diff = a[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def yes_no_margins(
    samples: Sequence[Sample], records: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], tuple[list[str], list[float], list[bool]]]:
    """Per (task, setting) of the yes/no tasks: sample ids (sorted), margins and gold flags, for
    the samples whose record has both choice scores."""
    from ecellm.tasks import get_task

    scores = {r.get("id"): r.get("choice_scores") for r in records}
    out: dict[tuple[str, str], tuple[list[str], list[float], list[bool]]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        sc = scores.get(s.id)
        if get_task(s.task).answer_kind != "yes_no" or not sc or POSITIVE not in sc or NEGATIVE not in sc:
            continue
        ids, margins, gold = out.setdefault((s.task, s.setting), ([], [], []))
        ids.append(s.id)
        margins.append(float(sc[POSITIVE]) - float(sc[NEGATIVE]))
        gold.append(s.output.strip().lower() == POSITIVE)
    return out


def _reps(margins: list[float], gold: list[bool], key: str, resamples: int, seed: int) -> np.ndarray:
    return replicates(
        lambda idx: margin_auc([margins[i] for i in idx], [gold[i] for i in idx]),
        len(margins),
        resamples=resamples,
        seed=seed,
        key=key,
    )


def auc_delta(
    samples: Sequence[Sample],
    before: Iterable[Mapping[str, Any]],
    after: Iterable[Mapping[str, Any]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (task, setting): each run's AUC with its interval and the paired interval of the
    difference (``after - before``), on the samples both runs scored. Resamples where a class is
    absent are left out of the intervals."""
    b = yes_no_margins(samples, before)
    a = yes_no_margins(samples, after)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key in sorted(set(a) & set(b)):
        common = set(a[key][0]) & set(b[key][0])
        pick = {
            who: [(m, g) for i, m, g in zip(*run[key], strict=True) if i in common]
            for who, run in (("before", b), ("after", a))
        }
        gold = [g for _, g in pick["after"]]
        rb = _reps([m for m, _ in pick["before"]], gold, "|".join(key), resamples, seed)
        ra = _reps([m for m, _ in pick["after"]], gold, "|".join(key), resamples, seed)
        ok = ~(np.isnan(rb) | np.isnan(ra))
        out[key] = {
            "n": len(common),
            "before": margin_auc([m for m, _ in pick["before"]], gold),
            "after": margin_auc([m for m, _ in pick["after"]], gold),
            "before_ci": interval(rb[ok]),
            "after_ci": interval(ra[ok]),
            "delta_ci": interval((ra - rb)[ok]),
        }
    return out
