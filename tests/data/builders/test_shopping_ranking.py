"""Ranking builder: five ESCI products per query, the truth their gains in display order."""

from __future__ import annotations

from ecellm.data.builders import shopping_ranking as rk
from ecellm.tasks.shopbench.ranking import gold_text


def _disjoint(seen: dict) -> bool:
    """No key in two of the train/val/test sets."""
    return not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])

def test_ranking_records(raw_dir):
    res = rk.build(raw_dir, {**rk.DEFAULTS, "fractions": [0.8, 0.1, 0.1]}, 0)
    items = res.items[rk.TASK_NAME]
    assert all(items[s] for s in ("train", "val", "test"))
    for split_items in items.values():
        for it in split_items:
            gains = it.record["output_field"]
            assert len(gains) == 5 and set(gains) <= {1.0, 0.1, 0.01, 0.0} and any(gains)
            assert it.record["metric"] == "ndcg" and it.record["task_type"] == "ranking"
            assert "\n5. " in it.record["input_field"] and "\n6. " not in it.record["input_field"]
            assert len(set(it.products)) == 5
    it = items["test"][0]
    assert gold_text(it.record["output_field"])  # the truth reads back as a perfect answer
    # the balance table counts the trained target's first item
    assert it.label == "target starts with " + gold_text(it.record["output_field"]).split(",")[0]
    for key in ("products", "queries"):
        seen = {s: {k for i in items[s] for k in getattr(i, key)} for s in items}
        assert _disjoint(seen)


