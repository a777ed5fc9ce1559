"""Shopping multiple choice: the ESCI relation of a query and a product, and review ratings 1-5.

(a) ``query-product-relation`` (ESCI): the reference asks for a *query-to-query* relation, but
the raw ESCI judgements pair queries with products, and only a handful of products are judged
under two queries (40 of 4,858 in the shared sample), too few to read a relation between two
queries from. The nearest honest construction keeps ESCI's own four-way relation: a query, one
judged product, four options numbered from 0 as the benchmark numbers them (exact, substitute,
complement, irrelevant, always in that order), the truth the option number of its ESCI label.
Labels are balanced per split.

(b) ``review-rating`` (Amazon Review 2018): a review's title and text, the truth the star rating
1-5; the question lists no options (as the benchmark's rating questions). Products (ASINs) are
partitioned into splits; ratings are balanced per split (gift-card reviews are 93% five-star).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecellm.data.builders.shopping_common import (
    TRACK_BEHAVIOR,
    TRACK_REASONING,
    ShopItem,
    ShopResult,
    by_query,
    esci_split,
    numbered,
    partition,
    record,
)
from ecellm.data.splits import SPLIT_NAMES

RELATION = "query-product-relation"
RATING = "review-rating"
DEFAULTS: dict[str, Any] = {
    "locale": "us",
    "version": "small",
    "categories": ["Gift_Cards", "All_Beauty", "AMAZON_FASHION", "Magazine_Subscriptions", "Appliances"],
    "max_review_words": 150,
    "min_review_words": 3,
    "balance": True,
    "sizes": {"train": 2000, "val": 200, "test": 500},
}
ESCI_OPTIONS = {
    "E": "The product is an exact match: it meets every requirement of the query.",
    "S": "The product is a substitute: it misses some requirement but could be bought instead.",
    "C": "The product is a complement: it does not meet the query but goes with what is wanted.",
    "I": "The product is irrelevant to the query.",
}
ORDER = tuple(ESCI_OPTIONS)
PROSE_TASKS = (RATING,)  # language id judges review text; queries and titles are catalog text


def relation_prompt(query: str, title: str) -> str:
    return (
        f'A user searched for "{query}" on an online shopping website and was shown the product '
        "below. Which option best describes how the product relates to the query?\n"
        f"Product: {title}\n{numbered(list(ESCI_OPTIONS.values()), 0)}\nAnswer: "
    )


def rating_prompt(summary: str, text: str) -> str:
    head = f"Review title: {summary}\n" if summary else ""
    return (
        "A customer wrote the review below about a product bought on an online shopping website. "
        "Predict the rating the customer gave, from 1 (worst) to 5 (best) stars. Answer with one "
        f"number.\n{head}Review: {text}\nAnswer: "
    )


def _relation(raw_dir: Path, config: dict[str, Any], seed: int, result: ShopResult) -> None:
    rows, dropped, sources = esci_split(raw_dir, config, seed)
    result.dropped.update({f"ESCI: {k}": v for k, v in dropped.items()})
    result.sources.extend(sources)
    out: dict[str, list[ShopItem]] = {}
    for split in SPLIT_NAMES:
        items = []
        for rows_q in by_query(rows[split]).values():
            for r in rows_q:
                answer = ORDER.index(r["esci_label"])
                items.append(
                    ShopItem(
                        record=record(
                            prompt=relation_prompt(r["query"], r["product_title"]),
                            truth=answer,
                            task_type="multiple-choice",
                            metric="accuracy",
                            task_name=RELATION,
                            track=TRACK_REASONING,
                        ),
                        fields={"query": r["query"], "product": r["product_title"]},
                        gold=str(answer),
                        leak_key=r["query"],
                        label=str(answer),
                        products=(r["product_id"],),
                        queries=(str(r["query_id"]),),
                    )
                )
        out[split] = items
    result.items[RELATION] = out
    result.limits[RELATION] = {"sizes": config.get("sizes") or {}, "balance": config["balance"]}


def _rating(raw_dir: Path, config: dict[str, Any], seed: int, result: ShopResult) -> None:
    from ecellm.data.quality import clean_text, truncate_words
    from ecellm.data.readers.amazon2018 import read_reviews, reviews_path

    reviews = []
    short = 0
    for cat in config["categories"]:
        path = reviews_path(Path(raw_dir), cat)
        result.sources.append(path)
        for rv in read_reviews(path):
            text = clean_text(rv["reviewText"])
            if len(text.split()) < int(config["min_review_words"]):
                short += 1
                continue
            text = truncate_words(text, int(config["max_review_words"]))
            reviews.append({**rv, "category": cat, "text": text, "summary": clean_text(rv["summary"])})
    result.dropped["reviews: fewer than min_review_words words"] = short
    split_of = partition(sorted({(r["category"], r["asin"]) for r in reviews}), config, seed, "reviews")
    out: dict[str, list[ShopItem]] = {}
    for split in SPLIT_NAMES:
        items = [
            ShopItem(
                record=record(
                    prompt=rating_prompt(r["summary"], r["text"]),
                    truth=r["overall"],
                    task_type="multiple-choice",
                    metric="accuracy",
                    task_name=RATING,
                    track=TRACK_BEHAVIOR,
                ),
                fields={"summary": r["summary"], "review": r["text"]},
                gold=str(r["overall"]),
                leak_key=r["text"],
                label=str(r["overall"]),
                products=(f"{r['category']}/{r['asin']}",),
            )
            for r in sorted(reviews, key=lambda x: (x["category"], x["line"]))
            if split_of[(r["category"], r["asin"])] == split
        ]
        out[split] = items
    result.items[RATING] = out
    result.limits[RATING] = {"sizes": config.get("sizes") or {}, "balance": config["balance"]}


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> ShopResult:
    """Both multiple-choice tasks (see the module docstring)."""
    result = ShopResult(family="multiple-choice", items={})
    _relation(raw_dir, config, seed, result)
    _rating(raw_dir, config, seed, result)
    return result
