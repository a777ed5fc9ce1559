"""MPC builder: query-product relevance class from ESCI (US locale).

Train rows come from ESCI's train split; ESCI's test split is halved by query into val and test
(see :func:`ecellm.data.readers.esci.split_esci`). The output is the full option string of the
ESCI label (``ecellm.tasks.mpc.OPTIONS`` through ``ESCI``). :func:`esci_splits` is shared with the
PSI and QPR builders so the three query tasks read ESCI once per call in the same way.

``english_every_field`` is the reference's language rule: every query and every title is judged
on its own, however short, and the row is kept only when the top language is English. The lite
default leaves language to the ``english_only`` quality step, which judges only fields of 10
words or more, because identifiers mislabel short catalog text (the reference's rule drops real
English queries and titles; the build's dropped counts show how many).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.readers.esci import esci_files, read_esci, split_esci
from ecellm.data.splits import SPLIT_NAMES, rng, take
from ecellm.tasks.mpc import ESCI, OPTIONS

DEFAULTS: dict[str, Any] = {
    "locale": "us",
    "version": "small",  # ESCI's reduced version; "large" or null for every judgement
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "english_every_field": False,  # true: the reference's language check on every query and title
}
NOT_ENGLISH = "query or title not detected as English"

OPTION_OF = {label: next(o for o in OPTIONS if o.startswith(letter + ":")) for label, letter in ESCI.items()}


def esci_splits(
    raw_dir: Path, config: dict[str, Any], seed: int
) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Cleaned ESCI rows per split (train/val/test) and the count of rows dropped, by reason.

    A row is dropped when its query or product title is empty after HTML/unicode cleaning, when
    the product is missing from the products file, and with ``english_every_field`` when its
    query or title is not detected as English.
    """
    from ecellm.data.quality import clean_text

    df = read_esci(Path(raw_dir), locale=config.get("locale", "us"), version=config.get("version"))
    dropped = {"missing or empty title": 0, "empty query": 0}
    every_field = bool(config.get("english_every_field"))
    if every_field:
        dropped[NOT_ENGLISH] = 0
    out: dict[str, list[dict]] = {}
    for split, part in split_esci(df, seed).items():
        rows = []
        for row in part.iter_rows(named=True):
            query, title = clean_text(row["query"]), clean_text(row["product_title"])
            if not query:
                dropped["empty query"] += 1
                continue
            if not title:
                dropped["missing or empty title"] += 1
                continue
            if every_field and not (is_english(query) and is_english(title)):
                dropped[NOT_ENGLISH] += 1
                continue
            rows.append({**row, "query": query, "product_title": title})
        out[split] = rows
    return out, dropped


@functools.lru_cache(maxsize=65536)
def is_english(text: str) -> bool:
    """The reference's per-field test: the most likely language is English (no length or
    confidence threshold). Cached: MPC, PSI and QPR judge the same queries and titles."""
    from ecellm.data.quality import detect_language

    return detect_language(text)[0] == "en"


def esci_meta(row: dict) -> dict[str, Any]:
    """Provenance kept on every ESCI-derived sample."""
    return {
        "source": "esci",
        "example_id": row["example_id"],
        "query_id": row["query_id"],
        "product_id": row["product_id"],
        "esci_label": row["esci_label"],
        "esci_split": row["split"],
    }


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """One MPC draft per (query, product) judgement, capped per split by ``sizes``."""
    rows, dropped = esci_splits(raw_dir, config, seed)
    sizes = config.get("sizes", {})
    drafts: dict[tuple[str, str], list[Draft]] = {}
    for split in SPLIT_NAMES:
        chosen = take(rows.get(split, []), sizes.get(split), rng(seed, "MPC", split))
        drafts[("IND", split)] = [
            Draft(
                input=json.dumps(
                    {"query": r["query"], "product title": r["product_title"]}, ensure_ascii=False
                ),
                output=OPTION_OF[r["esci_label"]],
                options=list(OPTIONS),
                meta=esci_meta(r),
            )
            for r in chosen
        ]
    return BuildResult(task="MPC", drafts=drafts, dropped=dropped, sources=list(esci_files(Path(raw_dir))))
