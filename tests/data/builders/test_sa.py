"""SA builder: the reference profile keeps val/test in the natural rating distribution."""

from __future__ import annotations

from collections import Counter

from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import sa

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
