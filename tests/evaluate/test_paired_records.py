"""Paired bootstrap over ShopBench families from per-record scores."""

from __future__ import annotations

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.evaluate.paired_records import paired_families
from ecellm.tasks import get_task


@pytest.fixture(scope="module")
def samples():
    got = load_samples(FIXTURES / "shopbench" / "dev.jsonl")
    # closed answers only: no embedding model, and NER (micro F1) is pooled, so it is refused
    return [s for s in got if s.meta["metric"] in ("accuracy", "hit rate@3", "ndcg", "rougel")]


def test_perfect_over_empty_is_a_clear_gain_and_equal_runs_are_zero(samples):
    perfect = {s.id: s.output for s in samples}
    res = paired_families(samples, {}, perfect, resamples=200)
    assert set(res["families"]) == {s.task for s in samples}
    assert res["overall"]["delta"] > 0 and res["overall"]["lo"] > 0
    assert all(g["invalid"]["base"] == g["n"] for k, g in res["groups"].items() if not k.startswith("SB-GEN"))
    same = paired_families(samples, perfect, perfect, resamples=200)
    assert same["overall"]["delta"] == 0 and same["overall"]["lo"] == 0 == same["overall"]["hi"]


def test_family_mean_is_the_mean_of_its_tasks_and_overall_of_families(samples):
    perfect = {s.id: s.output for s in samples}
    half = {s.id: (s.output if i % 2 else "") for i, s in enumerate(samples)}
    res = paired_families(samples, half, perfect, resamples=100, seed=3)
    for abbr, fam in res["families"].items():
        groups = [g for k, g in res["groups"].items() if k.startswith(abbr + "/")]
        assert fam["tuned"] == pytest.approx(sum(g["tuned"] for g in groups) / len(groups))
    fams = res["families"].values()
    assert res["overall"]["base"] == pytest.approx(sum(f["base"] for f in fams) / len(fams))
    again = paired_families(samples, half, perfect, resamples=100, seed=3)
    assert again == res  # seeded


def test_pooled_metric_is_refused():
    rows = load_samples(FIXTURES / "shopbench" / "dev.jsonl")
    ner = [s for s in rows if get_task(s.task).extra["task_type"] == "named_entity_recognition"]
    with pytest.raises(InputError, match="per-record"):
        paired_families(ner, {}, {}, resamples=10)


def test_most_common_answer_per_closed_group(samples):
    mc = [s for s in samples if get_task(s.task).answer_kind == "option_number"]
    assert mc, "the fixture has multiple-choice records"
    constant = {s.id: "1" for s in mc}
    res = paired_families(mc, {}, constant, resamples=10)
    for group in res["groups"].values():
        assert group["most_common"]["tuned"] == {"share": 1.0, "answer": "1"}
        # an empty answer parses to the official scorer's -1 (strict: unparsed, counted as invalid)
        assert group["most_common"]["base"] == {"share": 1.0, "answer": "-1"}
    strict = paired_families(mc, {}, constant, mode="strict", resamples=10)
    assert all(g["most_common"]["base"]["answer"] in ("invalid", "-1") for g in strict["groups"].values())
    gen = [s for s in samples if get_task(s.task).answer_kind == "text"]
    if gen:  # free text has no most common answer
        res = paired_families(gen, {}, {}, resamples=10)
        assert all("most_common" not in g for g in res["groups"].values())
