"""Task parsers: gold forms pass, chatter only in lenient mode, and no string crashes anything."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecellm.data.schema import Sample
from ecellm.evaluate import paper
from ecellm.tasks import Invalid, all_tasks, get_task


def _sr_sample() -> Sample:
    opts = [f"{c}: item {c}" for c in "ABCDEFGHIJKLMNOPQRST"]
    return Sample(id="sr-1", task="SR", instruction="i", input="x", options=opts, output="C")


GOLD_FORMS = [
    ("PM", "yes", "yes"),
    ("PSI", "no", "no"),
    ("AP", "Yes", "yes"),
    ("PRP", "A", "A"),
    ("SA", "B: positive", "B"),
    ("SA", "E: very negative", "E"),
    ("MPC", get_task("MPC").options[3], "D"),
    ("MPC", "A: exact", "A"),
    ("QPR", "B,A,C", ["B", "A", "C"]),
    ("QPR", "B, A", ["B", "A"]),
    (
        "AVE",
        '[{"attribute": "color", "value": "red", "source": "product title"}]',
        [{"attribute": "color", "value": "red", "source": "product title"}],
    ),
    ("AVE", "[]", []),
    ("AG", "  It holds 12 ounces. ", "It holds 12 ounces."),
]


@pytest.mark.parametrize(("task", "text", "expected"), GOLD_FORMS)
def test_gold_forms_parse_strictly(task, text, expected):
    assert get_task(task).parse(text) == expected


def test_sr_uses_the_sample_options():
    s = _sr_sample()
    assert get_task("SR").parse("T", s) == "T"
    assert get_task("SR").parse("C: item C", s) == "C"
    assert isinstance(get_task("SR").parse("U", s), Invalid)


CHATTER = [
    ("PM", "Yes, they are the same.", "yes"),
    ("AP", "no.", "no"),
    ("AP", "Answer: yes", "yes"),
    ("SA", "Answer: B", "B"),
    ("SA", "(B)", "B"),
    ("SA", "B. positive", "B"),
    ("SA", "very negative", "E"),
    ("SA", "**C**", "C"),
    ("PRP", "The answer is A.", "A"),
    ("QPR", "B > A > C", ["B", "A", "C"]),
    ("QPR", "Ranking: C,A", ["C", "A"]),
    (
        "AVE",
        '```json\n[{"attribute": "a", "value": "b", "source": "c"}]\n```',
        [{"attribute": "a", "value": "b", "source": "c"}],
    ),
    (
        "AVE",
        "Here you go: [{'attribute': 'a', 'value': 'b', 'source': 'c'}] done",
        [{"attribute": "a", "value": "b", "source": "c"}],
    ),
    (
        "AVE",
        '{"attribute": "a", "value": "b", "source": "c"}',
        [{"attribute": "a", "value": "b", "source": "c"}],
    ),
    ("AG", "Answer: twelve ounces", "twelve ounces"),
]


@pytest.mark.parametrize(("task", "text", "expected"), CHATTER)
def test_chatter_is_invalid_strictly_and_read_leniently(task, text, expected):
    t = get_task(task)
    if task != "AG":  # free text is valid either way; lenient only peels the lead-in
        assert isinstance(t.parse(text), Invalid), text
    assert t.parse(text, lenient=True) == expected


@pytest.mark.parametrize(
    ("task", "text"),
    [
        ("SA", "B: negative"),  # the text contradicts the letter
        ("PRP", "D"),  # not an option
        ("SA", "b"),  # option letters are upper case
        ("PM", "maybe"),
        ("QPR", "first B then A"),
        ("AVE", "not json"),
        ("AG", "   "),
        ("SR", ""),
    ],
)
def test_invalid_answers(task, text):
    out = get_task(task).parse(text)
    assert isinstance(out, Invalid)
    assert out.reason
    assert not out


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80), lenient=st.booleans())
def test_no_string_crashes_any_parser(text, lenient):
    sr = _sr_sample()
    for task in all_tasks():
        out = task.parse(text, sr if task.abbr == "SR" else None, lenient=lenient)
        assert not (isinstance(out, Invalid) and out.reason.startswith("parser error")), (
            task.abbr,
            text,
            out,
        )


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(st.text(max_size=60), st.sampled_from(["", " ", ",", ",,", "[", "[{", "A,", "\x00", "é"]))
)
def test_no_string_crashes_the_paper_scorers(text):
    gold_ave = json.dumps([{"attribute": "a", "value": "b", "source": "c"}])
    assert paper.score_binary(["yes"], [text])["invalid"] in (0, 1)
    assert paper.score_multiclass(["A"], [text])["invalid"] in (0, 1)
    assert paper.score_hit_rate(["A"], [text], get_task("SR").option_letters)["invalid"] in (0, 1)
    assert paper.score_ave([gold_ave], [text], "OOD_Diverse_Instruction")["invalid"] in (0, 1)
    ranked = paper.score_ranking([text], [["E", "S", "C"]], get_task("QPR").gains)
    assert 0.0 <= ranked["metrics"]["ndcg"] <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.dictionaries(
                st.sampled_from(["attribute", "value", "source"]),
                st.one_of(st.none(), st.text(max_size=5), st.integers()),
            ),
        ),
        max_size=5,
    )
)
def test_odd_json_items_never_crash_ave(items):
    text = json.dumps(items)
    gold = json.dumps([{"attribute": "a", "value": "b", "source": "c"}])
    paper.score_ave([gold], [text], "OOD_Diverse_Instruction")
    from ecellm.evaluate import strict

    strict.score_ave([json.loads(gold)], [get_task("AVE").parse(text)], "OOD_Diverse_Instruction")
