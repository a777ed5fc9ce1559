"""AVE builder: attribute value extraction from MAVE-format lines (positives and negatives).

MAVE has one product-attribute per line; like the reference, a product's attributes are grouped
into one sample whose input lists every text source ("product title", ...) and the target
attribute names joined by " and ", and whose output is the JSON list of ``{attribute, value,
source}`` triples. Everything is lower-cased so that each value is a literal span of the input;
an attribute without evidence (a MAVE negative) yields ``"None"`` for value and source.

The reference's construction differs in three switchable ways (``--profile reference`` turns
all three on): ``sample_unit: attribute`` makes one sample per product-attribute (one MAVE line,
as the reference does) instead of one per product; ``lowercase_text: false`` keeps the case of
the product text and of the target attribute names in the input (the output triples stay
lower-cased, as the reference writes them, so a value is then not always a literal span);
``paragraph_join: ", "`` joins the paragraphs of one source as the reference does.

Products are split into train/val/test by product id. OOD = unseen attribute keys: keys are
taken in a seeded order until their lines among the test products cover about the OOD test
size; those keys then leave IND entirely, and the OOD test set holds the test products asked
about the held-out keys only.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.quality import clean_text
from ecellm.data.readers.mave import mave_files, read_mave
from ecellm.data.splits import SPLIT_NAMES, rng, split_keys, take
from ecellm.errors import InputError

DEFAULTS: dict[str, Any] = {
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
    "fractions": [0.7, 0.1, 0.2],
    "negatives": True,  # include MAVE negatives as "None" triples
    "max_targets": 0,  # cap on target attributes per sample (0 = all of the product's)
    "ood_keys": None,  # explicit held-out attribute keys (lower-case); None = seeded choice
    "ood_tolerance": 0.1,  # accept held-out keys while their lines stay within target*(1+tol)
    "sample_unit": "product",  # product: all its attributes in one sample; attribute: one each
    "lowercase_text": True,  # false: input text and attribute names keep their case
    "paragraph_join": " ",  # between paragraphs of the same source (the reference: ", ")
}
SAMPLE_UNITS = ("product", "attribute")


def source_name(source: str) -> str:
    """MAVE paragraph source -> input key ("title" -> "product title")."""
    return "product " + clean_text(source).lower()


def _products(raw_dir: Path, config: dict[str, Any], dropped: Counter) -> tuple[dict[str, dict], list[Path]]:
    """Products by id: cleaned sources (lower-cased unless ``lowercase_text`` is off), attributes
    ``{key: [(value, source, pos)]}`` under lower-case keys and ``names`` (key -> the name shown
    in the input).

    An attribute with an empty evidence list is a negative; a key both positive and negative
    for one product keeps the positive.
    """
    lower = bool(config.get("lowercase_text", True))
    joiner = str(config.get("paragraph_join", " "))
    pos_path, neg_path = mave_files(raw_dir)
    files = [pos_path] + ([neg_path] if neg_path and config.get("negatives", True) else [])
    products: dict[str, dict] = {}
    for path in files:
        for row in read_mave(path):
            prod = products.get(row["id"])
            if prod is None:
                texts: dict[str, list[str]] = defaultdict(list)
                for p in row["paragraphs"]:
                    text = clean_text(p["text"])
                    texts[source_name(p["source"])].append(text.lower() if lower else text)
                prod = products[row["id"]] = {
                    "category": row["category"],
                    "sources": {k: joiner.join(v) for k, v in texts.items()},
                    "attrs": {},
                    "names": {},
                }
            for attr in row["attributes"]:
                key = clean_text(attr["key"]).lower()
                prod["names"].setdefault(key, key if lower else clean_text(attr["key"]))
                evs = []
                for ev in attr["evidences"]:
                    para = row["paragraphs"][ev["pid"]]
                    value, src = clean_text(ev["value"]).lower(), source_name(para["source"])
                    if not value or value not in prod["sources"].get(src, "").lower():
                        dropped["evidence value not in cleaned text"] += 1
                        continue
                    evs.append((value, src, (ev["pid"], ev["begin"])))
                if attr["evidences"] and not evs:
                    dropped["attribute without usable evidence"] += 1
                    continue
                if key in prod["attrs"] and (prod["attrs"][key] or not evs):
                    if not evs and prod["attrs"][key]:
                        dropped["negative conflicting with a positive"] += 1
                    prod["attrs"][key] = prod["attrs"][key] + evs
                    continue
                prod["attrs"][key] = evs
    return products, files


def _draft(pid: str, prod: dict, keys: list[str]) -> Draft:
    out = []
    for key in keys:
        evs = prod["attrs"][key]
        if not evs:
            out.append({"attribute": key, "value": "None", "source": "None"})
            continue
        seen = set()
        for value, src, _ in sorted(evs, key=lambda e: e[2]):
            if (value, src) not in seen:
                seen.add((value, src))
                out.append({"attribute": key, "value": value, "source": src})
    payload = {**prod["sources"], "target attributes": " and ".join(prod["names"][k] for k in keys)}
    return Draft(
        input=json.dumps(payload, ensure_ascii=False),
        output=json.dumps(out, ensure_ascii=False),
        meta={
            "source": "mave",
            "product_id": pid,
            "category": prod["category"],
            "target_attributes": keys,
            "negative_attributes": [k for k in keys if not prod["attrs"][k]],
        },
    )


def choose_ood_keys(counts: Counter, target: int, seed: int, tolerance: float) -> list[str]:
    """Keys in a seeded order, each kept while the covered line count stays within target*(1+tol).

    Stops once about ``target`` lines are covered; a key that alone exceeds the budget (e.g.
    "brand", present in almost every product) is skipped rather than overshooting.
    """
    keys = sorted(counts)
    rng(seed, "AVE", "ood-keys").shuffle(keys)
    chosen, covered = [], 0
    for key in keys:
        if covered >= target * (1 - tolerance):
            break
        if covered + counts[key] <= target * (1 + tolerance):
            chosen.append(key)
            covered += counts[key]
    return sorted(chosen)


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    """AVE drafts: IND train/val/test over seen attribute keys, OOD test over held-out keys."""
    cfg = {**DEFAULTS, **(config or {})}
    if cfg["sample_unit"] not in SAMPLE_UNITS:
        raise InputError(
            f"expected one of {', '.join(SAMPLE_UNITS)}, got {cfg['sample_unit']!r}",
            field="tasks.AVE.sample_unit",
        )
    dropped: Counter = Counter()
    products, files = _products(Path(raw_dir), cfg, dropped)
    parts = dict(
        zip(SPLIT_NAMES, split_keys(products, cfg["fractions"], rng(seed, "AVE", "split")), strict=True)
    )
    ood_target = int(cfg["ood_sizes"].get("test", 0) or 0)
    if cfg.get("ood_keys") is not None:
        held = sorted(clean_text(k).lower() for k in cfg["ood_keys"])
    else:
        counts = Counter(k for pid in parts["test"] for k in products[pid]["attrs"])
        held = choose_ood_keys(counts, min(ood_target, len(parts["test"])), seed, cfg["ood_tolerance"])
    held_set = set(held)
    cap = int(cfg.get("max_targets") or 0)
    per_attribute = cfg["sample_unit"] == "attribute"

    def samples(pid: str, keys: list[str]) -> list[Draft]:
        if per_attribute:
            return [_draft(pid, products[pid], [k]) for k in keys]
        return [_draft(pid, products[pid], keys[:cap] if cap else keys)]

    drafts: dict[tuple[str, str], list[Draft]] = {}
    for split in SPLIT_NAMES:
        ind = []
        for pid in parts[split]:
            keys = sorted(k for k in products[pid]["attrs"] if k not in held_set)
            if not keys:
                dropped["all attributes held out for OOD"] += 1
                continue
            ind.extend(samples(pid, keys))
        drafts[("IND", split)] = take(ind, cfg["sizes"].get(split), rng(seed, "AVE", "IND", split))
    ood = []
    for pid in parts["test"]:
        keys = sorted(k for k in products[pid]["attrs"] if k in held_set)
        if keys:
            ood.extend(samples(pid, keys))
    drafts[("OOD", "test")] = take(ood, ood_target, rng(seed, "AVE", "OOD", "test"))
    for group in drafts.values():  # stable order for the writers: by product id
        group.sort(key=lambda d: (d.meta["product_id"], d.meta["target_attributes"]))
    return BuildResult(
        task="AVE",
        drafts=drafts,
        dropped=dict(sorted(dropped.items())),
        sources=files,
        notes=[f"OOD held-out attribute keys: {', '.join(held) or '(none)'}"],
    )
