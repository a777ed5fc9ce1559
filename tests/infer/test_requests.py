"""Request building: per-task default modes, forced modes, constraint arguments, fallbacks."""

from __future__ import annotations

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.infer.requests import build_request
from ecellm.prompts import STOP_STRINGS, render_prompt
from ecellm.tasks.constraints import AttributeValues, Ranking

FIXTURE = FIXTURES / "samples_mixed.jsonl"


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in load_samples(FIXTURE)}


def test_auto_modes_follow_the_task_registry(samples) -> None:
    modes = {s.task: build_request(s).mode for s in samples.values()}
    assert modes == {
        "AG": "generate",
        "AP": "choice",
        "AVE": "constrained",
        "MPC": "choice",
        "PM": "choice",
        "PRP": "choice",
        "PSI": "choice",
        "QPR": "constrained",
        "SA": "choice",
        "SR": "choice",
    }


def test_choice_requests_score_letters_for_option_tasks(samples) -> None:
    sa = build_request(samples["SA-FIX-test-000000"])
    assert sa.choices[1] == "B: positive" and sa.score_texts == ["A", "B", "C", "D", "E"]
    sr = build_request(samples["SR-FIX-test-000001"])
    assert sr.choices == ["A", "B", "C"] and sr.score_texts is None
    assert build_request(samples["PM-FIX-test-000000"]).choices == ["yes", "no"]


def test_constrained_arguments(samples) -> None:
    qpr = build_request(samples["QPR-FIX-test-000001"])
    assert qpr.constraint == Ranking(("A", "B", "C", "D")) and qpr.max_new_tokens == 12
    ave = build_request(samples["AVE-FIX-test-000001"])
    assert ave.constraint == AttributeValues(
        ("blade length", "handle material", "brand"), ("product description", "product title")
    )
    # the budget leaves room for the forced skeleton of all three attributes
    assert ave.max_new_tokens >= 160


def test_forced_modes(samples) -> None:
    for s in samples.values():
        r = build_request(s, mode="generate")
        assert r.mode == "generate" and r.stop == STOP_STRINGS and r.choices is None
    # closed-set tasks asked to be constrained are scored; AG has no constraint
    assert build_request(samples["SA-FIX-test-000000"], mode="constrained").mode == "choice"
    assert build_request(samples["AG-FIX-test-000000"], mode="constrained").mode == "generate"
    assert build_request(samples["QPR-FIX-test-000000"], mode="choice").mode == "constrained"
    with pytest.raises(ValueError, match="unknown mode"):
        build_request(samples["AG-FIX-test-000000"], mode="beam")


def test_unreadable_ave_input_falls_back_to_generate(samples) -> None:
    s = samples["AVE-FIX-test-000000"].model_copy(update={"input": "plain text, no JSON", "meta": {}})
    assert build_request(s).mode == "generate"


def test_prompt_is_the_shared_renderer(samples) -> None:
    s = samples["PSI-FIX-test-000000"]
    assert build_request(s, template="mistral").prompt == render_prompt(s, "mistral")


def test_cut_at_stop_keeps_the_first_answer() -> None:
    from ecellm.infer.backends.hf import cut_at_stop
    from ecellm.prompts import extract_response

    raw = " yes\n\n### Response:\nno"
    assert extract_response(cut_at_stop(raw, STOP_STRINGS)) == "yes"
    assert cut_at_stop("A,B", STOP_STRINGS) == "A,B"
