"""QPR builder: the reference profile's list sizes (2 to 4 products, drawn at random)."""

from __future__ import annotations

from collections import Counter

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
