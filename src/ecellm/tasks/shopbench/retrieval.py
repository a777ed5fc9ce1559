"""ShopBench retrieval: pick the matching items (usually 3 of 15); the truth is 1-based numbers.

Official reading: keep digits, commas and spaces, split on commas, first 3 ints, repeats kept.
Decoding: as many distinct listed numbers as the prompt asks for ("select 3 ..."; 3 when it does
not say, never more than are listed), joined by commas (a ``Ranking`` spec with a count); a
prompt without a numbered list gets up to three numbers joined by commas. Either way the answer
reads as a non-empty number list.
"""

from __future__ import annotations

import re
from typing import Any

from ecellm.tasks.constraints import NumberList, Ranking
from ecellm.tasks.shopbench.common import GENERATE_BUDGET, int_list, numbered_items, shop_task

_ASKED = re.compile(
    r"\b(?:select|choose|pick|retrieve|find)\s+(?:the\s+)?(\d+|one|two|three|four|five)\b", re.I
)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def asked_count(prompt: str, default: int = 3) -> int:
    """How many items the prompt asks for (``Select 3 snippets`` -> 3, ``choose one`` -> 1)."""
    m = _ASKED.search(prompt)
    if not m:
        return default
    word = m.group(1).lower()
    return _WORDS[word] if word in _WORDS else int(word)


def read(text: str, official: bool) -> list[int]:
    return int_list(text)[:3]


def constraint(sample: Any) -> Ranking | NumberList:
    """As many distinct listed numbers as asked; up to three numbers when none are listed."""
    items = numbered_items(sample.instruction)
    if items:
        return Ranking(tuple(items), count=min(asked_count(sample.instruction), len(items)))
    return NumberList(max_items=3, max_digits=2)



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
    constraint=constraint,
    description="item numbers joined by commas; constrained to the asked number of listed items",
    example=(
        "A customer bought a backpack and praises its size. Select 3 of these review "
        "snippets the customer is most likely to write. Output three numbers separated "
        "by commas.\n1. roomy\n2. cheap\n3. fragile\n4. spacious\n5. loud\n6. holds a "
        "lot\nOutput: "
    ),
)
