"""Strict mode: every sample stays in the denominator and duplicates earn nothing.

Scorers take parsed answers (the task parsers' output, or :class:`~ecellm.tasks.Invalid`)
and return ``{"metrics": {...}, "invalid": int}`` like the paper scorers:

- binary / multi-class / hit rate (SR): an invalid or out-of-option answer is simply wrong; macro
  averages run over the labels present in the gold outputs only (a stray predicted label
  lowers precision of nobody and recall of its gold label);
- AVE: items normalised (case, whitespace), de-duplicated per sample, matched one-to-one
  (maximum matching); relaxed matches only in OOD settings and only between non-empty
  strings; every predicted item, object or not, counts for precision;
- ranking (QPR): unknown letters ignored, duplicates keep their first position, gold items the answer
  left out are appended in the worst order, and the ideal DCG comes from the gold labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ecellm.evaluate.metrics import (
    accuracy,
    binary_counts,
    binary_metrics,
    dcg,
    macro_prf,
    max_matching,
    mean,
    ratio,
)
from ecellm.tasks.base import Invalid


def _answer(a: Any) -> Any:
    """Invalid answers become ``None``, a value no gold label has."""
    return None if isinstance(a, Invalid) else a


def score_binary(gold: Sequence[str], answers: Sequence[Any]) -> dict[str, Any]:
    """PM, PSI, AP with positive class ``yes``; specificity and NPV without epsilons."""
    g = [x.strip().lower() for x in gold]
    p = [_answer(a) for a in answers]
    c = binary_counts(g, p)
    tn = c["tn"]
    spec, npv = ratio(tn, sum(x == "no" for x in g)), ratio(tn, sum(x == "no" for x in p))
    metrics = binary_metrics(g, p, c, specificity=spec, npv=npv)
    return {"metrics": metrics, "invalid": sum(x is None for x in p)}


def score_multiclass(gold_letters: Sequence[str], answers: Sequence[Any]) -> dict[str, Any]:
    """PRP, SA, MPC: accuracy and macro P/R/F1 over the gold label set."""
    p = [_answer(a) for a in answers]
    labels = sorted(set(gold_letters))
    metrics: dict[str, Any] = {"accuracy": accuracy(gold_letters, p), **macro_prf(gold_letters, p, labels)}
    metrics["labels"] = labels
    return {"metrics": metrics, "invalid": sum(x is None for x in p)}


def score_hit_rate(gold_letters: Sequence[str], answers: Sequence[Any]) -> dict[str, Any]:
    """Hit rate (SR): HR@1 over all samples."""
    p = [_answer(a) for a in answers]
    hr = accuracy(gold_letters, p)
    return {"metrics": {"hr@1": hr, "accuracy": hr}, "invalid": sum(x is None for x in p)}


def _norm(x: Any) -> str:
    return " ".join(str(x).lower().split())


def _triples(items: Sequence[Any]) -> tuple[list[tuple[str, str, str]], int]:
    """Unique normalised triples, plus the number of unique items that are not triples."""
    triples: dict[tuple[str, str, str], None] = {}
    other: set[str] = set()
    for it in items:
        if isinstance(it, dict) and {"attribute", "value", "source"} <= it.keys():
            triples[(_norm(it["attribute"]), _norm(it["value"]), _norm(it["source"]))] = None
        else:
            other.add(json.dumps(it, sort_keys=True, default=str))
    return list(triples), len(other)


def _relaxed(p: tuple[str, str, str], g: tuple[str, str, str]) -> bool:
    if p[0] != g[0] or not all(p[1:]) or not all(g[1:]):
        return False
    return (p[1] in g[1] or g[1] in p[1]) and (p[2] in g[2] or g[2] in p[2])


def score_ave(gold: Sequence[Any], answers: Sequence[Any], setting: str) -> dict[str, Any]:
    """AVE: micro precision/recall/F1 over de-duplicated, one-to-one matched triples.

    ``gold`` holds each sample's gold list (already parsed).
    """
    ood = "OOD" in setting
    hits = n_gold = n_pred = 0
    for g_items, a in zip(gold, answers, strict=True):
        g_trip, _ = _triples(g_items)
        p_trip, p_other = _triples([] if isinstance(a, Invalid) else a)
        n_gold += len(g_trip)
        n_pred += len(p_trip) + p_other
        cand = {
            i: [j for j, g in enumerate(g_trip) if p == g or (ood and _relaxed(p, g))]
            for i, p in enumerate(p_trip)
        }
        hits += max_matching(cand)
    precision, recall = ratio(hits, n_pred), ratio(hits, n_gold)
    f1 = ratio(2 * precision * recall, precision + recall)
    metrics = {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "hits": hits,
        "n_gold": n_gold,
        "n_pred": n_pred,
    }
    return {"metrics": metrics, "invalid": sum(isinstance(a, Invalid) for a in answers)}


def ranking_ndcg(answer: Any, labels: Sequence[str], gains: Mapping[str, float]) -> float:
    """NDCG of one answer against the gold labels of the listed products (A, B, ...)."""
    letters = [chr(ord("A") + i) for i in range(len(labels))]
    gain = {x: gains.get(lab, 0.0) for x, lab in zip(letters, labels, strict=True)}
    ranked: list[str] = []
    for x in [] if isinstance(answer, Invalid) else answer:
        if x in gain and x not in ranked:
            ranked.append(x)
    rest = sorted((x for x in letters if x not in ranked), key=lambda x: (gain[x], x))
    ranked += rest
    ideal = dcg(sorted(gain.values(), reverse=True))
    return dcg([gain[x] for x in ranked]) / ideal if ideal else 1.0


def score_ranking(
    answers: Sequence[Any], labels: Sequence[Sequence[str]], gains: Mapping[str, float]
) -> dict[str, Any]:
    """Ranking (QPR): mean NDCG over all samples."""
    ndcg = mean([ranking_ndcg(a, lab, gains) for a, lab in zip(answers, labels, strict=True)])
    return {"metrics": {"ndcg": ndcg}, "invalid": sum(isinstance(a, Invalid) for a in answers)}
