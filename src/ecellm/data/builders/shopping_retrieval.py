"""Shopping retrieval: which of 15 products were also bought with a purchased product (hit@3).

Source: the ``also_buy`` lists of the Amazon Review 2018 metadata. An anchor product with at
least ``positives`` titled also-bought products gives one record: the anchor's title, then
``candidates`` numbered products: ``positives`` drawn from its also-bought list and the rest
from products that are not on that list (so a negative is never a positive), with pairwise
distinct titles, shown in a seeded order. The truth is the 1-based numbers of the positives.

No product is in two splits: anchors are taken in a seeded order, each offered first to the
split furthest below its share of the configured fractions; a record claims its anchor and its
15 candidates for its split, and a later record may use only products unclaimed or already in
its own split (negatives come from the split's own products first). An anchor that no split can
take (its positives claimed elsewhere) is skipped and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecellm.data.builders.shopping_common import (
    TRACK_BEHAVIOR,
    ShopItem,
    ShopResult,
    fractions,
    numbered,
    record,
)
from ecellm.data.splits import SPLIT_NAMES, rng

TASK_NAME = "also-bought-retrieval"
DEFAULTS: dict[str, Any] = {
    "categories": ["Gift_Cards", "Magazine_Subscriptions"],
    "positives": 3,
    "candidates": 15,
    "title_words": 30,
    "sizes": {"train": 2000, "val": 200, "test": 500},
}
_FEW = "anchor with fewer titled also-bought products than positives"
_TAKEN = "anchor whose positives or negatives are taken by other splits"


def prompt(anchor: str, titles: list[str], k: int) -> str:
    return (
        f'A user on an online shopping website bought the product "{anchor}". Select {k} products '
        f"from the numbered list below that the user is most likely to also buy. Output {k} numbers "
        "separated by commas; generate only the indices.\n"
        f"{numbered(titles, 1)}\nOutput: "
    )


def _catalogue(raw_dir: Path, config: dict[str, Any], result: ShopResult) -> tuple[dict, dict]:
    """Titles and also-bought sets by ``(category, asin)``; untitled products are left out."""
    from ecellm.data.quality import truncate_words
    from ecellm.data.readers.amazon2018 import load_meta, meta_path, meta_title

    titles: dict[tuple[str, str], str] = {}
    also: dict[tuple[str, str], set[tuple[str, str]]] = {}
    untitled = 0
    for cat in config["categories"]:
        path = meta_path(Path(raw_dir), cat)
        result.sources.append(path)
        meta, _ = load_meta(path)
        for asin in sorted(meta):
            title = truncate_words(meta_title(meta[asin])[0], int(config["title_words"]))
            if not title:
                untitled += 1
                continue
            titles[(cat, asin)] = title
            also[(cat, asin)] = {(cat, b) for b in meta[asin]["also_buy"] if b != asin}
    result.dropped["products without a title"] = untitled
    return titles, also


def _item(
    anchor: tuple[str, str],
    split: str,
    titles: dict,
    also: dict,
    owner: dict,
    every: list,
    r: Any,
    k: int,
    n: int,
) -> ShopItem | None:
    """The anchor's record in ``split`` (claiming its products), or None when it cannot be built
    there: too few positives free for the split, or too few negatives with distinct titles."""
    free = [b for b in sorted(also[anchor]) if b in titles and owner.get(b, split) == split]
    pos = r.sample(free, k) if len(free) >= k else []
    if not pos or len({titles[p] for p in pos}) < k:
        return None
    seen = {titles[p] for p in pos} | {titles[anchor]}
    negs: list[tuple[str, str]] = []
    mine = [p for p in every if owner.get(p) == split]
    fresh = [p for p in every if p not in owner]
    for pool in (mine, fresh):  # the split's own products first: small splits do not eat the catalogue
        pool = [p for p in pool if p != anchor and p not in also[anchor] and p not in pos]
        r.shuffle(pool)
        for p in pool:
            if len(negs) == n - k:
                break
            if titles[p] not in seen:
                negs.append(p)
                seen.add(titles[p])
    if len(negs) < n - k:
        return None
    cands = pos + negs
    r.shuffle(cands)
    for p in (anchor, *cands):
        owner[p] = split
    truth = sorted(cands.index(p) + 1 for p in pos)
    return ShopItem(
        record=record(
            prompt=prompt(titles[anchor], [titles[c] for c in cands], k),
            truth=truth,
            task_type="retrieval",
            metric="hit rate@3",
            task_name=TASK_NAME,
            track=TRACK_BEHAVIOR,
        ),
        fields={"anchor": titles[anchor], "candidates": [titles[c] for c in cands]},
        gold=",".join(map(str, truth)),
        leak_key=titles[anchor] + " || " + anchor[1],
        label=f"first positive at {truth[0]}",
        products=tuple(f"{c}/{a}" for c, a in (anchor, *cands)),
    )


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> ShopResult:
    result = ShopResult(family="retrieval", items={})
    titles, also = _catalogue(raw_dir, config, result)
    k, n = int(config["positives"]), int(config["candidates"])
    result.dropped.update({_FEW: 0, _TAKEN: 0})
    anchors = []
    for key in sorted(titles):
        if len([b for b in also[key] if b in titles]) >= k:
            anchors.append(key)
        else:
            result.dropped[_FEW] += 1
    order = list(anchors)
    rng(seed, "shopping", TASK_NAME, "anchors").shuffle(order)
    fr = fractions(config)
    share = {s: f / sum(fr) for s, f in zip(SPLIT_NAMES, fr, strict=True)}
    sizes = config.get("sizes") or {}
    cap = {s: None if sizes.get(s) is None else int(sizes[s]) for s in SPLIT_NAMES}
    owner: dict[tuple[str, str], str] = {}
    out: dict[str, list[ShopItem]] = {s: [] for s in SPLIT_NAMES}
    streams = {s: rng(seed, "shopping", TASK_NAME, s) for s in SPLIT_NAMES}
    every = sorted(titles)
    for anchor in order:
        # the split furthest below its share goes first, so hub products spread over the splits
        open_splits = [s for s in SPLIT_NAMES if share[s] > 0 and (cap[s] is None or len(out[s]) < cap[s])]
        open_splits.sort(key=lambda s: (len(out[s]) / share[s], SPLIT_NAMES.index(s)))
        for split in open_splits:
            if owner.get(anchor, split) != split:
                continue
            item = _item(anchor, split, titles, also, owner, every, streams[split], k, n)
            if item is not None:
                out[split].append(item)
                break
        else:
            result.dropped[_TAKEN] += 1
    result.items[TASK_NAME] = out
    result.limits[TASK_NAME] = {"sizes": {}, "balance": False}  # the split shares are built in
    return result
