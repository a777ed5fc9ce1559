"""SR builder: the reference profile's histories (a user's 50 earliest items, leave-one-out)."""

from __future__ import annotations

import json

from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import sr

CAT = {"ind_categories": ["Ref_Cat"], "ood_categories": []}


def _tests(profile: str | None) -> dict[str, tuple[list[str], str]]:
    res = sr.build(RAW_REFERENCE, builder_options("SR", profile, **CAT), 17)
    return {d.meta["user_id"]: (json.loads(d.input), d.meta) for d in res.drafts[("IND", "test")]}


def test_lite_history_is_the_20_most_recent_items():
    history, meta = _tests(None)["U0"]  # U0 reviewed items 0..54 in that order
    assert len(history) == 20 and history[0].startswith("35th: ") and meta["target_item"] == "R000000054"


def test_reference_profile_cuts_sequences_to_50_items():
    tests = _tests("reference")
    history, meta = tests["U0"]
    assert meta["target_item"] == "R000000049"  # the 50th earliest item, not the last
    assert len(history) == 49 and history[0].startswith("1st: ") and history[-1].startswith("49th: ")
    negatives = set(meta["candidates"]) - {meta["target_item"]}
    assert not negatives & {f"R{i:09d}" for i in range(55)}  # none of U0's items
    short, meta6 = tests["U6"]  # 25 items: the cap changes nothing but the history length limit
    assert len(short) == 24 and meta6["target_item"] == "R000000079"
