"""Generation builder: PQA answers from evidence, records alternating ROUGE-L and sentence similarity."""

from __future__ import annotations

from collections import Counter

from ecellm.data.builders import shopping_generation as gen
from ecellm.tasks.shopbench.records import infer_task_type


def _disjoint(seen: dict) -> bool:
    """No key in two of the train/val/test sets."""
    return not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])

def test_generation_records(raw_dir):
    res = gen.build(raw_dir, {**gen.DEFAULTS, "fractions": [0.8, 0.1, 0.1]}, 0)
    items = res.items[gen.TASK_NAME]
    assert all(items[s] for s in ("train", "val", "test"))
    metrics = Counter(i.record["metric"] for i in items["test"])
    assert set(metrics) == {"rougel", "sent-transformer"}
    assert abs(metrics["rougel"] - metrics["sent-transformer"]) <= 1
    rec = items["test"][0].record
    assert isinstance(rec["output_field"], str) and rec["output_field"]
    assert infer_task_type(rec["input_field"]) == "generation"  # also without task_type (hidden format)
    seen = {s: {p for i in items[s] for p in i.products} for s in items}
    assert _disjoint(seen)
