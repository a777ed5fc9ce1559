"""SR builder: real rows and the fixture (leave-one-out histories, candidate pool, gold scores
1.0), and the reference profile's histories (a user's 50 earliest items)."""

from __future__ import annotations

import json
import re

from tests.conftest import FIXTURES, RAW_REFERENCE, builder_options

from ecellm.data.builders import sr
from ecellm.data.builders.base import BuildResult
from ecellm.data.quality import normalize_key
from ecellm.tasks.sr import LETTERS as SR_LETTERS

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


FIX = FIXTURES / "raw_a"


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def test_groups_present_and_deterministic(check_groups):
    check_groups("SR")


def test_ordinal():
    got = [sr.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112)]
    assert got == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "101st",
        "111th",
        "112th",
    ]


def _check_sr(result: BuildResult) -> None:
    by_user: dict[tuple[str, str], dict[str, object]] = {}
    for (domain, split), d in _all(result):
        history = json.loads(d.input)
        for line in history:
            assert re.match(r"^\d+(st|nd|rd|th): \S", line)
        assert len(d.options) == 20
        assert [o.split(":", 1)[0] for o in d.options] == list(SR_LETTERS)
        idx = SR_LETTERS.index(d.output)
        assert d.meta["candidates"][idx] == d.meta["target_item"]
        own = set(d.meta["history_items"]) | {d.meta["target_item"]}
        assert set(d.meta["candidates"]) & own == {d.meta["target_item"]}
        assert len({normalize_key(o.split(": ", 1)[1]) for o in d.options}) == 20
        by_user[(domain, d.meta["user_id"])] = {**by_user.get((domain, d.meta["user_id"]), {}), split: d}
    for splits in by_user.values():
        if {"train", "val", "test"} <= set(splits):
            tr, va, te = splits["train"], splits["val"], splits["test"]
            # leave-one-out: each later split's history ends with the earlier split's target
            assert va.meta["history_items"][-1] == tr.meta["target_item"]
            assert te.meta["history_items"][-1] == va.meta["target_item"]


def test_sr_real_format(real_build):
    _check_sr(real_build("SR"))
    result = real_build("SR")
    assert {d.meta["category"] for d in result.drafts[("OOD", "test")]} == {"Magazine_Subscriptions"}


def test_sr_fixture_leave_one_out_and_pool():
    result = sr.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": []}, 0)
    _check_sr(result)
    assert {k: len(v) for k, v in result.drafts.items()} == {
        ("IND", "train"): 25,
        ("IND", "val"): 25,
        ("IND", "test"): 25,
    }
    assert result.dropped == {
        "duplicate meta rows": 0,
        "interaction outside the k-core": 2,  # U900's two items
        "item without usable meta text": 1,  # X000000000 is not in meta
        "repeated (user, item) interaction": 1,  # U000 reviews T000000000 again later
    }
    d = next(d for d in result.drafts[("IND", "test")] if d.meta["user_id"] == "U003")
    # U003's items are (3 + 5j) % 25 at times 1000 j + 3: test target = item 23, history 3, 8, 13, 18
    assert d.meta["target_item"] == "T000000023"
    assert d.meta["history_items"] == ["T000000003", "T000000008", "T000000013", "T000000018"]
    assert (
        json.loads(d.input)[0] == "1st: Toy item 03 wooden puzzle | category: Toys > Puzzles | brand: Brand 0"
    )
    # the pool has 25 items, the user 5: the 19 negatives are 19 of the 20 others
    assert len(set(d.meta["candidates"])) == 20
    strict = sr.build(
        FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": [], "title_fallback_words": 0}, 0
    )
    # without the description fallback item 24 goes, the k-core cascade leaves 20 users x 5 of 20
    # items, and 15 non-own items cannot supply 19 negatives: every sample is dropped, none is padded
    assert all(not g for g in strict.drafts.values())
    assert strict.dropped["candidate pool too small"] == 60


def test_gold_copy_scores_one(real_build, check_gold_scores_one):
    check_gold_scores_one(real_build("SR"))
