"""What the five ShopBench task types share: the prompt, the official text cleaning, the task builder.

A ShopBench record's ``input_field`` is the whole question (instructions and options included),
so a task type does not render instructions: it wraps the prompt the way the official runner
does (the tokenizer's chat template with a fixed system prompt, applied once; without a chat
template the system prompt is prefixed as plain text, as the starter kit's Llama-3 baseline
does) and picks a decoding that always yields a parseable answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ecellm.infer.base import Request
from ecellm.tasks.base import InputField, Invalid, Task
from ecellm.tasks.shopbench import scoring
from ecellm.tasks.shopbench.metrics import cut

FAMILY = "shopbench"
# The starter kit's system prompt (the reference model settings of the KDD Cup).
SYSTEM_PROMPT = (
    "You are a helpful online shopping assistant. Please answer the following question about online "
    "shopping and follow the given instructions.\n\n"
)
GENERATE_BUDGET = 100  # new tokens the official runner allows (3 for multiple choice)
_NUMBERED = re.compile(r"^\s*(\d+)\.\s", re.M)


def numbered_items(prompt: str) -> list[str]:
    """The numbers of the prompt's numbered lines (``0. monitor`` -> ``"0"``), unique, in order."""
    return list(dict.fromkeys(_NUMBERED.findall(prompt)))


def render(sample: Any, tokenizer: Any, template: str) -> str:
    """The prompt as the official runner sends it (see the module docstring).

    ``template`` is accepted for every task family; ShopBench questions are complete prompts,
    so the paper templates (alpaca, mistral) do not wrap them. ``chat`` insists on a chat
    template, as it does for ECInstruct.
    """
    prompt = sample.instruction
    has_chat = tokenizer is not None and getattr(tokenizer, "chat_template", None)
    if not has_chat:
        if template == "chat":
            raise ValueError("template 'chat' needs a tokenizer with a chat template")
        return SYSTEM_PROMPT + prompt
    messages = [{"role": "system", "content": SYSTEM_PROMPT.strip()}, {"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def request(task: Any, sample: Any, *, mode: str, template: str, tokenizer: Any) -> Any:
    """The backend request of a ShopBench sample: free generation, or the task's constraint spec.

    Tasks with a constraint decode under it unless ``mode`` is ``generate``; the token budget is
    the spec's own (room for its longest answer) capped by the task's budget.
    """
    prompt = render(sample, tokenizer, template)
    if mode == "generate" or task.constraint is None:
        return Request(sample.id, prompt, mode="generate", max_new_tokens=task.max_new_tokens, task=task.abbr)
    spec = task.constraint(sample)
    return Request(
        sample.id,
        prompt,
        mode="constrained",
        max_new_tokens=spec.budget(task.max_new_tokens),
        constraint=spec,
        task=task.abbr,
    )


def int_list(text: str) -> list[int]:
    """Keep digits, commas and spaces; split on commas; keep the pieces ``int`` accepts."""
    cleaned = "".join(c for c in text if c.isnumeric() or c in ", ")
    out = []
    for piece in cleaned.split(","):
        try:
            out.append(int(piece))
        except ValueError:
            continue  # empty piece, "1 2", or a numeric symbol int() rejects (e.g. "½")
    return out


def shop_task(
    *,
    abbr: str,
    task_type: str,
    metrics: tuple[str, ...],
    answer_kind: str,
    decode: str,
    max_new_tokens: int,
    read: Callable[[str, bool], Any],
    unusable: Callable[[Any], bool],
    gold_text: Callable[[Any], str],
    description: str,
    request: Callable[..., Any] = request,
    constraint: Callable[[Any], Any] | None = None,
    example: str = "",
) -> Task:
    """A ShopBench task type as a registry :class:`Task`.

    ``read(text, official)`` is the official reading of an output (``official=False`` is the
    strict reading); ``unusable(answer)`` says when nothing usable came out (counted as
    invalid); ``gold_text(truth)`` writes the truth as a perfect answer (training targets,
    perfect-prediction checks); ``request`` builds the backend request (by default
    :func:`request`); ``constraint`` gives a
    sample's constraint spec (:mod:`ecellm.tasks.constraints`) for constrained decoding;
    ``example`` is a question of this type (the plain input is the whole question).
    """

    def parser(text: str, sample: Any, lenient: bool) -> Any:
        answer = read(cut(text), False)
        return Invalid(f"no usable {task_type} answer in {cut(text)[:40]!r}") if unusable(answer) else answer

    return Task(
        abbr=abbr,
        name=f"ShopBench_{task_type}",
        aliases=(task_type, f"shopbench {task_type}"),
        category="online shopping",
        metric="per record: " + ", ".join(metrics),
        answer_kind=answer_kind,  # type: ignore[arg-type]
        instructions=(),
        unseen_instruction="",
        decode=decode,  # type: ignore[arg-type]
        max_new_tokens=max_new_tokens,
        has_ood=False,
        parser=parser,
        family=FAMILY,
        request_builder=request,
        constraint=constraint,
        scorer=scoring.score_group,
        aggregate=scoring.summarize,
        modes=("official", "strict"),
        inputs=(
            InputField(
                "question", str, "the whole question, its options and answer format included", example
            ),
        ),
        compose=lambda fields: {"instruction": fields["question"], "input": ""},
        extra={
            "task_type": task_type,
            "metrics": metrics,
            "read": read,
            "unusable": unusable,
            "gold_text": gold_text,
            "description": description,
            "render": render,  # the prompt a sample is trained on is the one it is asked with
        },
    )
