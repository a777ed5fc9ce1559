"""AG builder: real rows (hetPQA and ePQA, products never cross splits), the AmazonQA fixture, and
the reference profile's categories and its rule that an answer needs up-votes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import FIXTURES, RAW_REFERENCE, builder_options

from ecellm.data.builders import ag
from ecellm.data.builders.ag import BELOW_VOTES


def _build(profile: str | None):
    return ag.build(RAW_REFERENCE, builder_options("AG", profile, sources=["amazonqa"]), 13)


def test_reference_profile_keeps_only_answers_with_votes():
    lite, ref = _build(None), _build("reference")
    lite_train = [d.output for d in lite.drafts[("IND", "train")]]
    # the fixture's first train question of each category has no up-voted answer: lite keeps its
    # first answer (5 IND categories: Electronics is lite's OOD), the reference drops the question
    assert sum(o.startswith("First answer") for o in lite_train) == 5 and BELOW_VOTES not in lite.dropped
    outputs = [d.output for group in ref.drafts.values() for d in group]
    assert outputs and all(o.startswith("Voted answer") for o in outputs)
    assert ref.dropped[BELOW_VOTES] == 6  # one per category, before the category filter


def test_reference_profile_uses_the_reference_categories():
    ref = _build("reference")
    cats = {k: Counter(d.meta["category"] for d in v) for k, v in ref.drafts.items()}
    assert set(cats[("IND", "train")]) == {"Electronics", "Home_and_Kitchen"}
    assert set(cats[("OOD", "test")]) == {"Cell_Phones_and_Accessories"}
    assert sum(cats[("OOD", "test")].values()) == 4  # 5 questions, one without an up-voted answer


def test_best_answer_min_votes():
    from ecellm.data.readers.amazonqa import QAItem

    answers = (("zero", 0), ("two", 2), ("", 5))  # (text, up-votes); an empty answer never wins
    item = QAItem("f", 1, "train", "A", "C", "q?", "descriptive", ("s",), answers, True)
    assert item.best_answer() == "two" and item.best_answer(1) == "two" and item.best_answer(3) is None


FIX = FIXTURES / "raw_b"


def _cfg(module, **over):
    return {**module.DEFAULTS, **over}


def test_ag_real(raw_dir: Path) -> None:
    res = ag.build(raw_dir, _cfg(ag), 11)
    sources = Counter(x.meta["source"] for v in res.drafts.values() for x in v)
    assert set(sources) == {"hetpqa", "epqa"}
    assert (
        res.dropped["epqa question without a written answer"] == 172
    )  # 56 without any answer + 116 w/o label 2
    seen: dict[str, tuple[str, str]] = {}
    for key, drafts in res.drafts.items():
        for x in drafts:
            assert len(x.output.split()) >= 2
            assert json.loads(x.input)["document"]
            assert seen.setdefault(x.meta["asin"], key) == key  # no product crosses splits/domains


def test_ag_amazonqa_fixture() -> None:
    gen = ag.build(FIX, _cfg(ag), 0)
    outs = {k: sorted(x.output for x in v) for k, v in gen.drafts.items()}
    assert outs == {
        ("IND", "train"): [
            "About as loud as a vacuum cleaner.",
            "It holds at least 250 pounds according to reviewers.",
        ],
        ("IND", "val"): ["The lid is tempered glass with a steel rim."],
        ("IND", "test"): ["About two minutes on a medium setting."],
        ("OOD", "test"): ["Around twenty hours per charge."],
    }
    assert gen.dropped["amazonqa not descriptive, unanswerable or unanswered"] == 7
