"""ShopBench ranking: order the listed items; the truth is a gain per item in display order.

Official reading: keep digits, commas and spaces, split on commas, keep values <= 5, first 5;
any repeat empties the answer (score 0). Decoding: a permutation of the listed item numbers
(a ``Ranking`` spec, so no repeat and no stray number can come out); no numbered list: up to five
numbers joined by commas.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ecellm.tasks.constraints import NumberList, Ranking
from ecellm.tasks.shopbench.common import GENERATE_BUDGET, int_list, numbered_items, shop_task


def read(text: str, official: bool) -> list[int]:
    items = [i for i in int_list(text) if i <= 5][:5]
    return items if len(items) == len(set(items)) else []


def _tie_key(gains: list[float], i: int) -> str:
    return hashlib.sha256(f"{[float(g) for g in gains]}|{i}".encode()).hexdigest()


def gold_text(gains: list[float]) -> str:
    """Item numbers by decreasing gain, e.g. ``2,1,4,3``; equal gains in a pseudo-random order.

    Why not display order for ties: with four ESCI grades over five items there is always a tie,
    and breaking it by display order makes the listed order (``1,2,...``) the targets' most common
    answer, which a briefly tuned model copies for every query instead of reading the titles
    (measured: base and tuned answered ``1,2,3,4,5`` to every test record). The tie order is a
    hash of the gains and the item, so it is deterministic, any tie order scores NDCG 1, and no
    position is favoured across records.
    """
    order = sorted(range(len(gains)), key=lambda i: (-gains[i], _tie_key(gains, i)))
    return ",".join(str(i + 1) for i in order)


def constraint(sample: Any) -> Ranking | NumberList:
    """Every listed item number once; up to five numbers when the prompt lists none."""
    items = numbered_items(sample.instruction)
    return Ranking(tuple(items)) if items else NumberList(max_items=5, max_digits=3)



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
    constraint=constraint,
    description="item numbers best first; constrained to a permutation of the listed items",
    example=(
        "Rank these products by how well they match the query 'stainless steel water "
        "bottle'. Output the item numbers best first, separated by commas.\n1. plastic "
        "sports bottle\n2. insulated stainless steel bottle, 750 ml\n3. glass carafe\n4. "
        "steel travel mug\nOutput: "
    ),
)
