"""SA builder: real rows (format, skew kept in train, gold scores 1.0), the fixture, and the
reference profile's natural rating distribution in val/test."""

from __future__ import annotations

import random
from collections import Counter

from tests.conftest import FIXTURES, RAW_REFERENCE, builder_options

from ecellm.data.builders import sa
from ecellm.data.builders.base import BuildResult
from ecellm.data.quality import normalize_key
from ecellm.tasks.sa import OPTIONS as SA_OPTIONS
from ecellm.tasks.sa import STARS

OVER = {"ind_categories": ["Ref_Cat"], "ood_categories": [], "sizes": {"train": 100, "val": 10, "test": 20}}


def _labels(profile: str | None) -> dict[str, Counter]:
    res = sa.build(RAW_REFERENCE, builder_options("SA", profile, **OVER), 19)
    return {split: Counter(d.output[0] for d in res.drafts[("IND", split)]) for split in ("val", "test")}


def test_reference_profile_keeps_the_natural_distribution():
    lite, ref = _labels(None), _labels("reference")
    assert len(lite["test"]) == 5 and lite["test"]["A"] <= 5  # lite balances val/test, supply allowing
    # the fixture's ratings are 70% five stars: a random draw of 20 is mostly A
    assert sum(ref["test"].values()) == 20 and ref["test"]["A"] >= 10
    assert ref["val"]["A"] > lite["val"]["A"]


FIX = FIXTURES / "raw_a"


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def test_groups_present_and_deterministic(check_groups):
    check_groups("SA")


def test_sa_real_format(real_build):
    result = real_build("SA")
    for (domain, _split), d in _all(result):
        assert d.options == list(SA_OPTIONS) and d.output in SA_OPTIONS
        assert STARS[d.output[0]] == d.meta["rating"]
        assert len(d.input.split()) >= 10
        cats = sa.DEFAULTS["ind_categories" if domain == "IND" else "ood_categories"]
        assert d.meta["category"] in cats
    train = Counter(d.output[0] for d in result.drafts[("IND", "train")])
    test = Counter(d.output[0] for d in result.drafts[("IND", "test")])
    assert train["A"] / sum(train.values()) > 0.75  # natural skew kept in train
    assert test["A"] / sum(test.values()) < train["A"] / sum(train.values())  # test balanced by rating
    texts = [normalize_key(d.input) for _, d in _all(result)]
    assert len(texts) == len(set(texts))  # no text in two splits or domains


def test_sa_pick_round_robin():
    rows = [{"overall": s} for s in [5] * 10 + [4] * 2 + [1]]
    got = sa.pick(rows, 6, True, random.Random(0))
    assert Counter(r["overall"] for r in got) == {5: 3, 4: 2, 1: 1}
    assert len(sa.pick(rows, 6, False, random.Random(0))) == 6


def test_sa_fixture_plain_json():
    result = sa.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": []}, 0)
    # 17 fixture reviews have (u + j) % 7 == 0 -> "Too short.", plus 4 one-word reviews
    assert result.dropped == {"fewer than min_words words": 21}
    assert sum(len(g) for g in result.drafts.values()) == 125 + 4 - 21


def test_gold_copy_scores_one(real_build, check_gold_scores_one):
    check_gold_scores_one(real_build("SA"))
