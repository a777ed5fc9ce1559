"""PM builder: do an Amazon and a Google listing describe the same product (Amazon-Google, Leipzig)?

Positives are the pairs of the perfect mapping. Each positive gets one negative with the same
Amazon product (so every split is exactly balanced and the Amazon side cannot give the answer
away): ``negatives: random`` pairs it with a random non-matching Google product, ``hard`` with a
Google product of the same manufacturer or a title-token overlap of at least ``hard_min_overlap``
(the reference had random ones only); when no product qualifies, the non-matching product with the
most similar title ("nearest", any shared title token) is used, and a random one only when no
title shares a token. ``mixed`` flips a seeded coin per positive. Why: with random negatives a
title-overlap threshold alone (Jaccard >= 0.10, fitted on train) answered 99% of the test pairs
right, so a model learns overlap, not matching; real catalogues pair near-duplicates of one
brand. The mining uses only titles and manufacturers, which every product-matching source has.
Splits are 80/10/10 by Amazon product, so no Amazon listing is shared between train and test.
Missing fields are JSON null.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.quality import clean_text, normalize_key, truncate_words
from ecellm.data.readers.amazon_google import read_amazon, read_google, read_mapping, source_files
from ecellm.data.splits import SPLIT_NAMES, rng, split_keys, take

DEFAULTS: dict[str, Any] = {
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "fractions": [0.8, 0.1, 0.1],
    "negatives": "random",  # random (as the reference) | hard | mixed
    "description_words": 50,
    "hard_min_overlap": 0.3,  # title-token Jaccard for a hard negative without a shared manufacturer
    "hard_top_k": 3,  # sample the hard negative among the k best candidates
}


def product_record(row: dict[str, Any], description_words: int) -> dict[str, Any]:
    """The product object of the input JSON: title, description (cut), manufacturer, price."""
    desc = clean_text(row.get("description"))
    manu = clean_text(row.get("manufacturer"))
    price = row.get("price")
    return {
        "title": clean_text(row.get("title")),
        "description": truncate_words(desc, description_words) if desc else None,
        "manufacturer": manu or None,
        "price": clean_text(price) if isinstance(price, str) else price,
    }


def _tokens(title: str) -> frozenset[str]:
    return frozenset(t for t in normalize_key(title).split() if len(t) > 1)


class HardNegatives:
    """Google candidates per Amazon product, from an inverted index built once for all products."""

    def __init__(self, google: dict[str, dict[str, Any]]) -> None:
        self.ids = sorted(google)
        self.tokens = {g: _tokens(google[g]["title"]) for g in self.ids}
        self.manu = {g: normalize_key(google[g].get("manufacturer")) for g in self.ids}
        self.index: dict[str, list[str]] = defaultdict(list)
        for g in self.ids:
            for t in sorted(self.tokens[g]):
                self.index[t].append(g)
        self.by_manu: dict[str, list[str]] = defaultdict(list)
        for g in self.ids:
            if self.manu[g]:
                self.by_manu[self.manu[g]].append(g)

    def candidates(
        self, title: str, manufacturer: str | None, exclude: set[str], min_overlap: float
    ) -> list[tuple[float, str]]:
        """(score, google id) best first: Jaccard of title tokens, +1 for the same manufacturer."""
        toks = _tokens(title)
        shared: Counter = Counter()
        for t in toks:
            shared.update(self.index.get(t, ()))
        manu = normalize_key(manufacturer)
        same = set(self.by_manu.get(manu, ())) if manu else set()
        scored = []
        for g in sorted(set(shared) | same):
            if g in exclude:
                continue
            jac = shared[g] / len(toks | self.tokens[g]) if toks else 0.0
            if g in same or jac >= min_overlap:
                scored.append((jac + (1.0 if g in same else 0.0), g))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return scored

    def nearest(self, title: str, exclude: set[str]) -> list[tuple[float, str]]:
        """Non-matching products sharing at least one title token, most similar title first."""
        toks = _tokens(title)
        shared: Counter = Counter()
        for t in toks:
            shared.update(self.index.get(t, ()))
        scored = [(shared[g] / len(toks | self.tokens[g]), g) for g in sorted(shared) if g not in exclude]
        scored.sort(key=lambda x: (-x[0], x[1]))
        return scored


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """Balanced yes/no drafts in IND train/val/test; PM has no OOD (as in the paper)."""
    cfg = {**DEFAULTS, **(config or {})}
    if cfg["negatives"] not in ("random", "hard", "mixed"):
        raise ValueError(f"PM negatives must be random, hard or mixed, got {cfg['negatives']!r}")
    raw_dir = Path(raw_dir)
    amazon, google, mapping = read_amazon(raw_dir), read_google(raw_dir), read_mapping(raw_dir)
    dropped: Counter = Counter()
    matches: dict[str, set[str]] = defaultdict(set)
    for a, g in mapping:
        matches[a].add(g)
    words = int(cfg["description_words"])
    positives: dict[str, list[str]] = defaultdict(list)
    for a, g in mapping:
        if a not in amazon or g not in google:
            dropped["mapping id not in product files"] += 1
        elif not clean_text(amazon[a]["title"]) or not clean_text(google[g]["title"]):
            dropped["empty title after cleaning"] += 1
        else:
            positives[a].append(g)
    hard = HardNegatives(google)
    neg_rng = rng(seed, "PM", "negatives")
    kinds: Counter = Counter()
    groups: dict[str, list[Draft]] = {}
    for a in sorted(positives):
        p1 = product_record(amazon[a], words)
        group = []
        for g in positives[a]:
            group.append(_draft(p1, product_record(google[g], words), "yes", a, g, "positive"))
            kind = cfg["negatives"] if cfg["negatives"] != "mixed" else neg_rng.choice(("random", "hard"))
            neg = None
            if kind == "hard":
                cands = hard.candidates(
                    p1["title"], p1["manufacturer"], matches[a], float(cfg["hard_min_overlap"])
                )
                if not cands:
                    cands, kind = hard.nearest(p1["title"], matches[a]), "nearest"
                if cands:
                    neg = neg_rng.choice(cands[: max(1, int(cfg["hard_top_k"]))])[1]
                else:
                    dropped["hard negative unavailable (used random)"] += 1
                    kind = "random"
            while neg is None or neg in matches[a] or not clean_text(google[neg]["title"]):
                neg = hard.ids[neg_rng.randrange(len(hard.ids))]
            kinds[kind] += 1
            group.append(_draft(p1, product_record(google[neg], words), "no", a, neg, kind))
        groups[a] = group
    drafts: dict[tuple[str, str], list[Draft]] = {}
    parts = split_keys(groups, cfg["fractions"], rng(seed, "PM", "split"))
    for split, keys in zip(SPLIT_NAMES, parts, strict=True):
        size = cfg["sizes"].get(split)
        chosen = take(keys, None if size is None else int(size) // 2, rng(seed, "PM", "IND", split))
        drafts[("IND", split)] = [d for a in sorted(chosen) for d in groups[a]]
    return BuildResult(
        task="PM",
        drafts=drafts,
        dropped=dict(sorted(dropped.items())),
        sources=source_files(raw_dir),
        notes=[f"negatives by kind: {dict(sorted(kinds.items()))}"],
    )


def _draft(p1: dict, p2: dict, answer: str, a: str, g: str, kind: str) -> Draft:
    return Draft(
        input=json.dumps({"product 1": p1, "product 2": p2}, ensure_ascii=False),
        output=answer,
        meta={
            "source": "amazon_google",
            "category": "software",
            "amazon_id": a,
            "google_id": g,
            "pair_kind": kind,
        },
    )
