"""QPR builder: rank 2-4 products with pairwise distinct ESCI labels for one query.

Per query and sample: one product is drawn per ESCI label present (seeded), ``max_products`` of
those labels are kept (all by default, at most 4), and the products are listed in a seeded
shuffled order as ``"A: title"``. ``list_size: random`` is the reference's rule instead: each
list holds a number of products drawn uniformly from ``min_products..max_products`` (2 to 4),
among the sizes the query's distinct labels allow -- what the reference's redraw-until-it-fits
loop gives a query it keeps -- so the data has short lists, not mostly full ones.

The gold output lists the letters in ESCI label order E, S, C, I joined by ``","``;
``meta["labels"]`` holds the label of each listed product in display order (what the reference
writes to ``label.json``), so the evaluator and ``ecellm data validate`` can check the ranking
against the labels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.builders.mpc import esci_splits
from ecellm.data.readers.esci import esci_files
from ecellm.data.splits import SPLIT_NAMES, rng, take
from ecellm.errors import InputError
from ecellm.tasks.qpr import LABEL_ORDER, LETTERS

DEFAULTS: dict[str, Any] = {
    "locale": "us",
    "version": "small",
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "english_every_field": False,  # true: the reference's language check on every query and title
    "min_products": 2,
    "max_products": 4,
    "samples_per_query": 1,  # >1 draws different product sets for the same query
    "list_size": "all",  # all: every label present (up to max_products); random: the reference's 2-4
}
LIST_SIZES = ("all", "random")
_FEW = "query with fewer than min_products labels"
_DUP = "duplicate product set or titles"


def gold_ranking(labels: list[str]) -> str:
    """Letters of the listed products ordered E, S, C, I (labels are pairwise distinct)."""
    order = sorted(range(len(labels)), key=lambda i: LABEL_ORDER.index(labels[i]))
    return ",".join(LETTERS[i] for i in order)


def _query_samples(rows: list[dict], config: dict[str, Any], r: Any) -> tuple[list[Draft], dict[str, int]]:
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda x: x["example_id"]):
        by_label[row["esci_label"]].append(row)
    present = [lab for lab in LABEL_ORDER if by_label[lab]]
    low = int(config.get("min_products", 2))
    k = min(len(present), int(config.get("max_products", 4)), len(LETTERS))
    if k < low:
        return [], {_FEW: 1}
    drafts, seen, skipped = [], set(), 0
    for _ in range(int(config.get("samples_per_query", 1))):
        size = r.randint(low, k) if config.get("list_size") == "random" else k
        labels = sorted(r.sample(present, size), key=LABEL_ORDER.index)
        picked = [r.choice(by_label[lab]) for lab in labels]
        r.shuffle(picked)
        key = tuple(p["example_id"] for p in picked)
        titles = [p["product_title"] for p in picked]
        if key in seen or len(set(titles)) < len(titles):
            skipped += 1
            continue
        seen.add(key)
        shown = [p["esci_label"] for p in picked]
        drafts.append(
            Draft(
                input=json.dumps(
                    {
                        "query": picked[0]["query"],
                        "product list": [f"{LETTERS[i]}: {t}" for i, t in enumerate(titles)],
                    },
                    ensure_ascii=False,
                ),
                output=gold_ranking(shown),
                meta={
                    "source": "esci",
                    "query_id": picked[0]["query_id"],
                    "example_ids": [p["example_id"] for p in picked],
                    "product_ids": [p["product_id"] for p in picked],
                    "labels": shown,
                    "esci_split": picked[0]["split"],
                },
            )
        )
    return drafts, {_DUP: skipped}


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    if config.get("list_size", "all") not in LIST_SIZES:
        raise InputError(
            f"expected one of {', '.join(LIST_SIZES)}, got {config['list_size']!r}",
            field="tasks.QPR.list_size",
        )
    rows, dropped = esci_splits(raw_dir, config, seed)
    dropped = {**dropped, _FEW: 0, _DUP: 0}
    drafts: dict[tuple[str, str], list[Draft]] = {}
    for split in SPLIT_NAMES:
        by_query: dict[int, list[dict]] = defaultdict(list)
        for row in rows.get(split, []):
            by_query[row["query_id"]].append(row)
        r = rng(seed, "QPR", split)
        out: list[Draft] = []
        for qid in sorted(by_query):
            got, skipped = _query_samples(by_query[qid], config, r)
            for reason, n in skipped.items():
                dropped[reason] += n
            out.extend(got)
        drafts[("IND", split)] = take(out, config.get("sizes", {}).get(split), rng(seed, "QPR", "cap", split))
    return BuildResult(task="QPR", drafts=drafts, dropped=dropped, sources=list(esci_files(Path(raw_dir))))
