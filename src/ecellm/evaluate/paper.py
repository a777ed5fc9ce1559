"""Paper mode: the reference evaluator's numbers, defects included, without its crashes.

Each scorer takes the gold outputs and the prediction texts of one (task, setting) group in
sample order and returns ``{"metrics": {...}, "invalid": int}``. Reproduced on purpose (so
scores are comparable with published tables; ``docs/evaluation.md`` lists them):

- invalid answers are dropped from predictions *and* labels (binary, multi-class, hit rate);
- multi-class answers are reduced to their first character, any of A-E is valid (also for
  PRP's three options), and macro averages run over the union of gold and predicted labels;
- AVE counts every (gold triple, predicted item) hit, so duplicates count several times, uses
  the reference's epsilons, and in OOD settings also accepts substring matches (an empty value
  is a substring of everything);
- ranking (QPR) computes the ideal DCG from the predicted items only and divides by
  ``idcg + 1e-6``.

Where the reference crashes, values are defined instead: an empty prediction is invalid
(multi-class), a group with nothing valid left scores 0.0, one class left gives the counts it
gives (no ``confusion_matrix`` unpacking), non-dict AVE items are ignored, missing labels
raise an ``InputError`` upstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ecellm.evaluate.metrics import accuracy, binary_counts, binary_metrics, dcg, macro_prf, ratio
from ecellm.tasks.base import Invalid
from ecellm.tasks.parsing import _json_safe

_MULTI = frozenset("ABCDE")


def score_binary(gold: Sequence[str], preds: Sequence[str]) -> dict[str, Any]:
    """PM, PSI, AP: ``yes``/``no`` after lower() and strip(); others dropped from both sides."""
    kept_g: list[str] = []
    kept_p: list[str] = []
    for g, p in zip(gold, preds, strict=True):
        p = p.lower().strip()
        if p in ("yes", "no"):
            kept_g.append(g)
            kept_p.append(p)
    c = binary_counts(kept_g, kept_p)
    tn, fp, fn = c["tn"], c["fp"], c["fn"]
    metrics = binary_metrics(kept_g, kept_p, c, specificity=tn / (tn + fp + 1e-8), npv=tn / (tn + fn + 1e-8))
    return {"metrics": metrics, "invalid": len(gold) - len(kept_g)}


def score_multiclass(gold: Sequence[str], preds: Sequence[str]) -> dict[str, Any]:
    """PRP, SA, MPC: first character of the stripped prediction in A-E; labels cut the same way."""
    kept_g: list[str] = []
    kept_p: list[str] = []
    for g, p in zip(gold, preds, strict=True):
        p = p.strip()
        if p and p[0] in _MULTI:
            kept_p.append(p[0])
            kept_g.append(g[:1])
    labels = sorted(set(kept_g) | set(kept_p))
    metrics: dict[str, Any] = {"accuracy": accuracy(kept_g, kept_p), **macro_prf(kept_g, kept_p, labels)}
    metrics["labels"] = labels
    return {"metrics": metrics, "invalid": len(gold) - len(kept_g)}


def score_hit_rate(gold: Sequence[str], preds: Sequence[str], letters: Sequence[str]) -> dict[str, Any]:
    """Hit rate (SR): the stripped prediction must be exactly one of ``letters`` (A-T for SR);
    HR@1 over the valid ones."""
    allowed = frozenset(letters)
    kept = [(g, p.strip()) for g, p in zip(gold, preds, strict=True) if p.strip() in allowed]
    hr = accuracy([g for g, _ in kept], [p for _, p in kept])
    return {"metrics": {"hr@1": hr, "accuracy": hr}, "invalid": len(gold) - len(kept)}


def _load_list(text: str) -> tuple[list[Any], bool]:
    """(items, parsed): unparsable JSON -> ([], False); parsable non-list -> ([], True).

    A list nested deeper than ``MAX_DEPTH`` counts as unparsable: comparing or printing it
    would exhaust the stack, and no real answer nests (the reference would crash on it)."""
    try:
        val = json.loads(text)
    except (ValueError, RecursionError):
        return [], False
    if isinstance(val, list) and isinstance(_json_safe(val), Invalid):
        return [], False
    return (val if isinstance(val, list) else []), True


def _relaxed(p: Any, lab: Any) -> bool:
    """The reference's OOD match on value and source: one a substring of the other."""
    if p["value"] is None or p["source"] is None:
        return False
    pv, lv = str(p["value"]), str(lab["value"])
    ps, ls = str(p["source"]), str(lab["source"])
    return (pv in lv or lv in pv) and (ps in ls or ls in ps)


def score_ave(gold: Sequence[str], preds: Sequence[str], setting: str) -> dict[str, Any]:
    """AVE: hits over every (gold triple, predicted item) pair; relaxed matches in OOD settings."""
    ood = "OOD" in setting
    hits = n_gold = n_pred = invalid = 0
    for g, p in zip(gold, preds, strict=True):
        items, ok = _load_list(p)
        invalid += not ok
        items = [it for it in items if isinstance(it, dict)]
        n_pred += sum("attribute" in it for it in items)
        full = [it for it in items if "attribute" in it and "value" in it and "source" in it]
        labels, ok_gold = _load_list(g)
        if not ok_gold:
            continue
        for lab in labels:
            if not isinstance(lab, dict) or not {"attribute", "value", "source"} <= lab.keys():
                continue
            n_gold += 1
            for it in full:
                if it["attribute"] != lab["attribute"]:
                    continue
                exact = it["value"] == lab["value"] and it["source"] == lab["source"]
                hits += exact or (ood and _relaxed(it, lab))
    recall = ratio(hits, n_gold)
    precision = hits / (n_pred + 1e-6)
    f1 = 2 * recall * precision / (recall + precision + 1e-6)
    metrics = {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "hits": hits,
        "n_gold": n_gold,
        "n_pred": n_pred,
    }
    return {"metrics": metrics, "invalid": invalid}


def score_ranking(
    preds: Sequence[str], labels: Sequence[Sequence[str]], gains: Mapping[str, float]
) -> dict[str, Any]:
    """Ranking (QPR): NDCG with the ideal ranking built from the predicted items, each item's
    gain ``gains[its label]``; mean over all samples.

    ``invalid`` counts samples with at least one unreadable token; the reference's own
    ``#invalid`` (a token count) is kept as ``invalid_tokens``.
    """
    total = 0.0
    bad_tokens = bad_samples = 0
    for p, labs in zip(preds, labels, strict=True):
        letter_gain = {chr(ord("A") + i): gains.get(lab) for i, lab in enumerate(labs)}
        looked = [letter_gain.get(tok[:1]) for tok in p.strip().split(",")]  # "" -> None: unreadable
        got = [g for g in looked if g is not None]
        bad = len(looked) - len(got)
        bad_tokens += bad
        bad_samples += bad > 0
        total += dcg(got) / (dcg(sorted(got, reverse=True)) + 1e-6)
    ndcg = ratio(total, len(preds))
    return {"metrics": {"ndcg": ndcg, "invalid_tokens": bad_tokens}, "invalid": bad_samples}
