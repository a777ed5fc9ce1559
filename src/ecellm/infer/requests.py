"""Turn a :class:`Sample` into a backend :class:`Request`: prompt, decoding mode and budgets.

Modes (``mode`` argument):

- ``auto``: each task's registry default (``Task.decode``): choice for closed answer sets,
  constrained for QPR and AVE, generate for AG;
- ``generate``: free greedy generation for every task (what the paper does);
- ``choice`` / ``constrained``: applied where the task supports it, the task default elsewhere
  (a closed-set task asked for ``constrained`` is scored as ``choice``, which is the tightest
  constraint there is).

When a sample lacks what its constraint needs (an AVE input that is not a JSON object with
target attributes, a QPR input without a product list), the request falls back to ``generate``
and says so in its mode, which the run manifest records.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ecellm.data.schema import Sample
from ecellm.infer.base import Request
from ecellm.infer.grammars import ave_arguments, make_grammar
from ecellm.prompts import STOP_STRINGS, render_prompt
from ecellm.tasks import get_task

MODES = ("auto", "generate", "choice", "constrained")
_CLOSED = ("yes_no", "option", "letter")
_LETTER = re.compile(r"^\s*([A-Z])\s*:")


def qpr_letters(sample: Sample, default: tuple[str, ...]) -> list[str] | None:
    """The letters of a QPR sample's listed products (``"A: ..."`` items of ``product list``)."""
    try:
        payload = json.loads(sample.input)
    except (json.JSONDecodeError, TypeError):
        payload = None
    items = payload.get("product list") if isinstance(payload, dict) else None
    if isinstance(items, list) and items:
        letters = [m.group(1) for it in items if isinstance(it, str) and (m := _LETTER.match(it))]
        if len(letters) == len(items) and len(set(letters)) == len(letters):
            return letters
    if sample.options:
        letters = [m.group(1) for o in sample.options if (m := _LETTER.match(o))]
        return letters or None
    return None


def _choice_request(rid: str, prompt: str, sample: Sample, task: Any) -> Request | None:
    choices = task.choices(sample)
    if not choices:
        return None
    score = [c.split(":", 1)[0].strip() for c in choices] if task.answer_kind == "option" else None
    return Request(
        rid,
        prompt,
        mode="choice",
        max_new_tokens=task.max_new_tokens,
        stop=STOP_STRINGS,
        choices=choices,
        score_texts=score,
        task=task.abbr,
    )


def _constrained_request(rid: str, prompt: str, sample: Sample, task: Any) -> Request | None:
    if task.answer_kind == "ranking":
        letters = qpr_letters(sample, task.option_letters)
        if not letters:
            return None
        args: dict[str, Any] = {"letters": letters}
        name, budget = "ranking", max(task.max_new_tokens, 2 * len(letters) + 1)
    elif task.answer_kind == "attribute_values":
        args = ave_arguments(sample.input, sample.meta)  # type: ignore[assignment]
        if not args:
            return None
        name = "ave_json"
        shortest = make_grammar(name, args)
        # room for the skeleton (forced when short) plus about 8 tokens per value
        budget = max(
            task.max_new_tokens, len(shortest.finish(shortest.start())) + 8 * len(args["attributes"])
        )
    elif task.extra.get("constraint"):
        name, args, budget = (
            task.extra["constraint"],
            dict(task.extra.get("constraint_args", {})),
            task.max_new_tokens,
        )
    else:
        return None
    return Request(
        rid,
        prompt,
        mode="constrained",
        max_new_tokens=budget,
        stop=STOP_STRINGS,
        constraint=name,
        constraint_args=args,
        task=task.abbr,
    )


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
    if template == "flan-t5-ref" and task.answer_kind == "attribute_values":
        # braceless answers: no JSON grammar applies; braces are restored after generation
        return Request(
            sample.id,
            prompt,
            mode="generate",
            max_new_tokens=task.max_new_tokens,
            stop=STOP_STRINGS,
            task=task.abbr,
            postprocess="ave_braces",
        )
    wanted = task.decode if mode == "auto" else mode
    if wanted == "constrained" and task.answer_kind in _CLOSED:
        wanted = "choice"
    elif wanted == "choice" and task.answer_kind not in _CLOSED:
        wanted = task.decode
    req = None
    if wanted == "choice" and task.answer_kind in _CLOSED:
        req = _choice_request(sample.id, prompt, sample, task)
    elif wanted == "constrained":
        req = _constrained_request(sample.id, prompt, sample, task)
    if req is None:
        req = Request(
            sample.id,
            prompt,
            mode="generate",
            max_new_tokens=task.max_new_tokens,
            stop=STOP_STRINGS,
            task=task.abbr,
        )
    return req
