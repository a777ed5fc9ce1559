"""Calibrated choice scoring: each answer's score corrected by its score on a content-free input.

Why: a small model's choice scores carry a label prior that does not depend on the input. The
untuned SmolLM2-135M scores ``yes`` above ``no`` for every product pair and ``A`` above every
other option, so choice scoring answers with one label for the whole test set; a briefly tuned
model can flip the same bias to ``no``. Subtracting what the model says when the input says
nothing (contextual calibration) removes that prior and keeps what the input adds.

How: for every choice request, the same sample is rendered again with its input replaced by
each of :data:`CONTENT_FREE` (instruction, options and template unchanged). The content-free
probabilities of the choices (renormalised over the choices, averaged over the content-free
inputs) are computed once per distinct content-free prompt, i.e. once per task, instruction and
option list, and cached for the life of the wrapper. A request's calibrated score of choice
``k`` is ``log p(k | prompt) - log p_cf(k)``; the answer is the best calibrated score and
``choice_logprobs`` holds the calibrated scores. Requests that are not choice requests pass
through unchanged. Works with any backend that returns ``choice_logprobs``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ecellm.data.schema import Sample
from ecellm.infer.base import Completion, Request
from ecellm.infer.rescoring import RescoringBackend

CONTENT_FREE: tuple[str, ...] = ("N/A", "")


def content_free_prompts(
    samples: Sequence[Sample], requests: Sequence[Request], *, template: str, tokenizer: Any = None
) -> dict[str, tuple[str, ...]]:
    """Request id -> its content-free prompts, for every choice request (same order as samples)."""
    from ecellm.prompts import render_prompt

    by_id = {s.id: s for s in samples}
    out: dict[str, tuple[str, ...]] = {}
    for r in requests:
        if r.mode != "choice" or r.id not in by_id:
            continue
        s = by_id[r.id]
        out[r.id] = tuple(
            render_prompt(s.model_copy(update={"input": text}), template, tokenizer) for text in CONTENT_FREE
        )
    return out


def _normalised(scores: Sequence[float]) -> list[float]:
    """Log-probabilities renormalised over the choices (log-softmax of the scores)."""
    top = max(scores)
    z = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - z for s in scores]


class CalibratedBackend(RescoringBackend):
    """Wraps a backend so that choice requests are answered with calibrated scores."""

    def __init__(self, backend: Any, prompts: dict[str, tuple[str, ...]]) -> None:
        super().__init__(backend)
        self.prompts = prompts
        self.cache: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[float]] = {}

    def description(self) -> dict[str, Any]:
        return {"calibration": {"content_free_inputs": list(CONTENT_FREE), "cached_priors": len(self.cache)}}

    @staticmethod
    def _key(prompt: str, r: Request) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return (prompt, tuple(r.choices or ()), tuple(r.score_texts or r.choices or ()))

    def prior(self, r: Request) -> list[float]:
        """Log of the content-free choice probabilities of ``r`` (computed before :meth:`run`)."""
        rows = [_normalised(self.cache[self._key(p, r)]) for p in self.prompts[r.id]]
        probs = [sum(math.exp(row[k]) for row in rows) / len(rows) for k in range(len(rows[0]))]
        return [math.log(max(p, 1e-300)) for p in probs]

    def prepare(self, requests: Sequence[Request]) -> None:
        """Scores the content-free prompts not yet cached."""
        todo: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Request] = {}
        for r in requests:
            if r.mode != "choice":
                continue
            for p in self.prompts.get(r.id, ()):
                key = self._key(p, r)
                if key not in self.cache and key not in todo:
                    todo[key] = replace(r, id=f"content-free-{len(self.cache) + len(todo)}", prompt=p)
        if not todo:
            return
        keys = {req.id: key for key, req in todo.items()}
        for c in self.backend.run(list(todo.values())):
            if c.choice_logprobs is None:
                raise ValueError(f"backend {self.name!r} returned no choice scores; cannot calibrate")
            req = todo[keys[c.id]]
            self.cache[keys[c.id]] = [c.choice_logprobs[ch] for ch in req.choices or ()]

    def rescore(self, r: Request, c: Completion) -> Completion:
        if r.mode != "choice" or r.id not in self.prompts:
            return c
        choices = list(r.choices or ())
        raw = [c.choice_logprobs[ch] for ch in choices]
        score = [s - p for s, p in zip(_normalised(raw), self.prior(r), strict=True)]
        best = max(range(len(score)), key=lambda k: (score[k], -k))  # ties: the first choice
        return replace(
            c,
            text=choices[best],
            choice_logprobs={ch: round(s, 6) for ch, s in zip(choices, score, strict=True)},
        )


def calibrate(backend: Any, samples: Sequence[Sample], requests: Sequence[Request], template: str) -> Any:
    """``backend`` wrapped for calibrated choice scoring of ``requests`` (see the module docstring)."""
    tok = getattr(backend, "tokenizer", None)
    prompts = content_free_prompts(samples, requests, template=template, tokenizer=tok)
    return CalibratedBackend(backend, prompts)
