"""Shopping ranking: order five ESCI products for a query; the truth is each product's gain.

Per query with at least ``products`` judged products (the ESCI split of
:func:`~ecellm.data.builders.shopping_common.esci_split`): ``products`` of them are drawn and
shown in a seeded order; the truth is the gain of each shown product in display order (exact 1,
substitute 0.1, complement 0.01, irrelevant 0), scored by NDCG as the benchmark does. The
reference relabelled query-product pairs with a commercial model; here ESCI's own human labels
are the truth. A draw whose products are all irrelevant (NDCG undefined, every order scores 0)
or whose titles repeat is dropped and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecellm.data.builders.shopping_common import (
    TRACK_BEHAVIOR,
    ShopItem,
    ShopResult,
    by_query,
    esci_split,
    numbered,
    record,
)
from ecellm.data.splits import SPLIT_NAMES, rng
from ecellm.tasks.shopbench.ranking import gold_text

TASK_NAME = "query-product-ranking"
GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
DEFAULTS: dict[str, Any] = {
    "locale": "us",
    "version": "small",
    "products": 5,
    "sizes": {"train": 2000, "val": 200, "test": 500},
}
_FEW = "query with fewer judged products than asked"
_NONE = "all shown products irrelevant"
_DUP = "repeated product titles"


def prompt(query: str, titles: list[str]) -> str:
    n = len(titles)
    return (
        "You are a shopping assistant that ranks products by their relevance to a search query. "
        f'A user searched for "{query}". Rank the {n} numbered products below from the most '
        "relevant to the least relevant.\n"
        f"{numbered(titles, 1)}\n"
        f"Output a permutation of the numbers 1 to {n}, separated by commas, each number once. "
        "Do not explain.\nOutput: "
    )


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> ShopResult:
    rows, dropped, sources = esci_split(raw_dir, config, seed)
    result = ShopResult(family="ranking", items={}, sources=sources)
    result.dropped.update({f"ESCI: {k}": v for k, v in dropped.items()})
    result.dropped.update({_FEW: 0, _NONE: 0, _DUP: 0})
    k = int(config["products"])
    out: dict[str, list[ShopItem]] = {}
    for split in SPLIT_NAMES:
        r = rng(seed, "shopping", TASK_NAME, split)
        items = []
        for group in by_query(rows[split]).values():
            if len(group) < k:
                result.dropped[_FEW] += 1
                continue
            shown = r.sample(group, k)
            titles = [p["product_title"] for p in shown]
            gains = [GAINS[p["esci_label"]] for p in shown]
            if not any(gains):
                result.dropped[_NONE] += 1
                continue
            if len(set(titles)) < k:
                result.dropped[_DUP] += 1
                continue
            first = gold_text(gains).split(",")[0]  # the balance of what is trained on
            items.append(
                ShopItem(
                    record=record(
                        prompt=prompt(shown[0]["query"], titles),
                        truth=gains,
                        task_type="ranking",
                        metric="ndcg",
                        task_name=TASK_NAME,
                        track=TRACK_BEHAVIOR,
                    ),
                    fields={"query": shown[0]["query"], "products": titles},
                    gold=",".join(str(g) for g in gains),
                    leak_key=shown[0]["query"],
                    label=f"target starts with {first}",
                    products=tuple(p["product_id"] for p in shown),
                    queries=(str(shown[0]["query_id"]),),
                )
            )
        out[split] = items
    result.items[TASK_NAME] = out
    result.limits[TASK_NAME] = {"sizes": config.get("sizes") or {}, "balance": False}
    return result
