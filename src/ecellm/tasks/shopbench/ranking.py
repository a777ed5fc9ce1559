"""ShopBench ranking: order the listed items; the truth is a gain per item in display order.

Official reading: keep digits, commas and spaces, split on commas, keep values <= 5, first 5;
any repeat empties the answer (score 0). Decoding: a permutation of the listed item numbers
(the ranking grammar over the digits, so no repeat and no stray number can come out); more than 9
items: each listed number once (the items grammar); no numbered list: digits and commas.
"""

from __future__ import annotations

from typing import Any

from ecellm.infer.base import Request
from ecellm.tasks.shopbench.common import GENERATE_BUDGET, int_list, numbered_items, render, shop_task


def read(text: str, official: bool) -> list[int]:
    items = [i for i in int_list(text) if i <= 5][:5]
    return items if len(items) == len(set(items)) else []


def gold_text(gains: list[float]) -> str:
    """Item numbers by decreasing gain (display order breaks ties), e.g. ``2,1,4,3``."""
    order = sorted(range(len(gains)), key=lambda i: -gains[i])
    return ",".join(str(i + 1) for i in order)


def request(task: Any, sample: Any, *, mode: str, template: str, tokenizer: Any) -> Any:
    prompt = render(sample, tokenizer, template)
    if mode == "generate":
        return Request(sample.id, prompt, mode="generate", max_new_tokens=task.max_new_tokens, task=task.abbr)
    items = numbered_items(sample.instruction)
    if items and all(len(i) == 1 and i != "0" for i in items):
        name, args = "ranking", {"letters": items}
    elif items:
        name, args = "items", {"items": items, "count": len(items)}
    else:
        name, args = "digits_commas", {"max_chars": 3 * 5 + 4}
    return Request(
        sample.id,
        prompt,
        mode="constrained",
        max_new_tokens=task.max_new_tokens,
        constraint=name,
        constraint_args=args,
        task=task.abbr,
    )


TASK = shop_task(
    abbr="SB-RANK",
    task_type="ranking",
    metrics=("ndcg",),
    answer_kind="item_order",
    decode="constrained",
    max_new_tokens=GENERATE_BUDGET,
    read=read,
    unusable=lambda answer: not answer,
    gold_text=gold_text,
    request=request,
    description="item numbers best first; constrained to a permutation of the listed items",
)
