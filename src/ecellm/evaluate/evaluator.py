"""Join predictions to samples by id, group by (task, setting), score, and build the results.

Missing predictions are scored as empty strings (invalid in every mode) and counted as
``missing``; ``coverage`` is the share of samples with a usable answer. ``lenient`` first
extracts an answer with the task parser's lenient reading; in paper mode the extracted
answer is written back in its gold form and then scored by the reference rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecellm.data.schema import SETTINGS, Sample
from ecellm.errors import InputError
from ecellm.evaluate import paper, strict
from ecellm.evaluate.bertscore import resolve_model
from ecellm.evaluate.bootstrap import DEFAULT_LEVEL, DEFAULT_SEED, interval, replicates
from ecellm.evaluate.generation import generation_scorer
from ecellm.tasks import Invalid, Task, all_tasks, get_task
from ecellm.tasks.parsing import render_answer, valid_unicode

# ``official`` is ``paper`` under the name ShopBench uses: the reference evaluator's numbers.
MODES = ("paper", "official", "strict")


def _labels(task: Task, samples: Sequence[Sample]) -> list[list[str]]:
    out = []
    for s in samples:
        labs = s.meta.get("labels")
        if not isinstance(labs, list) or not labs:
            hint = f" (pass the reference {task.label_file} with --qpr-labels)" if task.label_file else ""
            raise InputError(f"{task.abbr} sample has no gold labels{hint}", record=s.id, field="meta.labels")
        out.append([str(x) for x in labs])
    return out


def _gains(task: Task) -> dict[str, float]:
    if not task.gains:
        raise InputError(f"task {task.abbr} is scored as a ranking but declares no gains", field="gains")
    return task.gains


def _gold_letter(task: Task, s: Sample) -> str:
    g = task.parse(s.output, s)
    return g if isinstance(g, str) else s.output.strip()[:1]


def _gold_list(s: Sample) -> list[Any]:
    try:
        val = json.loads(s.output)
    except ValueError:
        return []
    return val if isinstance(val, list) else []


def group_scorer(
    task: Task,
    setting: str,
    samples: Sequence[Sample],
    texts: Sequence[str],
    *,
    mode: str,
    lenient: bool,
    bertscore_model: Any = None,
) -> Callable[[Sequence[int]], dict[str, Any]]:
    """Parse once, then score any subset of the group (by position): ``idx -> {"metrics", "invalid"}``.

    The whole group is ``range(len(samples))``; a bootstrap resample or a single sample (for the
    per-sample log) goes through exactly the same scorer, so intervals and logs can never disagree
    with the reported score.
    """

    def pick(seq: Sequence[Any], idx: Sequence[int]) -> list[Any]:
        return [seq[i] for i in idx]

    if task.scorer is not None:  # a family's own scorer (ShopBench): rerun it on the subset
        own = task.scorer
        return lambda idx: own(
            task,
            setting,
            pick(samples, idx),
            pick(texts, idx),
            mode=mode,
            lenient=lenient,
            bertscore_model=bertscore_model,
        )
    if mode == "official":
        mode = "paper"
    kind = task.score_kind  # the scorer family the task declares (Task.scoring)
    gold = [s.output for s in samples]
    if kind == "generation":
        return generation_scorer(gold, texts, mode=mode, model=bertscore_model)

    if mode == "paper":
        if lenient:
            parsed = [task.parse(t, s, lenient=True) for t, s in zip(texts, samples, strict=True)]
            texts = [
                t if isinstance(a, Invalid) else render_answer(a, task.answer_kind)
                for t, a in zip(texts, parsed, strict=True)
            ]
        if kind == "binary":
            return lambda idx: paper.score_binary(pick(gold, idx), pick(texts, idx))
        if kind == "multiclass":
            return lambda idx: paper.score_multiclass(pick(gold, idx), pick(texts, idx))
        if kind == "hit_rate":
            letters = task.option_letters
            return lambda idx: paper.score_hit_rate(pick(gold, idx), pick(texts, idx), letters)
        if kind == "attribute_values":
            return lambda idx: paper.score_ave(pick(gold, idx), pick(texts, idx), setting)
        labels, gains = _labels(task, samples), _gains(task)
        return lambda idx: paper.score_ranking(pick(texts, idx), pick(labels, idx), gains)
    answers = [task.parse(t, s, lenient=lenient) for t, s in zip(texts, samples, strict=True)]
    if kind == "binary":
        return lambda idx: strict.score_binary(pick(gold, idx), pick(answers, idx))
    if kind == "multiclass":
        letters = [_gold_letter(task, s) for s in samples]
        return lambda idx: strict.score_multiclass(pick(letters, idx), pick(answers, idx))
    if kind == "hit_rate":
        letters = [_gold_letter(task, s) for s in samples]
        return lambda idx: strict.score_hit_rate(pick(letters, idx), pick(answers, idx))
    if kind == "attribute_values":
        lists = [_gold_list(s) for s in samples]
        return lambda idx: strict.score_ave(pick(lists, idx), pick(answers, idx), setting)
    labels, gains = _labels(task, samples), _gains(task)
    return lambda idx: strict.score_ranking(pick(answers, idx), pick(labels, idx), gains)


def score_of(scored: dict[str, Any], metric: str) -> float:
    """The row's score: a family scorer's own ``score``, else the primary metric's value."""
    return scored["score"] if "score" in scored else scored["metrics"][metric]


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
    scorer = group_scorer(
        task, setting, samples, texts, mode=mode, lenient=lenient, bertscore_model=bertscore_model
    )
    return scorer(range(len(samples)))


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
    bootstrap: int = 0,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    keep_replicates: bool = False,
    log_samples: bool = False,
) -> dict[str, Any]:
    """Score ``predictions`` (id -> raw model text) against ``samples``.

    Returns ``{"results": [row per (task, setting)], "mode", "lenient", "n_samples",
    "n_predictions", "unmatched_predictions", "bertscore_model"}``; each row holds
    ``task, task_name, setting, mode, lenient, metric, score, n, invalid, missing, coverage,
    metrics``. ``only_predicted`` drops samples without a prediction instead of scoring them
    as invalid (for partial runs such as ``predict --limit``).

    ``bootstrap=B`` adds ``ci`` (seeded percentile interval of the primary metric over B
    resamples of the group's samples, see :mod:`ecellm.evaluate.bootstrap`) and ``ids_sha256`` to
    every row; ``keep_replicates`` also keeps the B replicate scores (``replicates``), which is
    what paired differences between runs need. ``log_samples`` adds ``samples``: one record per
    sample (id, task, setting, mode, gold, prediction, parsed, valid, score), scored alone by
    the same scorer (``score`` is its accuracy where the task has one, else the primary metric).
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
    if any(get_task(t).scorer is None and get_task(t).score_kind == "generation" for t, _ in groups):
        model = resolve_model(bertscore_model)
    first_seen = {k: i for i, k in enumerate(groups)}

    def group_order(k: tuple[str, str]) -> tuple[int, tuple[int, str], int]:
        if k[0] in order:  # table order, then setting order
            return (order[k[0]], _setting_key(k[1]), 0)
        return (len(order), (0, ""), first_seen[k])  # other families: data order

    results = []
    logs: list[dict[str, Any]] = []
    for abbr, setting in sorted(groups, key=group_order):
        task, group = get_task(abbr), sorted(groups[(abbr, setting)], key=lambda s: s.id)
        texts = [valid_unicode(predictions.get(s.id, "")) for s in group]
        missing = sum(s.id not in predictions for s in group)
        scorer = group_scorer(task, setting, group, texts, mode=mode, lenient=lenient, bertscore_model=model)
        scored = scorer(range(len(group)))
        metric = scored.get("metric") or task.primary_metric
        n, invalid = len(group), scored["invalid"]
        extra: dict[str, Any] = {}
        if bootstrap:
            extra = _bootstrap_fields(scorer, metric, group, abbr, setting, mode, bootstrap, seed, level)
            if not keep_replicates:
                extra.pop("replicates")
        if log_samples:
            logs.extend(_sample_log(task, setting, group, texts, scorer, metric, mode, lenient))
        results.append(
            {
                **extra,
                "task": abbr,
                "task_name": task.name,
                "setting": setting,
                "mode": mode,
                "lenient": lenient,
                "metric": metric,
                "score": score_of(scored, metric),
                "n": n,
                "invalid": invalid,
                "missing": missing,
                "coverage": (n - invalid) / n if n else 0.0,
                "metrics": scored["metrics"],
                **scored.get("row", {}),
            }
        )
    out: dict[str, Any] = {
        "summary": _summaries(results),
        "results": results,
        "mode": mode,
        "lenient": lenient,
        "n_samples": len(samples),
        "n_predictions": len(predictions),
        "unmatched_predictions": sum(k not in ids for k in predictions),
        "bertscore_model": model.name if model else None,
        "bertscore_fallback": model.fallback if model else None,
    }
    if bootstrap:
        out["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": level, "method": "percentile"}
    if log_samples:
        out["samples"] = logs
    return out


def _bootstrap_fields(
    scorer: Callable[[Sequence[int]], dict[str, Any]],
    metric: str,
    group: Sequence[Sample],
    abbr: str,
    setting: str,
    mode: str,
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any]:
    """``ci``, ``ids_sha256`` (which samples, so pairs can be checked) and ``replicates``."""
    key = f"{abbr}/{setting}/{mode}"
    reps = replicates(
        lambda idx: score_of(scorer(idx), metric), len(group), resamples=resamples, seed=seed, key=key
    )
    low, high = interval(reps, level)
    ids = hashlib.sha256("\n".join(s.id for s in group).encode()).hexdigest()
    return {"ci": {"low": low, "high": high, "level": level}, "ids_sha256": ids, "replicates": reps.tolist()}


def _jsonable(answer: Any) -> Any:
    if isinstance(answer, Invalid):
        return None
    return answer if isinstance(answer, str | int | float | list | dict | type(None)) else str(answer)


def _sample_log(
    task: Task,
    setting: str,
    group: Sequence[Sample],
    texts: Sequence[str],
    scorer: Callable[[Sequence[int]], dict[str, Any]],
    metric: str,
    mode: str,
    lenient: bool,
) -> list[dict[str, Any]]:
    """One record per sample, scored alone by the group's scorer (so it uses the mode's rules)."""
    out = []
    for i, (s, text) in enumerate(zip(group, texts, strict=True)):
        alone = scorer([i])
        parsed = task.parse(text, s, lenient=lenient)
        out.append(
            {
                "id": s.id,
                "task": s.task,
                "setting": setting,
                "mode": mode,
                "gold": s.output,
                "prediction": text,
                "parsed": _jsonable(parsed),
                "valid": alone["invalid"] == 0,
                "score": float(alone["metrics"].get("accuracy", score_of(alone, metric))),
            }
        )
    return out
