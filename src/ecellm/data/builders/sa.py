"""SA builder: five-level review sentiment from Amazon-2018 5-core reviews.

Input is the cleaned review text (at least ``min_words`` words); the output is the full option
string of the star rating (``ecellm.tasks.sa.OPTIONS``; 5 stars -> "A: very positive"). Each
domain mixes its categories in equal shares. Reviews are de-duplicated per domain on their
normalized text (the 5-core files repeat one review across product variants: All_Beauty has
5,269 lines but 1,363 distinct texts) before the train/val/test split, so no text crosses splits.

Label balance (a decision the reference left implicit): the raw ratings are very skewed (Gift
Cards 93% five-star). ``balance`` picks which splits are drawn round-robin over ratings, as far
as each rating's supply allows: ``"eval"`` (default) balances val and test -- macro F1 is then
meaningful -- and leaves train at the natural distribution; ``"none"`` and ``"all"`` do what
they say. The resulting label counts are listed in the notes and in the build manifest.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.quality import clean_text, normalize_key
from ecellm.data.readers.amazon2018 import read_reviews, reviews_path
from ecellm.data.splits import SPLIT_NAMES, rng, split_keys
from ecellm.tasks.sa import OPTIONS, STARS

DEFAULTS: dict[str, Any] = {
    "ind_categories": ["Gift_Cards", "All_Beauty", "AMAZON_FASHION"],
    "ood_categories": ["Magazine_Subscriptions", "Appliances"],
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
    "fractions": [0.7, 0.1, 0.2],  # distinct texts are few (5-core duplicates): favour a usable test set
    "min_words": 10,
    "balance": "eval",  # none | eval (val+test) | all
}

OPTION_OF_STARS = {
    stars: next(o for o in OPTIONS if o.startswith(letter + ":")) for letter, stars in STARS.items()
}


def category_reviews(path: Path, category: str, min_words: int, dropped: Counter) -> list[dict[str, Any]]:
    """Cleaned reviews of one file with at least ``min_words`` words, in (time, user, asin) order."""
    rows = []
    for r in read_reviews(path):
        text = clean_text(r["reviewText"])
        if len(text.split()) < min_words:
            dropped["fewer than min_words words"] += 1
            continue
        rows.append({**r, "text": text, "category": category})
    rows.sort(key=lambda r: (r["unixReviewTime"], r["reviewerID"], r["asin"], r["line"]))
    return rows


def pick(rows: list[dict[str, Any]], n: int, balanced: bool, r: Any) -> list[dict[str, Any]]:
    """``n`` rows drawn at random; when ``balanced``, round-robin over ratings 5..1 until ``n``.

    A rating that runs out simply stops contributing, so a small category yields fewer rare
    labels rather than duplicates.
    """
    pool = list(rows)
    r.shuffle(pool)
    if not balanced:
        return pool[:n]
    by_rating: dict[int, list[dict[str, Any]]] = {s: [] for s in (5, 4, 3, 2, 1)}
    for row in pool:
        by_rating[row["overall"]].append(row)
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < n and any(len(v) > depth for v in by_rating.values()):
        for s in (5, 4, 3, 2, 1):
            if len(out) < n and len(by_rating[s]) > depth:
                out.append(by_rating[s][depth])
        depth += 1
    return out


def _shares(total: int, k: int) -> list[int]:
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def _draft(row: dict[str, Any]) -> Draft:
    return Draft(
        input=row["text"],
        output=OPTION_OF_STARS[row["overall"]],
        options=list(OPTIONS),
        meta={
            "source": "amazon_reviews_2018/reviews",
            "category": row["category"],
            "asin": row["asin"],
            "reviewer_id": row["reviewerID"],
            "rating": row["overall"],
            "unix_review_time": row["unixReviewTime"],
        },
    )


def _domain(
    raw_dir: Path, cats: list[str], cfg: dict, dropped: Counter, files: list[Path], seen: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per category, de-duplicated rows (also against ``seen``, the other domain's texts)."""
    out = {}
    for cat in sorted(cats):
        path = reviews_path(raw_dir, cat)
        files.append(path)
        rows = []
        for row in category_reviews(path, cat, int(cfg["min_words"]), dropped):
            key = normalize_key(row["text"])
            if key in seen:
                dropped["duplicate review text"] += 1
                continue
            seen.add(key)
            rows.append(row)
        out[cat] = rows
    return out


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """IND train/val/test and OOD test, each an equal mix of its domain's categories."""
    cfg = {**DEFAULTS, **(config or {})}
    if cfg["balance"] not in ("none", "eval", "all"):
        raise ValueError(f"SA balance must be none, eval or all, got {cfg['balance']!r}")
    balanced = {
        "train": cfg["balance"] == "all",
        "val": cfg["balance"] != "none",
        "test": cfg["balance"] != "none",
    }
    dropped: Counter = Counter()
    files: list[Path] = []
    seen: set[str] = set()
    raw_dir = Path(raw_dir)
    drafts: dict[tuple[str, str], list[Draft]] = {}
    ind = _domain(raw_dir, cfg["ind_categories"], cfg, dropped, files, seen)
    pools: dict[str, dict[str, list]] = {s: {} for s in SPLIT_NAMES}
    for cat, rows in ind.items():
        by_key = {normalize_key(row["text"]): row for row in rows}
        parts = split_keys(by_key, cfg["fractions"], rng(seed, "SA", "split", cat))
        for split, keys in zip(SPLIT_NAMES, parts, strict=True):
            pools[split][cat] = [by_key[k] for k in keys]
    for split in SPLIT_NAMES:
        drafts[("IND", split)] = _mix(
            pools[split], cfg["sizes"].get(split), balanced[split], seed, "IND", split
        )
    if cfg["ood_categories"]:
        ood = _domain(raw_dir, cfg["ood_categories"], cfg, dropped, files, seen)
        drafts[("OOD", "test")] = _mix(
            ood, cfg["ood_sizes"].get("test"), balanced["test"], seed, "OOD", "test"
        )
    notes = [
        f"{domain} {split} labels: {dict(sorted(Counter(d.output[0] for d in group).items()))}"
        for (domain, split), group in sorted(drafts.items())
    ]
    return BuildResult(
        task="SA", drafts=drafts, dropped=dict(sorted(dropped.items())), sources=files, notes=notes
    )


def _mix(
    by_cat: dict[str, list], size: int | None, balanced: bool, seed: int, domain: str, split: str
) -> list[Draft]:
    cats = sorted(by_cat)
    if not cats:
        return []
    total = sum(len(v) for v in by_cat.values()) if size is None else int(size)
    rows = []
    for cat, n in zip(cats, _shares(total, len(cats)), strict=True):
        rows.extend(pick(by_cat[cat], n, balanced, rng(seed, "SA", domain, split, cat)))
    rows.sort(key=lambda r: (r["category"], r["unixReviewTime"], r["reviewerID"], r["asin"], r["line"]))
    return [_draft(r) for r in rows]
