"""PRP builder: relation between two products from Amazon-2018 metadata.

A pair comes from a product's ``also_buy`` (option A), ``also_view`` (B) or ``similar_item`` (C)
list. The partner must be in the same category's metadata with a non-empty cleaned title that
differs from the product's; the pair is the sorted pair of cleaned titles, so (p, q) and (q, p)
are one sample, and a pair reached through more than one relation is ambiguous and dropped.
IND and OOD are different categories (defaults: Gift_Cards / Magazine_Subscriptions, whose
HTML-fragment titles clean to "" and are dropped).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.quality import clean_text, normalize_key
from ecellm.data.readers.amazon2018 import load_meta, meta_path, meta_title
from ecellm.data.splits import SPLIT_NAMES, rng, split_keys, take
from ecellm.tasks.prp import LETTERS, OPTIONS

DEFAULTS: dict[str, Any] = {
    "ind_categories": ["Gift_Cards"],
    "ood_categories": ["Magazine_Subscriptions"],
    "relations": {"also_buy": "A", "also_view": "B", "similar_item": "C"},
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
    "fractions": [0.8, 0.1, 0.1],
    # words of the description used when a title cleans to "" (Magazine meta: HTML fragments);
    # 0 = drop such products (strict). Samples built this way carry meta["title_from"].
    "title_fallback_words": 12,
}

OPTION_OF = dict(zip(LETTERS, OPTIONS, strict=True))


def category_pairs(
    path: Path, relations: dict[str, str], dropped: Counter, fallback_words: int = 0
) -> dict[tuple[str, str], dict]:
    """Unambiguous pairs of one category: ``{(title1, title2): {"letter", "asins", "relation"}}``.

    Titles are cleaned; pair keys use the normalized titles so that case or punctuation
    variants of one title do not make two samples. The first (sorted) ASIN pair is kept as
    provenance.
    """
    meta, dups = load_meta(path, clean=clean_text)
    dropped["duplicate meta rows"] += dups
    titles, origin = {}, {}
    for asin, row in meta.items():
        titles[asin], origin[asin] = meta_title(row, fallback_words)
    found: dict[tuple[str, str], dict] = {}
    for asin in sorted(meta):
        t1 = titles[asin]
        for field, letter in relations.items():
            for other in meta[asin].get(field, []):
                if other not in meta:
                    dropped["partner not in category meta"] += 1
                    continue
                t2 = titles[other]
                if not t1 or not t2:
                    dropped["empty title after cleaning"] += 1
                    continue
                k1, k2 = normalize_key(t1), normalize_key(t2)
                if k1 == k2:
                    dropped["same title"] += 1
                    continue
                (key, shown, asins) = (
                    ((k1, k2), (t1, t2), (asin, other)) if k1 < k2 else ((k2, k1), (t2, t1), (other, asin))
                )
                entry = found.setdefault(
                    key, {"titles": shown, "asins": asins, "letters": set(), "fields": set()}
                )
                entry["letters"].add(letter)
                entry["fields"].add(field)
    pairs = {}
    for key in sorted(found):
        entry = found[key]
        if len(entry["letters"]) > 1:
            dropped["pair with more than one relation"] += 1
            continue
        pairs[entry["titles"]] = {
            "letter": next(iter(entry["letters"])),
            "asins": list(entry["asins"]),
            "relation": next(iter(entry["fields"])),
            "title_from": [origin[a] for a in entry["asins"]],
        }
    return pairs


def _draft(titles: tuple[str, str], info: dict, category: str) -> Draft:
    return Draft(
        input=json.dumps({"Product 1:": titles[0], "Product 2:": titles[1]}, ensure_ascii=False),
        output=info["letter"],
        options=list(OPTIONS),
        meta={
            "source": "amazon_reviews_2018/meta",
            "category": category,
            "asins": info["asins"],
            "relation": info["relation"],
            "title_from": info["title_from"],
        },
    )


def _domain_drafts(
    raw_dir: Path,
    cats: list[str],
    rels: dict[str, str],
    dropped: Counter,
    files: list[Path],
    fallback_words: int,
) -> list[Draft]:
    out: list[Draft] = []
    seen: set[tuple[str, str]] = set()
    for cat in sorted(cats):
        path = meta_path(raw_dir, cat)
        files.append(path)
        for titles, info in category_pairs(path, rels, dropped, fallback_words).items():
            if titles in seen:  # the same title pair in two categories of one domain
                dropped["pair repeated across categories"] += 1
                continue
            seen.add(titles)
            out.append(_draft(titles, info, cat))
    return out


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """IND pairs split train/val/test by ``fractions``; OOD categories give a test set."""
    cfg = {**DEFAULTS, **(config or {})}
    rels = {f: letter for f, letter in cfg["relations"].items() if letter in OPTION_OF}
    dropped: Counter = Counter()
    files: list[Path] = []
    fb = int(cfg.get("title_fallback_words") or 0)
    ind = _domain_drafts(Path(raw_dir), cfg["ind_categories"], rels, dropped, files, fb)
    by_input = {d.input: d for d in ind}
    parts = split_keys(by_input, cfg["fractions"], rng(seed, "PRP", "split"))
    drafts: dict[tuple[str, str], list[Draft]] = {}
    for split, keys in zip(SPLIT_NAMES, parts, strict=True):
        chosen = take(sorted(keys), cfg["sizes"].get(split), rng(seed, "PRP", "IND", split))
        drafts[("IND", split)] = [by_input[k] for k in sorted(chosen)]
    if cfg["ood_categories"]:
        ind_inputs = {normalize_key(d.input) for d in ind}
        ood = []
        for d in _domain_drafts(Path(raw_dir), cfg["ood_categories"], rels, dropped, files, fb):
            if normalize_key(d.input) in ind_inputs:
                dropped["OOD pair also in IND"] += 1
                continue
            ood.append(d)
        chosen = take(ood, cfg["ood_sizes"].get("test"), rng(seed, "PRP", "OOD", "test"))
        drafts[("OOD", "test")] = sorted(chosen, key=lambda d: d.input)
    labels = Counter(d.output for group in drafts.values() for d in group)
    n_fb = sum("description" in d.meta["title_from"] for group in drafts.values() for d in group)
    return BuildResult(
        task="PRP",
        drafts=drafts,
        dropped=dict(sorted(dropped.items())),
        sources=files,
        notes=[
            f"label counts over all groups: {dict(sorted(labels.items()))}",
            f"samples with a title taken from the description (empty HTML title): {n_fb}",
        ],
    )
