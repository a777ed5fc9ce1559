"""What the four shopping builders share: the item they emit, the record format, the ESCI split.

The follow-up system's multi-task data is written as ShopBench records (``input_field``,
``output_field``, ``task_type``, ``metric``, ``task_name``, ``track``, ``is_multiple_choice``), so
one loader, one prompt renderer and one scorer serve the benchmark and the built data alike.
A builder returns :class:`ShopResult`: per split, :class:`ShopItem` objects holding the record
plus what the family pipeline (:mod:`ecellm.data.shopping`) needs for quality control: the
natural-language fields (judged by the ECInstruct quality steps), a leakage key (the query,
question or review: a val/test item whose key occurs in train is dropped) and a label for the
balance table.

Splits share no product and no query: every builder partitions its products (and, for ESCI,
its queries) before building items, and :func:`esci_split` is the one ESCI partition the
multiple-choice and ranking builders both use, so a query is in the same split in both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecellm.data.splits import SPLIT_NAMES, rng, split_keys

TRACK_CONCEPTS = "amazon-kdd-cup-24-understanding-shopping-concepts"
TRACK_REASONING = "amazon-kdd-cup-24-shopping-knowledge-reasoning"
TRACK_BEHAVIOR = "amazon-kdd-cup-24-user-behavior-alignment"
SHARED_PRODUCT = "product in more than one split"

#: Family-level keys every shopping builder reads (see ``ecellm.data.shopping.DEFAULTS``).
COMMON_DEFAULTS: dict[str, Any] = {"fractions": [0.8, 0.1, 0.1]}


@dataclass
class ShopItem:
    """One built record and what quality control reads of it."""

    record: dict[str, Any]
    fields: dict[str, Any]  # the natural-language inputs (JSON leaves judged by the quality steps)
    gold: str  # the truth as text (length and information checks)
    leak_key: str  # val/test items whose key occurs in train are dropped
    label: str  # the class shown in the balance table
    products: tuple[str, ...] = ()  # source product ids shown (split disjointness is checked on them)
    queries: tuple[str, ...] = ()  # source query ids or question texts


@dataclass
class ShopResult:
    """``items[split]`` per task name, builder drops by reason, the raw files read."""

    family: str
    items: dict[str, dict[str, list[ShopItem]]]  # task_name -> split -> items
    # task_name -> {"sizes": {split: n}, "balance": bool}: applied by the family pipeline after
    # quality control and the leakage check, so the kept records have the balance asked for
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def record(
    *,
    prompt: str,
    truth: Any,
    task_type: str,
    metric: str,
    task_name: str,
    track: str,
) -> dict[str, Any]:
    """A ShopBench record (the id is given later, when the split order is final)."""
    return {
        "input_field": prompt,
        "output_field": truth,
        "task_type": task_type,
        "metric": metric,
        "task_name": task_name,
        "track": track,
        "is_multiple_choice": task_type == "multiple-choice",
    }


def numbered(items: list[str], start: int) -> str:
    """``"0. a\\n1. b"`` (multiple choice numbers from 0) or ``"1. a\\n2. b"`` (lists from 1)."""
    return "\n".join(f"{i}. {text}" for i, text in enumerate(items, start=start))


def fractions(config: dict[str, Any]) -> list[float]:
    values = config.get("fractions") or COMMON_DEFAULTS["fractions"]
    return [float(v) for v in values]


def partition(keys: list[Any], config: dict[str, Any], seed: int, purpose: str) -> dict[Any, str]:
    """Each distinct key's split (train/val/test by the configured fractions, seeded)."""
    parts = split_keys(keys, fractions(config), rng(seed, "shopping", purpose))
    return {k: split for split, part in zip(SPLIT_NAMES, parts, strict=True) for k in part}


def esci_split(
    raw_dir: Path, config: dict[str, Any], seed: int
) -> tuple[dict[str, list[dict]], dict[str, int], list[Path]]:
    """Cleaned ESCI judgements per split: queries partitioned, then products made exclusive.

    Queries go to train/val/test by the configured fractions. A product judged under queries of
    more than one split stays only in the smallest split it occurs in (test, then val, then
    train) and its other judgements are dropped, so no product and no query is in two splits.
    """
    from ecellm.data.quality import clean_text
    from ecellm.data.readers.esci import esci_files, read_esci

    df = read_esci(Path(raw_dir), locale=config.get("locale", "us"), version=config.get("version"))
    dropped = {"empty query or title": 0, SHARED_PRODUCT: 0}
    rows = []
    for row in df.iter_rows(named=True):
        query, title = clean_text(row["query"]), clean_text(row["product_title"])
        if not query or not title:
            dropped["empty query or title"] += 1
            continue
        rows.append({**row, "query": query, "product_title": title})
    split_of = partition(sorted({r["query_id"] for r in rows}), config, seed, "esci-queries")
    splits_of_product: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits_of_product[r["product_id"]].add(split_of[r["query_id"]])
    owner = {p: next(s for s in ("test", "val", "train") if s in ss) for p, ss in splits_of_product.items()}
    out: dict[str, list[dict]] = {s: [] for s in SPLIT_NAMES}
    for r in rows:
        split = split_of[r["query_id"]]
        if owner[r["product_id"]] != split:
            dropped[SHARED_PRODUCT] += 1
            continue
        out[split].append(r)
    return out, dropped, list(esci_files(Path(raw_dir)))


def by_query(rows: list[dict]) -> dict[int, list[dict]]:
    """Judgements grouped by query id, each group in example order."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda x: x["example_id"]):
        groups[r["query_id"]].append(r)
    return dict(sorted(groups.items()))


def balanced_take(items: list[ShopItem], size: int | None, r: Any, balance: bool) -> list[ShopItem]:
    """Up to ``size`` items; with ``balance`` every label gets the same count (the rarest label's
    count, or ``size / labels`` when smaller), so a skewed source (93% five-star gift-card
    reviews) cannot teach the majority answer. The result is shuffled (seeded)."""
    if not balance:
        out = list(items)
        r.shuffle(out)
        return out if size is None else out[: max(0, int(size))]
    groups: dict[str, list[ShopItem]] = defaultdict(list)
    for it in items:
        groups[it.label].append(it)
    if not groups:
        return []
    per = min(len(g) for g in groups.values())
    if size is not None:
        per = min(per, max(0, int(size)) // len(groups))
    out = []
    for label in sorted(groups):
        group = list(groups[label])
        r.shuffle(group)
        out.extend(group[:per])
    r.shuffle(out)
    return out
