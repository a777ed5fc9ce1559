"""ShopBench multiple choice: the answer is one option number (options are numbered from 0).

Official reading: the int of the first non-space character, -1 (wrong) otherwise, so option 10
and up can never be answered; the strict reading takes the whole leading number. Decoding:
choice scoring over the prompt's option numbers (a 1-5 rating question lists none: then
generation constrained to one number), 3 new tokens as the official runner allows.
"""

from __future__ import annotations

import re
from typing import Any

from ecellm.infer.base import Request
from ecellm.tasks.constraints import NumberList, OneOf
from ecellm.tasks.shopbench.common import numbered_items, render, shop_task

_LEADING = re.compile(r"\s*(\d+)")


def read(text: str, official: bool) -> int:
    stripped = text.strip()
    if not official:
        m = _LEADING.match(stripped)
        return int(m.group(1)) if m and m.group(1).isascii() else -1
    try:
        return int(stripped[0]) if stripped else -1
    except ValueError:
        return -1


def constraint(sample: Any) -> OneOf | NumberList:
    """One of the listed option numbers; one number of up to 4 digits when none are listed."""
    options = numbered_items(sample.instruction)
    return OneOf(tuple(options)) if options else NumberList(max_items=1, max_digits=4)


def request(task: Any, sample: Any, *, mode: str, template: str, tokenizer: Any) -> Any:
    prompt = render(sample, tokenizer, template)
    options = numbered_items(sample.instruction)
    budget = task.max_new_tokens
    if mode == "generate":
        return Request(sample.id, prompt, mode="generate", max_new_tokens=budget, task=task.abbr)
    if options and mode != "constrained":
        return Request(
            sample.id, prompt, mode="choice", max_new_tokens=budget, choices=options, task=task.abbr
        )
    spec = constraint(sample)
    return Request(
        sample.id, prompt, mode="constrained", max_new_tokens=budget, constraint=spec, task=task.abbr
    )


TASK = shop_task(
    abbr="SB-MC",
    task_type="multiple-choice",
    metrics=("accuracy",),
    answer_kind="option_number",
    decode="choice",
    max_new_tokens=3,
    read=read,
    unusable=lambda answer: answer == -1,
    gold_text=str,
    request=request,
    constraint=constraint,
    description="one option number; choice scoring over the listed numbers",
    example=(
        "Which product category usually lists a 'screen size' attribute?\n0. monitor\n1. "
        "sock\n2. spoon\n3. candle\nAnswer: "
    ),
)
