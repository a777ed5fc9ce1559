"""QPR builder: real ESCI rows (one ranking per query, gold order E, S, C, I), list sizes, and the
reference profile's list sizes (2 to 4 products, drawn at random)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import qpr
from ecellm.errors import InputError


def _sizes(profile: str | None) -> Counter:
    res = qpr.build(RAW_REFERENCE, builder_options("QPR", profile, samples_per_query=30), 7)
    drafts = [d for group in res.drafts.values() for d in group]
    for d in drafts:  # the gold ranking still orders the listed products' labels E, S, C, I
        labels = d.meta["labels"]
        assert d.output == qpr.gold_ranking(labels) and len(set(labels)) == len(labels)
    return Counter(len(d.meta["labels"]) for d in drafts)


def test_reference_profile_draws_list_sizes_2_to_4():
    # every fixture query has all four labels: lite lists all of them, the reference draws a size
    assert set(_sizes(None)) == {4}
    assert set(_sizes("reference")) == {2, 3, 4}


def test_list_size_must_be_known():
    with pytest.raises(InputError, match="tasks.QPR.list_size"):
        qpr.build(RAW_REFERENCE, builder_options("QPR", list_size="some"), 7)


def _cfg(module, **over):
    return {**module.DEFAULTS, **over}


def test_qpr_real(raw_dir: Path) -> None:
    res = qpr.build(raw_dir, _cfg(qpr), 5)
    total = 0
    for drafts in res.drafts.values():
        for x in drafts:
            inp = json.loads(x.input)
            labels = x.meta["labels"]
            assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
            assert [p.split(": ", 1)[0] for p in inp["product list"]] == list("ABCD"[: len(labels)])
            assert x.output == qpr.gold_ranking(labels)
            total += 1
    assert total == 637 + 264  # one sample per query; every query has >= 2 labels here
    assert qpr.gold_ranking(["S", "C", "E"]) == "C,A,B"
    assert qpr.gold_ranking(["I", "E"]) == "B,A"


def test_qpr_max_products(raw_dir: Path) -> None:
    res = qpr.build(raw_dir, _cfg(qpr, max_products=2, sizes={"train": 50, "val": 10, "test": 10}), 5)
    assert all(len(x.meta["labels"]) == 2 for v in res.drafts.values() for x in v)
