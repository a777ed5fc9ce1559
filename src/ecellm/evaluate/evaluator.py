"""Join predictions to samples by id, group by (task, setting), score, and build the results.

Missing predictions are scored as empty strings (invalid in every mode) and counted as
``missing``; ``coverage`` is the share of samples with a usable answer. ``lenient`` first
extracts an answer with the task parser's lenient reading; in paper mode the extracted
answer is written back in its gold form and then scored by the reference rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ecellm.data.schema import SETTINGS, Sample
from ecellm.errors import InputError
from ecellm.evaluate import paper, strict
from ecellm.evaluate.bertscore import resolve_model
from ecellm.evaluate.generation import score_generation
from ecellm.tasks import Invalid, Task, all_tasks, get_task
from ecellm.tasks.parsing import render_answer, valid_unicode

# ``official`` is ``paper`` under the name ShopBench uses: the reference evaluator's numbers.
MODES = ("paper", "official", "strict")
# Scorer family per task (an 11th task falls back on its answer kind).
KIND = {"SR": "sr"}
KIND_BY_ANSWER = {
    "yes_no": "binary",
    "letter": "multiclass",
    "option": "multiclass",
    "ranking": "qpr",
    "attribute_values": "ave",
    "text": "generation",
}
PRIMARY = {"binary": "f1", "sr": "hr@1", "qpr": "ndcg", "ave": "f1", "generation": "bertscore_f1"}
PRIMARY_BY_TASK = {"MPC": "accuracy"}


def scorer_kind(task: Task) -> str:
    return KIND.get(task.abbr) or KIND_BY_ANSWER[task.answer_kind]


def primary_metric(task: Task) -> str:
    """The metric the paper reports for the task (macro F1 for PRP/SA, accuracy for MPC, ...)."""
    kind = scorer_kind(task)
    return PRIMARY_BY_TASK.get(task.abbr) or PRIMARY.get(kind, "macro_f1")


def _qpr_labels(samples: Sequence[Sample]) -> list[list[str]]:
    out = []
    for s in samples:
        labs = s.meta.get("labels")
        if not isinstance(labs, list) or not labs:
            raise InputError(
                "QPR sample has no ESCI labels (pass the reference label.json with --qpr-labels)",
                record=s.id,
                field="meta.labels",
            )
        out.append([str(x) for x in labs])
    return out


def _gold_letter(task: Task, s: Sample) -> str:
    g = task.parse(s.output, s)
    return g if isinstance(g, str) else s.output.strip()[:1]


def _gold_list(s: Sample) -> list[Any]:
    try:
        val = json.loads(s.output)
    except ValueError:
        return []
    return val if isinstance(val, list) else []


def score_group(
    task: Task,
    setting: str,
    samples: Sequence[Sample],
    texts: Sequence[str],
    *,
    mode: str,
    lenient: bool,
    bertscore_model: Any = None,
) -> dict[str, Any]:
    """Score one (task, setting) group; returns ``{"metrics", "invalid"}`` (a task's own scorer
    also returns ``score`` and ``metric``, and may add fields to the row under ``row``)."""
    if task.scorer is not None:
        return task.scorer(
            task, setting, samples, texts, mode=mode, lenient=lenient, bertscore_model=bertscore_model
        )
    if mode == "official":
        mode = "paper"
    kind = scorer_kind(task)
    gold = [s.output for s in samples]
    if kind == "generation":
        return score_generation(gold, texts, mode=mode, model=bertscore_model)
    if mode == "paper":
        if lenient:
            parsed = [task.parse(t, s, lenient=True) for t, s in zip(texts, samples, strict=True)]
            texts = [
                t if isinstance(a, Invalid) else render_answer(a, task.answer_kind)
                for t, a in zip(texts, parsed, strict=True)
            ]
        if kind == "binary":
            return paper.score_binary(gold, texts)
        if kind == "multiclass":
            return paper.score_multiclass(gold, texts)
        if kind == "sr":
            return paper.score_sr(gold, texts)
        if kind == "ave":
            return paper.score_ave(gold, texts, setting)
        return paper.score_qpr(texts, _qpr_labels(samples))
    answers = [task.parse(t, s, lenient=lenient) for t, s in zip(texts, samples, strict=True)]
    if kind == "binary":
        return strict.score_binary(gold, answers)
    if kind == "multiclass":
        return strict.score_multiclass([_gold_letter(task, s) for s in samples], answers)
    if kind == "sr":
        return strict.score_sr([_gold_letter(task, s) for s in samples], answers)
    if kind == "ave":
        return strict.score_ave([_gold_list(s) for s in samples], answers, setting)
    return strict.score_qpr(answers, _qpr_labels(samples))


def _summaries(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{family: its aggregate of its rows}`` for the families that define one (ShopBench:
    per-track and overall figures)."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    hooks: dict[str, Any] = {}
    for r in rows:
        task = get_task(r["task"])
        if task.aggregate is not None:
            by_family.setdefault(task.family, []).append(r)
            hooks[task.family] = task.aggregate
    return {family: hooks[family](family_rows) for family, family_rows in by_family.items()}


def _setting_key(setting: str) -> tuple[int, str]:
    return (SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS), setting)


def evaluate(
    samples: Sequence[Sample],
    predictions: Mapping[str, str],
    *,
    mode: str = "paper",
    lenient: bool = False,
    bertscore_model: str | None = None,
    only_predicted: bool = False,
) -> dict[str, Any]:
    """Score ``predictions`` (id -> raw model text) against ``samples``.

    Returns ``{"results": [row per (task, setting)], "mode", "lenient", "n_samples",
    "n_predictions", "unmatched_predictions", "bertscore_model"}``; each row holds
    ``task, task_name, setting, mode, lenient, metric, score, n, invalid, missing, coverage,
    metrics``. ``only_predicted`` drops samples without a prediction instead of scoring them
    as invalid (for partial runs such as ``predict --limit``).
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r} (choose paper or strict)", field="mode")
    ids = {s.id for s in samples}
    if len(ids) != len(samples):
        raise InputError("sample ids are not unique", field="id")
    if only_predicted:
        samples = [s for s in samples if s.id in predictions]
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.task, s.setting), []).append(s)
    order = {t.abbr: i for i, t in enumerate(all_tasks())}
    model = None
    if any(get_task(t).scorer is None and scorer_kind(get_task(t)) == "generation" for t, _ in groups):
        model = resolve_model(bertscore_model)
    first_seen = {k: i for i, k in enumerate(groups)}

    def group_order(k: tuple[str, str]) -> tuple[int, tuple[int, str], int]:
        if k[0] in order:  # table order, then setting order
            return (order[k[0]], _setting_key(k[1]), 0)
        return (len(order), (0, ""), first_seen[k])  # other families: data order

    results = []
    for abbr, setting in sorted(groups, key=group_order):
        task, group = get_task(abbr), groups[(abbr, setting)]
        texts = [valid_unicode(predictions.get(s.id, "")) for s in group]
        missing = sum(s.id not in predictions for s in group)
        scored = score_group(task, setting, group, texts, mode=mode, lenient=lenient, bertscore_model=model)
        metric = scored.get("metric") or primary_metric(task)
        n, invalid = len(group), scored["invalid"]
        results.append(
            {
                "task": abbr,
                "task_name": task.name,
                "setting": setting,
                "mode": mode,
                "lenient": lenient,
                "metric": metric,
                "score": scored["score"] if "score" in scored else scored["metrics"][metric],
                "n": n,
                "invalid": invalid,
                "missing": missing,
                "coverage": (n - invalid) / n if n else 0.0,
                "metrics": scored["metrics"],
                **scored.get("row", {}),
            }
        )
    return {
        "summary": _summaries(results),
        "results": results,
        "mode": mode,
        "lenient": lenient,
        "n_samples": len(samples),
        "n_predictions": len(predictions),
        "unmatched_predictions": sum(k not in ids for k in predictions),
        "bertscore_model": model.name if model else None,
    }
