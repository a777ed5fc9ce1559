"""Multiple-choice builder: ESCI query-product relation (4 numbered options) and 1-5 review ratings."""

from __future__ import annotations

from ecellm.data.builders import shopping_mc as mc
from ecellm.data.pipeline import deep_merge


def _disjoint(seen: dict) -> bool:
    """No key in two of the train/val/test sets."""
    return not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])

def _cfg(**over):
    base = {**mc.DEFAULTS, "fractions": [0.8, 0.1, 0.1], "categories": ["Appliances", "Gift_Cards"]}
    return deep_merge(base, over)


def test_relation_and_rating_records(raw_dir):
    res = mc.build(raw_dir, _cfg(), 0)
    rel = res.items[mc.RELATION]
    assert all(rel[s] for s in ("train", "val", "test"))
    item = rel["test"][0]
    rec = item.record
    assert rec["task_type"] == "multiple-choice" and rec["metric"] == "accuracy" and rec["is_multiple_choice"]
    assert rec["input_field"].endswith("Answer: ")
    prompt = rec["input_field"]
    assert "\n0. " in prompt and "\n3. " in prompt and "\n4. " not in prompt
    labels = {i.label for s in rel.values() for i in s}
    assert labels == {"0", "1", "2", "3"}
    rating = res.items[mc.RATING]
    truths = {i.record["output_field"] for s in rating.values() for i in s}
    assert truths == {1, 2, 3, 4, 5}
    assert "\n0. " not in rating["train"][0].record["input_field"]  # a rating question lists no options
    for task in (mc.RELATION, mc.RATING):
        for key in ("products", "queries"):
            groups = res.items[task]
            seen = {s: {k for i in groups[s] for k in getattr(i, key)} for s in groups}
            assert _disjoint(seen)
    assert res.limits[mc.RATING]["balance"] is True
    assert res.dropped["reviews: fewer than min_review_words words"] > 0


def test_relation_answer_is_the_esci_label_index(raw_dir):
    res = mc.build(raw_dir, _cfg(categories=["Appliances"]), 0)
    item = res.items[mc.RELATION]["train"][0]
    option = mc.ESCI_OPTIONS[mc.ORDER[item.record["output_field"]]]
    assert f"{item.record['output_field']}. {option}" in item.record["input_field"]
