"""Score one ShopBench task (one ``task_name``) record by record, and summarise tasks into tracks.

Every record is scored with its own ``metric`` (records of one task may differ: BLEU and
jp-BLEU in one translation task). The task score is the mean of its records' scores; micro F1
is pooled over the task's records, as the starter kit does (a task that mixed micro F1 with
another metric would use each record's own F1 in the mean). ``official`` mode (``paper`` is
accepted as its synonym) reproduces the starter kit, quirks included; ``strict`` fixes them:
a predicted item 0 in ranking reads the last item's gain officially and nothing in strict
mode; a multiple-choice answer ``10`` reads as ``1`` officially and as ``10`` in strict mode;
an empty generation scores 0 in strict mode instead of the embedding similarity of an empty
string.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from ecellm.errors import InputError
from ecellm.tasks.shopbench import metrics as M

UNSPECIFIED_TRACK = "unspecified"
EMBEDDING_MODEL_ENV = M.MULTILINGUAL_ENV


def is_official(mode: str) -> bool:
    if mode not in ("official", "paper", "strict"):
        raise InputError(f"unknown mode {mode!r} (official or strict)", field="mode")
    return mode != "strict"


def _truth(sample: Any) -> tuple[str, Any]:
    meta = sample.meta
    for key, field in (("truth", "output_field"), ("metric", "metric")):
        if meta.get(key) is None:
            raise InputError("needed for scoring but missing", record=sample.id, field=field)
    return meta["metric"], meta["truth"]


def _embedding(metric: str, gens: list[str], truths: list[Any], used: dict[str, str]) -> list[float]:
    enc = M.get_encoder(metric, os.environ.get(EMBEDDING_MODEL_ENV))
    used[metric] = enc.location
    return M.embedding_scores(enc, gens, truths)


def score_group(
    task: Any,
    setting: str,
    samples: Sequence[Any],
    texts: Sequence[str],
    *,
    mode: str,
    lenient: bool = False,
    bertscore_model: Any = None,
) -> dict[str, Any]:
    """The evaluator's per-group scorer for a ShopBench task type (see the module docstring).

        Returns ``{"score", "metric", "metrics", "invalid", "row"}``: ``metric`` names the
        record metrics used (``bleu+jp-bleu``), ``metrics`` holds the score per record metric plus
        the micro-F1 counts, ``row`` the task's track; ``samples`` has each record's reading and score
    (left out of the evaluator's rows, which stay one line per task).
    """
    official = is_official(mode)
    read, unusable = task.extra["read"], task.extra["unusable"]
    parsed = [read(M.cut(t), official) for t in texts]
    labelled = [_truth(s) for s in samples]
    scores: list[Any] = [None] * len(samples)
    used: dict[str, str] = {}
    by_metric: dict[str, list[int]] = defaultdict(list)
    for i, (metric, _) in enumerate(labelled):
        if metric not in task.extra["metrics"]:
            raise InputError(
                f"metric {metric!r} does not apply to task type {task.extra['task_type']!r}",
                record=samples[i].id,
                field="metric",
            )
        by_metric[metric].append(i)
    for metric, idx in by_metric.items():
        if metric in M.EMBEDDING_METRICS:
            live = [i for i in idx if parsed[i] or official]
            got = (
                _embedding(metric, [parsed[i] for i in live], [labelled[i][1] for i in live], used)
                if live
                else []
            )
            for i in idx:
                scores[i] = 0.0
            for i, s in zip(live, got, strict=True):
                scores[i] = s
        else:
            for i in idx:
                scores[i] = M.score_record(metric, parsed[i], labelled[i][1], official=official)
    metrics: dict[str, Any] = {}
    for metric, idx in by_metric.items():
        if metric == "micro f1":
            metrics[metric] = M.micro_f1([scores[i] for i in idx])
        else:
            metrics[metric] = fmean(scores[i] for i in idx)
    if set(by_metric) == {"micro f1"}:
        score = metrics["micro f1"]["f1"]
    else:
        score = fmean(M.micro_f1([s])["f1"] if isinstance(s, tuple) else s for s in scores)
    if "jp-bleu" in by_metric:
        metrics["jp_bleu_tokenizer"] = M.japanese_tokenizer()
    if used:
        metrics["embedding_models"] = used
    tracks = Counter(s.meta.get("track") or UNSPECIFIED_TRACK for s in samples)
    return {
        "score": score,
        "metric": "+".join(by_metric),
        "metrics": metrics,
        "invalid": sum(bool(unusable(p)) for p in parsed),
        "row": {"track": tracks.most_common(1)[0][0]},
        "samples": [
            {"id": s.id, "metric": m, "parsed": p, "score": sc}
            for s, (m, _), p, sc in zip(samples, labelled, parsed, scores, strict=True)
        ],
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-track and overall figures from the per-task rows (one row per ``task_name``).

    Track score = mean of its tasks' scores; overall = mean of task scores (the starter
    kit's number) and mean of track scores (both views are reported).
    """
    by_track: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_track[r.get("track") or UNSPECIFIED_TRACK].append(r["score"])
    tracks = [{"track": k, "score": fmean(v), "tasks": len(v)} for k, v in by_track.items()]
    return {
        "tasks": [{"task_name": r["setting"], "type": r["task"], "score": r["score"]} for r in rows],
        "tracks": tracks,
        "overall": {
            "task_mean": fmean(r["score"] for r in rows),
            "track_mean": fmean(t["score"] for t in tracks),
        },
    }
