"""Pure metric functions shared by the paper and strict scorers.

Plain Python over lists: one pass per group with ``collections.Counter`` is faster than
scikit-learn for the many small (task, setting) groups an evaluation has (sklearn's input
validation costs milliseconds per call), and the definitions are written out so that the
zero-division conventions are visible. ``tests/evaluate/test_metrics.py`` checks them against sklearn.

Zero-division convention: a ratio with an empty denominator is 0.0 (sklearn's
``zero_division=0``, which is what the reference got through its warnings), except where the
reference added an epsilon, which the paper scorers reproduce explicitly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any


def ratio(num: float, den: float) -> float:
    """``num / den``, or 0.0 when ``den`` is 0."""
    return num / den if den else 0.0


def accuracy(gold: Sequence[Any], pred: Sequence[Any]) -> float:
    """Share of positions where ``pred`` equals ``gold``; 0.0 for no positions."""
    return ratio(sum(g == p for g, p in zip(gold, pred, strict=True)), len(gold))


def binary_counts(
    gold: Sequence[str], pred: Sequence[Any], positive: str = "yes", negative: str = "no"
) -> dict:
    """Confusion counts with ``positive`` as the positive class.

    A prediction that is neither class (strict mode keeps invalid answers) is never a predicted
    positive or negative: on a positive gold it is a false negative, on a negative gold it just
    fails to be a true negative.
    """
    tp = fp = tn = fn = 0
    for g, p in zip(gold, pred, strict=True):
        if g == positive:
            if p == positive:
                tp += 1
            else:
                fn += 1
        elif p == positive:
            fp += 1
        elif g == negative and p == negative:
            tn += 1
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def binary_metrics(
    gold: Sequence[Any], pred: Sequence[Any], c: dict[str, int], specificity: float, npv: float
) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of the ``yes`` class plus the counts ``c`` (from
    :func:`binary_counts`); the two modes differ only in specificity and NPV, so they pass those in."""
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {
        "accuracy": accuracy(gold, pred),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "specificity": specificity,
        "npv": npv,
        **c,
    }


def per_label_counts(gold: Sequence[Any], pred: Sequence[Any]) -> tuple[Counter, Counter, Counter]:
    """(true positives, gold support, predicted count) per label."""
    tp: Counter = Counter()
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            tp[g] += 1
    return tp, Counter(gold), Counter(pred)


def macro_prf(gold: Sequence[Any], pred: Sequence[Any], labels: Iterable[Any]) -> dict[str, float]:
    """Macro precision, recall and F1 over ``labels`` (sklearn's ``average="macro"`` with
    ``zero_division=0``; F1 per label is 2TP / (predicted + support))."""
    labels = list(labels)
    tp, support, predicted = per_label_counts(gold, pred)
    if not labels:
        return {"macro_precision": 0.0, "macro_recall": 0.0, "macro_f1": 0.0}
    p = [ratio(tp[lab], predicted[lab]) for lab in labels]
    r = [ratio(tp[lab], support[lab]) for lab in labels]
    f = [ratio(2 * tp[lab], predicted[lab] + support[lab]) for lab in labels]
    k = len(labels)
    return {"macro_precision": sum(p) / k, "macro_recall": sum(r) / k, "macro_f1": sum(f) / k}


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain with exponential gain: sum (2^g - 1) / log2(rank + 1).

    Long lists (a model that repeats letters) go through numpy so a 1 MB answer stays fast;
    ordinary rankings keep the plain sum."""
    if len(gains) > 1000:
        import numpy as np

        g = np.asarray(gains, dtype=float)
        return float(np.sum((np.exp2(g) - 1.0) / np.log2(np.arange(2, len(g) + 2))))
    return sum((2.0**g - 1.0) / math.log2(i + 2) for i, g in enumerate(gains))


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    return ratio(math.fsum(values), len(values))


def max_matching(candidates: dict[int, list[int]]) -> int:
    """Size of a maximum bipartite matching (Kuhn's augmenting paths).

    ``candidates`` maps each left node to the right nodes it may be matched with. Used for
    strict AVE, where one predicted item can satisfy at most one gold triple and the other way
    round; groups are a handful of items, so the simple algorithm is plenty.
    """
    match_right: dict[int, int] = {}

    def augment(left: int, seen: set[int]) -> bool:
        for right in candidates.get(left, ()):
            if right in seen:
                continue
            seen.add(right)
            if right not in match_right or augment(match_right[right], seen):
                match_right[right] = left
                return True
        return False

    return sum(augment(left, set()) for left in candidates)
