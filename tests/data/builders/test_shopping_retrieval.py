"""Retrieval builder: 3 also-bought products among 15 candidates, never overlapping the positives."""

from __future__ import annotations

import gzip
import json

from ecellm.data.builders import shopping_retrieval as rt


def _disjoint(seen: dict) -> bool:
    """No key in two of the train/val/test sets."""
    return not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])

def test_retrieval_records_on_real_meta(raw_dir):
    res = rt.build(raw_dir, {**rt.DEFAULTS, "fractions": [0.8, 0.1, 0.1], "categories": ["Gift_Cards"]}, 0)
    items = res.items[rt.TASK_NAME]
    assert all(items[s] for s in ("train", "val", "test"))
    also = {}
    with gzip.open(raw_dir / "amazon_reviews_2018/meta/meta_Gift_Cards.json.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            also.setdefault(row["asin"], set()).update(row.get("also_buy") or [])
    for split_items in items.values():
        for it in split_items:
            truth = it.record["output_field"]
            assert len(truth) == 3 and len(it.products) == 16 and it.record["metric"] == "hit rate@3"
            anchor = it.products[0].split("/")[1]
            cands = [p.split("/")[1] for p in it.products[1:]]
            positives = {cands[i - 1] for i in truth}
            negatives = set(cands) - positives
            assert positives <= also[anchor] and not negatives & also[anchor]
            assert "Select 3 products" in it.record["input_field"] and "\n15. " in it.record["input_field"]
    seen = {s: {p for i in items[s] for p in i.products} for s in items}
    assert _disjoint(seen)


def test_retrieval_on_own_meta(tmp_path):
    meta = tmp_path / "amazon_reviews_2018" / "meta"
    meta.mkdir(parents=True)
    rows = []
    for i in range(60):  # 6 cliques of 10 products that are bought together
        group = i // 10
        mates = [f"B{j:09d}" for j in range(group * 10, group * 10 + 10) if j != i]
        rows.append({"asin": f"B{i:09d}", "title": f"Product number {i}", "also_buy": mates})
    with gzip.open(meta / "meta_Toys.json.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = {**rt.DEFAULTS, "fractions": [0.6, 0.2, 0.2], "categories": ["Toys"]}
    a = rt.build(tmp_path, cfg, 1)
    b = rt.build(tmp_path, cfg, 1)
    recs = [i.record for s in a.items[rt.TASK_NAME].values() for i in s]
    assert recs == [i.record for s in b.items[rt.TASK_NAME].values() for i in s]
    assert recs and all(len(r["output_field"]) == 3 for r in recs)
    skipped = a.dropped["anchor whose positives or negatives are taken by other splits"]
    assert sum(len(v) for v in a.items[rt.TASK_NAME].values()) + skipped == 60
