"""Turn a :class:`Sample` into a backend :class:`Request`: prompt, decoding mode and budgets.

Modes (``mode`` argument):

- ``auto``: each task's registry default (``Task.decode``): choice for closed answer sets,
  constrained for QPR and AVE, generate for AG;
- ``generate``: free greedy generation for every task (what the paper does);
- ``choice`` / ``constrained``: applied where the task supports it, the task default elsewhere
  (a closed-set task asked for ``constrained`` is scored as ``choice``, which is the tightest
  constraint there is).

The task decides (:meth:`ecellm.tasks.base.Task.decoding`): its choices, or the constraint spec
its sample allows. When a sample lacks what its constraint needs (an AVE input that is not a
JSON object with target attributes, a QPR input without a product list), the request falls back
to ``generate`` and says so in its mode, which the run manifest records.
"""

from __future__ import annotations

from typing import Any

from ecellm.data.schema import Sample
from ecellm.infer.base import Request
from ecellm.prompts import STOP_STRINGS, render_prompt
from ecellm.tasks import get_task

MODES = ("auto", "generate", "choice", "constrained")


def build_request(
    sample: Sample, *, mode: str = "auto", template: str = "alpaca", tokenizer: Any = None
) -> Request:
    """The request for one sample under ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    task = get_task(sample.task)
    if task.request_builder is not None:  # a family with its own prompts and decoding
        return task.request_builder(task, sample, mode=mode, template=template, tokenizer=tokenizer)
    prompt = render_prompt(sample, template, tokenizer)
    if (form := task.answer_forms.get(template)) is not None:
        # the answer is written in the template's own form: the task's grammar and choices do not
        # apply; the plain answer is restored after generation
        return Request(
            sample.id,
            prompt,
            mode="generate",
            max_new_tokens=task.max_new_tokens,
            stop=STOP_STRINGS,
            task=task.abbr,
            postprocess=form.decode,
        )
    d = task.decoding(sample, mode)
    return Request(
        sample.id,
        prompt,
        mode=d.mode,
        max_new_tokens=d.max_new_tokens,
        stop=STOP_STRINGS,
        choices=d.choices,
        score_texts=d.score_texts,
        constraint=d.constraint,
        task=task.abbr,
    )
