"""Shared pieces of the shopping builders: balanced caps, seeded partitions, the ESCI split."""

from __future__ import annotations

import random

from ecellm.data.builders.shopping_common import ShopItem, balanced_take, esci_split, partition, record


def _disjoint(seen: dict) -> bool:
    """No key in two of the train/val/test sets."""
    return not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])

def _item(label: str, i: int) -> ShopItem:
    return ShopItem(record={"i": i}, fields={}, gold=label, leak_key=str(i), label=label)


def test_balanced_take_equalises_labels_and_respects_size():
    items = [_item("5", i) for i in range(90)] + [_item("1", 100 + i) for i in range(7)]
    got = balanced_take(items, 10, random.Random(0), balance=True)
    assert sorted(it.label for it in got) == ["1"] * 5 + ["5"] * 5
    got = balanced_take(items, None, random.Random(0), balance=True)
    assert sorted(it.label for it in got).count("5") == 7
    assert len(balanced_take(items, 20, random.Random(0), balance=False)) == 20
    a = [it.record["i"] for it in balanced_take(items, 10, random.Random(3), balance=True)]
    assert a == [it.record["i"] for it in balanced_take(items, 10, random.Random(3), balance=True)]


def test_partition_is_seeded_complete_and_order_free():
    keys = [f"k{i}" for i in range(50)]
    a = partition(keys, {"fractions": [0.8, 0.1, 0.1]}, 0, "x")
    assert a == partition(list(reversed(keys)), {"fractions": [0.8, 0.1, 0.1]}, 0, "x")
    assert set(a) == set(keys) and {a[k] for k in keys} == {"train", "val", "test"}
    assert a != partition(keys, {"fractions": [0.8, 0.1, 0.1]}, 1, "x")


def test_record_marks_multiple_choice():
    rec = record(prompt="p", truth=1, task_type="multiple-choice", metric="accuracy", task_name="t", track="")
    assert rec["is_multiple_choice"] is True and rec["output_field"] == 1


def test_esci_split_shares_no_query_and_no_product(raw_dir):
    rows, dropped, sources = esci_split(raw_dir, {"fractions": [0.6, 0.2, 0.2], "version": "small"}, 0)
    for key in ("query_id", "product_id"):
        seen = {split: {r[key] for r in part} for split, part in rows.items()}
        assert _disjoint(seen)
    assert all(rows[s] for s in ("train", "val", "test"))
    assert dropped["product in more than one split"] > 0  # the shared sample has products under 2 queries
    assert len(sources) == 2
