"""AP builder: can the question be answered from the documents? ``yes``/``no``.

Sources (both optional, at least one must exist):

- **ePQA** (``pqa/ePQA/dev.csv``): every question comes with 10 evidence candidates labelled
  0 (irrelevant), 1 (partially relevant) or 2 (answers the question). From each question we
  build a *positive* document (one label-2 candidate plus ``doc_size - 1`` other candidates of
  the same question) and, when ``negatives`` is on, a *negative* document of the same length made
  only of candidates labelled 0 or 1. Answerable means "some snippet answers it" (label 2), so
  the pair differs only in whether the answering snippet is present; keeping the two documents
  the same length stops length from giving the answer away. Questions without a label-2
  candidate give a negative only. The result is close to balanced (the quality report shows the
  exact yes/no counts).
- **AmazonQA** (``amazonqa/{train,val,test}-qar.jsonl``): document = review snippets, output =
  ``is_answerable``; the official file gives the split.

Domains: AmazonQA has a category; PQA does not, so its category is inferred from the product
title with :func:`ecellm.data.readers.pqa.infer_category`. Products in ``ood_categories`` form the
OOD test set; the rest is split 80/10/10 *by product* (ASIN), so no product crosses splits.
``ind_categories`` (default: every other category) restricts IND to the categories listed, as the
reference does (AP: Sports_and_Outdoors + Tools_and_Home_Improvement, OOD
Cell_Phones_and_Accessories); products of any other category are dropped and counted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.readers.amazonqa import amazonqa_files, read_amazonqa
from ecellm.data.readers.pqa import infer_category, normalize_category, read_epqa
from ecellm.data.splits import SPLIT_NAMES, rng, split_keys, take
from ecellm.errors import InputError

DEFAULTS: dict[str, Any] = {
    "sources": ["epqa", "amazonqa"],  # used when present under raw_dir
    "ood_categories": ["Electronics"],
    "ind_categories": None,  # None: every category not in ood_categories; a list: only those
    "fractions": [0.8, 0.1, 0.1],  # train/val/test share of IND products (PQA)
    "doc_size": 5,
    "negatives": True,
    "max_snippet_words": 120,
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
}

EPQA = Path("pqa/ePQA/dev.csv")


def snippet(text: str | None, max_words: int) -> str:
    """A cleaned evidence snippet cut to ``max_words`` words."""
    from ecellm.data.quality import clean_text, truncate_words

    return truncate_words(clean_text(text), int(max_words))


def qa_input(question: str, document: list[str]) -> str:
    """The AP/AG input JSON string."""
    return json.dumps({"question": question, "document": document}, ensure_ascii=False)


def product_splits(
    categories: dict[str, str], config: dict[str, Any], seed: int, purpose: str
) -> dict[str, tuple[str, str]]:
    """ASIN -> (domain, split): OOD-category products go to OOD test, IND ones by ``fractions``;
    products in neither domain (see :func:`domain_of`) are left out of the mapping."""
    domains = {a: domain_of(c, config) for a, c in categories.items()}
    out = {a: ("OOD", "test") for a, d in domains.items() if d == "OOD"}
    ind = [a for a, d in domains.items() if d == "IND"]
    parts = split_keys(ind, config.get("fractions", [0.8, 0.1, 0.1]), rng(seed, purpose, "products"))
    for split, keys in zip(SPLIT_NAMES, parts, strict=True):
        out.update({a: ("IND", split) for a in keys})
    return out


def _epqa_drafts(
    path: Path, config: dict[str, Any], seed: int
) -> tuple[list[tuple[str, Draft]], dict[str, int]]:
    from ecellm.data.quality import clean_text

    df = read_epqa(path)
    r = rng(seed, "AP", "epqa")
    size, max_words = int(config.get("doc_size", 5)), config.get("max_snippet_words", 120)
    out: list[tuple[str, Draft]] = []
    dropped = {"empty question": 0, "no usable candidate": 0}
    by_q: dict[int, list[dict]] = defaultdict(list)
    for row in df.iter_rows(named=True):
        by_q[row["qid"]].append(row)
    for qid in sorted(by_q):
        rows = by_q[qid]
        question = clean_text(rows[0]["question"])
        if not question:
            dropped["empty question"] += 1
            continue
        cands = [(snippet(x["candidate"], max_words), x["label"], x["qa_pair_id"]) for x in rows]
        cands = [c for c in cands if c[0]]
        good = [c for c in cands if c[1] == 2]
        rest = [c for c in cands if c[1] != 2]
        if not cands:
            dropped["no usable candidate"] += 1
            continue
        meta = {
            "source": "epqa",
            "qid": qid,
            "asin": rows[0]["ASIN"],
            "title": clean_text(rows[0]["title"]),
            "category": infer_category(rows[0]["title"]),
        }
        docs: list[tuple[list[tuple[str, int, int]], str]] = []
        paired = bool(good and rest and config.get("negatives", True))
        length = min(size, len(rest)) if paired else min(size, len(cands))
        if good:
            first = r.choice(good)
            doc = [first, *r.sample([c for c in cands if c is not first], length - 1)]
            r.shuffle(doc)
            docs.append((doc, "yes"))
        if paired or not good:  # a question with no answering candidate is a natural negative
            docs.append((r.sample(rest, length), "no"))
        for doc, answer in docs:
            d_meta = {**meta, "candidate_labels": [c[1] for c in doc], "qa_pair_ids": [c[2] for c in doc]}
            out.append(
                (
                    meta["asin"],
                    Draft(input=qa_input(question, [c[0] for c in doc]), output=answer, meta=d_meta),
                )
            )
    return out, dropped


def amazonqa_draft(item: Any, text_output: str, config: dict[str, Any]) -> Draft | None:
    """An AP/AG draft from one AmazonQA item (None when it has no usable snippet or question)."""
    from ecellm.data.quality import clean_text

    question = clean_text(item.question)
    doc = [s for s in (snippet(x, config.get("max_snippet_words", 120)) for x in item.snippets) if s]
    if not question or not doc:
        return None
    meta = {
        "source": "amazonqa",
        "asin": item.asin,
        "category": item.category,
        "file": Path(item.file).name,
        "line": item.line,
        "question_type": item.question_type,
    }
    return Draft(input=qa_input(question, doc), output=text_output, meta=meta)


OUT_OF_DOMAIN = "category in neither ind_categories nor ood_categories"


def domain_of(category: str, config: dict[str, Any]) -> str | None:
    """"OOD" for ``ood_categories``, "IND" for ``ind_categories`` (every other category when that
    is None), None for a category in neither."""
    name = normalize_category(category)
    if name in {normalize_category(c) for c in config.get("ood_categories") or []}:
        return "OOD"
    ind = config.get("ind_categories")
    if ind is not None and name not in {normalize_category(c) for c in ind}:
        return None
    return "IND"


def cap_groups(
    groups: dict[tuple[str, str], list[Draft]], config: dict[str, Any], seed: int, task: str
) -> dict[tuple[str, str], list[Draft]]:
    """Seeded shuffle + cap of every (domain, split) group by ``sizes`` / ``ood_sizes``."""
    out = {}
    for (domain, split), drafts in sorted(groups.items()):
        sizes = config.get("sizes" if domain == "IND" else "ood_sizes", {})
        if domain == "OOD" and split not in sizes:
            continue
        out[(domain, split)] = take(drafts, sizes.get(split), rng(seed, task, domain, split))
    return out


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    raw_dir = Path(raw_dir)
    sources = config.get("sources", ["epqa", "amazonqa"])
    groups: dict[tuple[str, str], list[Draft]] = defaultdict(list)
    dropped: dict[str, int] = {}
    used: list[Path] = []
    if "epqa" in sources and (raw_dir / EPQA).exists():
        used.append(raw_dir / EPQA)
        pairs, dropped = _epqa_drafts(raw_dir / EPQA, config, seed)
        cats = {asin: d.meta["category"] for asin, d in pairs}
        where = product_splits(cats, config, seed, "AP-epqa")
        for asin, d in pairs:
            if asin in where:
                groups[where[asin]].append(d)
            else:
                dropped[OUT_OF_DOMAIN] = dropped.get(OUT_OF_DOMAIN, 0) + 1
    if "amazonqa" in sources:
        files = amazonqa_files(raw_dir)
        used.extend(files[s] for s in sorted(files))
        dropped["amazonqa without snippets"] = 0
        for item in read_amazonqa(raw_dir):
            d = amazonqa_draft(item, "yes" if item.is_answerable else "no", config)
            if d is None:
                dropped["amazonqa without snippets"] += 1
                continue
            domain = domain_of(item.category, config)  # held-out categories: OOD test, any file
            if domain is None:
                dropped[OUT_OF_DOMAIN] = dropped.get(OUT_OF_DOMAIN, 0) + 1
                continue
            groups[(domain, item.split if domain == "IND" else "test")].append(d)
    if not used:
        raise InputError(
            "no AP source found (need pqa/ePQA/dev.csv or amazonqa/*-qar.jsonl)", file=str(raw_dir)
        )
    return BuildResult(
        task="AP", drafts=cap_groups(groups, config, seed, "AP"), dropped=dropped, sources=used
    )
