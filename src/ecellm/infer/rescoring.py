"""The one wrapper shape for backends whose choice answers are re-decided from their choice scores.

Why one class: answer offsets (:mod:`ecellm.offsets`) and contextual calibration
(:mod:`ecellm.infer.calibration`) both wrap any backend, pass every non-choice request through
and, for a choice request, pick a new answer from the backend's ``choice_logprobs``. What they
share (looking like the wrapped backend to the caller, describing themselves, the pass-through
loop) lives here; a subclass says only how one completion is re-decided and what to add to
``describe``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ecellm.infer.base import Completion, Request


class RescoringBackend:
    """Wraps ``backend``; choice completions go through :meth:`rescore`, the rest pass unchanged."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = getattr(backend, "name", type(backend).__name__)
        self.supported_modes = getattr(backend, "supported_modes", frozenset({"generate"}))
        self.tokenizer = getattr(backend, "tokenizer", None)

    def describe(self) -> dict[str, Any]:
        info = dict(self.backend.describe()) if hasattr(self.backend, "describe") else {}
        info.update(self.description())
        return info

    def description(self) -> dict[str, Any]:
        """What the wrapper adds to the backend's ``describe`` (its settings)."""
        return {}

    def prepare(self, requests: Sequence[Request]) -> None:
        """Work needed before the requests run (e.g. scoring extra prompts); default none."""

    def rescore(self, request: Request, completion: Completion) -> Completion:
        """The completion of a choice request with scores, re-decided."""
        raise NotImplementedError

    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        reqs = list(requests)
        self.prepare(reqs)
        by_id = {r.id: r for r in reqs}
        for c in self.backend.run(reqs):
            r = by_id.get(c.id)
            yield self.rescore(r, c) if r is not None and c.choice_logprobs else c
