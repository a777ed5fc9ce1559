"""The backend interface every inference engine implements (hf, llamacpp, openai, vllm).

A backend receives :class:`Request` objects (already rendered prompts) and yields one
:class:`Completion` per request, in any order, as soon as it is done, so the caller can append
it to the predictions file at once. Decoding modes:

- ``generate``: greedy generation up to ``max_new_tokens``, cut at ``stop`` strings;
- ``choice``: score each string in ``choices`` by its log-likelihood after the prompt and return
  the best one as ``text`` (per-choice scores in ``choice_logprobs``);
- ``constrained``: generation restricted so that the text always parses for the task
  (``constraint`` is the task's spec, :mod:`ecellm.tasks.constraints`; each backend derives
  its own form of it: a character grammar, a regex or a GBNF grammar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ecellm.tasks.constraints import Constraint

Mode = Literal["generate", "choice", "constrained"]


@dataclass
class Request:
    id: str
    prompt: str
    mode: Mode = "generate"
    max_new_tokens: int = 100
    stop: tuple[str, ...] = ()
    choices: list[str] | None = None
    # What to score for each choice (same order), e.g. the letter "B" for the option
    # "B: positive"; None = score the choice text itself.
    score_texts: list[str] | None = None
    # What a constrained answer must look like, e.g. Ranking(("A", "B", "C")); None: free text.
    constraint: Constraint | None = None
    task: str | None = None
    # Sampling (generate mode, hf backend): temperature 0 is greedy; see ecellm.infer.decoding.
    temperature: float = 0.0
    top_p: float = 1.0
    # Rewrite of the answer text after generation, from the task's answer form under the
    # template (Task.answer_forms: a Flan-T5 AVE answer gets its braces back).
    postprocess: Callable[[str], str] | None = None


@dataclass
class Completion:
    id: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    choice_logprobs: dict[str, float] | None = None
    mode: Mode = "generate"
    # The model's text before answer extraction (generate/constrained); None when the backend
    # has nothing beyond ``text`` (choice scoring).
    raw: str | None = None


class Backend(Protocol):
    """What the predict loop needs from an engine."""

    name: str
    supported_modes: frozenset[str]

    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Yield one completion per request (order may differ from the input)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model, backend and decoding settings for the run manifest."""
        ...
