"""QPR: rank 2-4 products for a query. Output: letters best first joined by ',' (``B,A,C``)."""

from __future__ import annotations

import json
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.constraints import Ranking
from ecellm.tasks.parsing import parse_ranking

if TYPE_CHECKING:
    from ecellm.tasks.sample import Sample

LETTERS = ("A", "B", "C", "D")
# Order of ESCI labels in a gold ranking, and their gains in NDCG.
LABEL_ORDER = ("E", "S", "C", "I")
GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
_LETTER = re.compile(r"^\s*([A-Z])\s*:")


def listed_letters(sample: Sample) -> list[str] | None:
    """The letters of a sample's listed products (``"A: ..."`` items of ``product list``, else
    its options), or ``None`` if they cannot be read or repeat."""
    try:
        payload = json.loads(sample.input)
    except (json.JSONDecodeError, TypeError):
        payload = None
    items = payload.get("product list") if isinstance(payload, dict) else None
    letters: list[str] = []
    if isinstance(items, list) and items:
        letters = [m.group(1) for it in items if isinstance(it, str) and (m := _LETTER.match(it))]
        if len(letters) != len(items):
            letters = []
    if not letters and sample.options:
        letters = [m.group(1) for o in sample.options if (m := _LETTER.match(o))]
    return letters if letters and len(set(letters)) == len(letters) else None


def compose(fields: dict[str, Any]) -> dict[str, Any]:
    """The query and the products lettered in the given order, as the builder writes them."""
    listed = [f"{LETTERS[i]}: {title}" for i, title in enumerate(fields["products"])]
    return {"input": json.dumps({"query": fields["query"], "product list": listed}, ensure_ascii=False)}


def constraint(sample: Sample) -> Ranking | None:
    """Every listed product's letter exactly once."""
    letters = listed_letters(sample)
    return Ranking(tuple(letters)) if letters else None


def check(sample: Sample) -> tuple[str, str] | None:
    """(field, message) when a gold sample's ESCI labels and ranking disagree, else None."""
    labels = sample.meta.get("labels")
    try:
        products = json.loads(sample.input)["product list"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return "input", "QPR input must be a JSON object with a 'product list'"
    if not isinstance(labels, list) or len(labels) != len(products):
        return "meta.labels", f"expected one ESCI label per listed product ({len(products)}), got {labels!r}"
    if any(lab not in LABEL_ORDER for lab in labels) or len(set(labels)) != len(labels):
        return "meta.labels", f"labels must be pairwise distinct ESCI labels {LABEL_ORDER}, got {labels}"
    order = sorted(range(len(labels)), key=lambda i: LABEL_ORDER.index(labels[i]))
    gold = ",".join(LETTERS[i] for i in order)
    if sample.output != gold:
        return "output", f"ranking {sample.output!r} does not match labels {labels} (expected {gold!r})"
    return None


TASK = Task(
    abbr="QPR",
    name="Query_Product_Ranking",
    aliases=("query product ranking",),
    category="query understanding",
    metric="NDCG",
    answer_kind="ranking",
    instructions=(
        "Rank the listed products by how relevant they are to the search query, most relevant first. "
        "Answer with the product letters separated by commas, without spaces.",
        "Order the products from best to worst match for the query and output their letters joined by "
        "commas.",
        "Given a query and several products, sort the products by relevance to the query and reply with "
        "the letters in that order, comma-separated.",
        "Which products answer the query best? List all product letters from most to least relevant, "
        "separated by commas.",
        "Produce a relevance ranking of the products for this query as a comma-separated list of their "
        "letters, best first.",
    ),
    unseen_instruction=(
        "Put these products in order of how well they fit what the shopper searched for, best one first, "
        "as letters joined by commas."
    ),
    decode="constrained",
    max_new_tokens=12,
    has_ood=False,
    option_letters=LETTERS,
    parser=partial(parse_ranking, letters=LETTERS),
    constraint=constraint,
    extra={"gains": GAINS, "label_order": LABEL_ORDER},
    inputs=(
        InputField("query", str, "the shopper's search query", "wireless earbuds with charging case"),
        InputField(
            "products",
            list[str],
            f"the product titles to rank (2 to {len(LETTERS)}), lettered A, B, ... in this order",
            [
                "Over-ear studio headphones with coiled cable",
                "True wireless earbuds, bluetooth 5.3, USB-C charging case",
                "Replacement silicone ear tips, 3 sizes",
            ],
            min_items=2,
            max_items=len(LETTERS),
        ),
    ),
    compose=compose,
    quality={"min_information": {"required": ["query", "product list"]}},
    gains=GAINS,
    label_file="label.json",
    check=check,
    builder="ecellm.data.builders.qpr",
)
