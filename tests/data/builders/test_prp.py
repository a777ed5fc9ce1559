"""PRP builder on the real ../shared/raw rows and on the hand-written fixture."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES

from ecellm.data.builders import prp
from ecellm.data.builders.base import BuildResult
from ecellm.data.quality import normalize_key
from ecellm.tasks.prp import OPTIONS as PRP_OPTIONS

FIX = FIXTURES / "raw_a"


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def test_groups_present_and_deterministic(check_groups):
    check_groups("PRP")


def test_prp_real_format(real_build):
    result = real_build("PRP")
    seen = set()
    for (domain, _), d in _all(result):
        inp = json.loads(d.input)
        assert list(inp) == ["Product 1:", "Product 2:"]
        t1, t2 = inp["Product 1:"], inp["Product 2:"]
        assert t1 and t2 and normalize_key(t1) < normalize_key(t2)
        assert "<" not in t1 + t2 and "&#" not in t1 + t2
        assert d.options == list(PRP_OPTIONS) and d.output in ("A", "B")  # raw data has no similar_item
        assert d.meta["category"] == ("Gift_Cards" if domain == "IND" else "Magazine_Subscriptions")
        assert d.input not in seen
        seen.add(d.input)
    assert result.dropped["pair with more than one relation"] > 0
    assert all("description" in d.meta["title_from"] for d in result.drafts[("OOD", "test")])


def test_prp_strict_titles_leave_magazine_empty(raw_dir):
    result = prp.build(raw_dir, {"title_fallback_words": 0, "ind_categories": []}, 0)
    assert result.drafts[("OOD", "test")] == []  # every Magazine partner title is an HTML fragment


def test_prp_fixture_similar_item_and_drops():
    result = prp.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": [], "fractions": [1, 0, 0]}, 0)
    got = [
        (json.loads(d.input)["Product 1:"], json.loads(d.input)["Product 2:"], d.output, d.meta["relation"])
        for d in result.drafts[("IND", "train")]
    ]
    assert got == [
        ("Alpha Gift Card", "Beta & Co Gift Card", "A", "also_buy"),
        ("Alpha Gift Card", "Delta Card", "C", "similar_item"),
        ("Alpha Gift Card", "Gamma Card", "B", "also_view"),
    ]
    assert result.dropped == {
        "duplicate meta rows": 0,
        "empty title after cleaning": 1,
        "pair with more than one relation": 1,
        "partner not in category meta": 1,
        "same title": 1,
    }


def test_gold_copy_scores_one(real_build, check_gold_scores_one):
    check_gold_scores_one(real_build("PRP"))
