"""PSI builder: is the product a substitute for the query? ``yes`` iff the ESCI label is S.

Class balance: by default the natural ESCI distribution is kept (about 25% ``yes`` in the
ESCI sample under ../shared/raw, about 22% in full ESCI), because PSI is scored by F1 on
``yes`` and a rebalanced test set would inflate it. ``positive_ratio`` (e.g. 0.5) downsamples
the majority class per split for users who want a balanced training set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.builders.mpc import esci_meta, esci_splits
from ecellm.data.readers.esci import esci_files
from ecellm.data.splits import SPLIT_NAMES, rng, take

DEFAULTS: dict[str, Any] = {
    "locale": "us",
    "version": "small",
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "english_every_field": False,  # true: the reference's language check on every query and title
    "positive_ratio": None,  # None keeps ESCI's natural share of S; a float rebalances every split
    "balance_splits": ["train"],  # splits that positive_ratio applies to
}


def _rebalance(rows: list[dict], ratio: float, r: Any) -> list[dict]:
    """Downsample the majority class so ``yes`` makes up ``ratio`` of the rows."""
    pos = [x for x in rows if x["esci_label"] == "S"]
    neg = [x for x in rows if x["esci_label"] != "S"]
    if not pos or not neg or not 0 < ratio < 1:
        return rows
    want_neg = int(round(len(pos) * (1 - ratio) / ratio))
    if want_neg <= len(neg):
        neg = take(neg, want_neg, r)
    else:
        pos = take(pos, int(round(len(neg) * ratio / (1 - ratio))), r)
    return sorted(pos + neg, key=lambda x: x["example_id"])


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    rows, dropped = esci_splits(raw_dir, config, seed)
    sizes = config.get("sizes", {})
    ratio = config.get("positive_ratio")
    drafts: dict[tuple[str, str], list[Draft]] = {}
    for split in SPLIT_NAMES:
        part = rows.get(split, [])
        if ratio is not None and split in config.get("balance_splits", []):
            part = _rebalance(part, float(ratio), rng(seed, "PSI", "balance", split))
        chosen = take(part, sizes.get(split), rng(seed, "PSI", split))
        drafts[("IND", split)] = [
            Draft(
                input=json.dumps({"query": r["query"], "product": r["product_title"]}, ensure_ascii=False),
                output="yes" if r["esci_label"] == "S" else "no",
                meta=esci_meta(r),
            )
            for r in chosen
        ]
    return BuildResult(task="PSI", drafts=drafts, dropped=dropped, sources=list(esci_files(Path(raw_dir))))
