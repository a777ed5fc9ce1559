"""SR builder: next-item prediction among 20 candidates from Amazon-2018 5-core review sequences.

Per category: interactions (user, item, time) whose item has a usable text in the metadata,
one per (user, item) (the earliest), iteratively filtered to the ``core``-core (every user and
item with at least ``core`` interactions, repeated until stable). A user's items ordered by
(time, asin) give leave-one-out samples: train predicts the third-last item from those before
it, val the second-last, test the last. The history is a JSON list ``["1st: <item>", "2nd:
..."]`` of the most recent ``max_history`` items; the options are the true item and 19
negatives, shuffled and lettered A..T; the output is the letter and ``meta["target_item"]`` the
ASIN. ``sequence_cap: 50`` with ``max_history: 50`` is the reference's rule: a user's sequence
is first cut to its 50 earliest interactions and leave-one-out runs on those, so histories hold
up to 49 items and a long-time user's targets are early items (the lite default keeps the whole
sequence and shows the 20 most recent items).

Item text = cleaned title + first two category levels + brand, cut to ``item_words`` words.
Negatives are drawn by rejection sampling from the category's candidate pool, built ONCE per
category (the reference notebook rebuilt a pool per user, which made the build quadratic);
they exclude every item of the user and any text equal to another option's.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.quality import clean_text, normalize_key, truncate_words
from ecellm.data.readers.amazon2018 import load_meta, meta_path, meta_title, read_reviews, reviews_path
from ecellm.data.splits import rng, take
from ecellm.tasks.sr import LETTERS, ordinal

DEFAULTS: dict[str, Any] = {
    "ind_categories": ["Gift_Cards"],
    "ood_categories": ["Magazine_Subscriptions"],
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
    "core": 5,
    "n_candidates": 20,
    "item_words": 25,
    "max_history": 20,
    "sequence_cap": 0,  # >0: cut each user's sequence to its earliest N items first (the reference: 50)
    # words of the description standing in for a title that cleans to "" (Magazine meta titles
    # are HTML fragments); 0 = such items are dropped as the strict rule says
    "title_fallback_words": 12,
}


def item_text(row: dict[str, Any], words: int, fallback_words: int) -> tuple[str, str]:
    """(item text, title origin): cleaned title, first two category levels and brand, cut to ``words``."""
    title, origin = meta_title(row, fallback_words)
    if not title:
        return "", ""
    levels: list[str] = []
    for c in row.get("category", [])[:2]:
        c = clean_text(c)
        if c and c not in levels:  # Gift Cards meta repeats "Gift Cards" at levels 1 and 2
            levels.append(c)
    parts = [title]
    if levels:
        parts.append("category: " + " > ".join(levels))
    brand = clean_text(row.get("brand"))
    if brand:
        parts.append("brand: " + brand)
    return truncate_words(" | ".join(parts), words), origin


def k_core(pairs: set[tuple[str, str]], k: int) -> set[tuple[str, str]]:
    """Iterative k-core of (user, item) pairs: repeat the filter until nothing changes."""
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if kept == pairs:
            return kept
        pairs = kept


def category_sequences(
    raw_dir: Path, cat: str, cfg: dict, dropped: Counter, files: list[Path]
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """(user -> chronological asins, asin -> item text, asin -> title origin) of one category."""
    mpath, rpath = meta_path(raw_dir, cat), reviews_path(raw_dir, cat)
    files.extend([rpath, mpath])
    meta, dups = load_meta(mpath, clean=clean_text)
    dropped["duplicate meta rows"] += dups
    texts, origin = {}, {}
    for asin, row in meta.items():
        text, org = item_text(row, int(cfg["item_words"]), int(cfg.get("title_fallback_words") or 0))
        if text:
            texts[asin], origin[asin] = text, org
    first: dict[tuple[str, str], tuple[int, int]] = {}
    for r in read_reviews(rpath):
        if r["asin"] not in texts:
            dropped["item without usable meta text"] += 1
            continue
        key = (r["reviewerID"], r["asin"])
        when = (r["unixReviewTime"], r["line"])
        if key in first:
            dropped["repeated (user, item) interaction"] += 1
            if when < first[key]:
                first[key] = when
        else:
            first[key] = when
    kept = k_core(set(first), int(cfg["core"]))
    dropped["interaction outside the k-core"] += len(first) - len(kept)
    seqs: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
    for u, i in kept:
        seqs[u].append((first[(u, i)][0], i))
    return {u: [i for _, i in sorted(v)] for u, v in sorted(seqs.items())}, texts, origin


def _sample(
    seq: list[str], pos: int, pool: list[str], texts: dict[str, str], cfg: dict, r: Any, cat: str, user: str,
    own: set[str],
) -> Draft | None:
    """The draft predicting ``seq[pos]`` from ``seq[:pos]``, or None when too few negatives exist.
    ``own`` (every item of the user, also beyond a ``sequence_cap``) is never a negative."""
    target = seq[pos]
    used_texts = {normalize_key(texts[target])}
    negatives: list[str] = []
    need = int(cfg["n_candidates"]) - 1
    for _ in range(50 * need):  # rejection sampling from the shared pool; no per-user pool copy
        if len(negatives) == need:
            break
        cand = pool[r.randrange(len(pool))]
        key = normalize_key(texts[cand])
        if cand in own or key in used_texts:
            continue
        used_texts.add(key)
        negatives.append(cand)
    if len(negatives) < need:
        return None
    cands = [target, *negatives]
    r.shuffle(cands)
    history = seq[:pos][-int(cfg["max_history"]) :]
    offset = pos - len(history)
    return Draft(
        input=json.dumps(
            [f"{ordinal(offset + j + 1)}: {texts[a]}" for j, a in enumerate(history)], ensure_ascii=False
        ),
        output=LETTERS[cands.index(target)],
        options=[f"{LETTERS[j]}: {texts[a]}" for j, a in enumerate(cands)],
        meta={
            "source": "amazon_reviews_2018/reviews+meta",
            "category": cat,
            "user_id": user,
            "target_item": target,
            "candidates": cands,
            "history_items": history,
        },
    )


def _domain(
    raw_dir: Path,
    cats: list[str],
    cfg: dict,
    seed: int,
    domain: str,
    splits: dict[str, int],
    dropped: Counter,
    files: list[Path],
    notes: list[str],
) -> dict[tuple[str, str], list[Draft]]:
    out: dict[tuple[str, str], list[Draft]] = {(domain, s): [] for s in splits}
    for cat in sorted(cats):
        seqs, texts, origin = category_sequences(raw_dir, cat, cfg, dropped, files)
        pool = sorted({i for seq in seqs.values() for i in seq})  # candidate pool, built once
        n_fb = sum(origin[i] == "description" for i in pool)
        notes.append(f"{domain} {cat}: {len(seqs)} users, {len(pool)} items ({n_fb} titled from description)")
        users = take(sorted(seqs), None, rng(seed, "SR", domain, cat, "users"))
        for split, back in splits.items():
            r = rng(seed, "SR", domain, cat, split)
            cap = int(cfg.get("sequence_cap") or 0)
            for user in users:
                seq = seqs[user][:cap] if cap else seqs[user]
                pos = len(seq) - back
                if pos < 1:
                    continue
                d = _sample(seq, pos, pool, texts, cfg, r, cat, user, set(seqs[user]))
                if d is None:
                    dropped["candidate pool too small"] += 1
                else:
                    out[(domain, split)].append(d)
    return out


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """IND leave-one-out train/val/test and OOD test (last item) per the categories configured."""
    cfg = {**DEFAULTS, **(config or {})}
    if not 2 <= int(cfg["n_candidates"]) <= len(LETTERS):
        raise ValueError(f"SR n_candidates must be 2..{len(LETTERS)}, got {cfg['n_candidates']}")
    dropped: Counter = Counter()
    files: list[Path] = []
    notes: list[str] = []
    raw_dir = Path(raw_dir)
    drafts = _domain(
        raw_dir,
        cfg["ind_categories"],
        cfg,
        seed,
        "IND",
        {"train": 3, "val": 2, "test": 1},
        dropped,
        files,
        notes,
    )
    if cfg["ood_categories"]:
        drafts.update(
            _domain(raw_dir, cfg["ood_categories"], cfg, seed, "OOD", {"test": 1}, dropped, files, notes)
        )
    for (domain, split), group in drafts.items():
        size = (cfg["sizes"] if domain == "IND" else cfg["ood_sizes"]).get(split)
        chosen = take(group, size, rng(seed, "SR", domain, split, "cap"))
        drafts[(domain, split)] = sorted(chosen, key=lambda d: (d.meta["category"], d.meta["user_id"]))
    return BuildResult(
        task="SR", drafts=drafts, dropped=dict(sorted(dropped.items())), sources=files, notes=notes
    )
