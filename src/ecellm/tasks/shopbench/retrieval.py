"""ShopBench retrieval: pick the matching items (usually 3 of 15); the truth is 1-based numbers.

Official reading: keep digits, commas and spaces, split on commas, first 3 ints, repeats kept.
Decoding: digits and commas, at most as many characters as three of the listed numbers need,
so the answer always reads as a non-empty number list.
"""

from __future__ import annotations

from typing import Any

from ecellm.infer.base import Request
from ecellm.tasks.shopbench.common import GENERATE_BUDGET, int_list, numbered_items, render, shop_task


def read(text: str, official: bool) -> list[int]:
    return int_list(text)[:3]


def request(task: Any, sample: Any, *, mode: str, template: str, tokenizer: Any) -> Any:
    prompt = render(sample, tokenizer, template)
    if mode == "generate":
        return Request(sample.id, prompt, mode="generate", max_new_tokens=task.max_new_tokens, task=task.abbr)
    width = max((len(i) for i in numbered_items(sample.instruction)), default=2)
    return Request(
        sample.id,
        prompt,
        mode="constrained",
        max_new_tokens=task.max_new_tokens,
        constraint="digits_commas",
        constraint_args={"max_chars": 3 * width + 2},
        task=task.abbr,
    )


TASK = shop_task(
    abbr="SB-RET",
    task_type="retrieval",
    metrics=("hit rate@3",),
    answer_kind="item_numbers",
    decode="constrained",
    max_new_tokens=GENERATE_BUDGET,
    read=read,
    unusable=lambda answer: not answer,
    gold_text=lambda truth: ",".join(str(t) for t in truth),
    request=request,
    description="item numbers joined by commas; constrained to digits and commas",
)
