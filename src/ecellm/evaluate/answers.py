"""The most common answer of a run on a closed-answer task.

A closed-answer score can move without the model reading its input: a run that gives one answer
to every sample scores that answer's share of the gold, so a gain from a new constant answer is a
change of prior, not of skill. Reports show the most common answer's share beside each score so
that such gains can be told apart from learnt ones. Which tasks are counted is the task's to say
(:attr:`ecellm.tasks.base.Task.countable`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def most_common(parsed: Iterable[Any]) -> dict[str, Any]:
    """``{"share", "answer"}`` of the most frequent parsed answer (ties: the smallest text). An
    unparsed answer (None) counts as ``invalid``; a list answer (a ranking) as its items joined."""
    counts = Counter(
        "invalid" if p is None else ",".join(map(str, p)) if isinstance(p, list | tuple) else str(p)
        for p in parsed
    )
    if not counts:
        raise ValueError("no answers to count")
    answer, k = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"share": k / sum(counts.values()), "answer": answer}
