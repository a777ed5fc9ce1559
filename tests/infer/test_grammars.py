"""Constrained-decoding grammars: gold answers accepted, bad ones refused, every state finishable."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ecellm.data.schema import Sample
from ecellm.infer.grammars import (
    AttributeValuesGrammar,
    NumberListGrammar,
    OneOfGrammar,
    RankingGrammar,
    accepts,
    feed,
    grammar_for,
)
from ecellm.tasks import get_task
from ecellm.tasks.constraints import AttributeValues, NumberList, OneOf, Ranking


def AveJson(attributes: tuple[str, ...], sources: tuple[str, ...]) -> AttributeValuesGrammar:  # noqa: N802
    return AttributeValuesGrammar(AttributeValues(attributes, sources))

AVE_GOLD = (
    '[{"attribute": "flavor", "value": "jasmine", "source": "product title"}, '
    '{"attribute": "pack size", "value": "None", "source": "None"}]'
)


def test_ranking_accepts_permutations_only() -> None:
    g = grammar_for(Ranking(("A", "B", "C")))
    assert accepts(g, "B,C,A")
    for bad in ("B,C", "B,B,A", "B, C, A", "B,C,A,", "D,A,B", "BCA", ""):
        assert not accepts(g, bad), bad
    assert g.finish(feed(g, g.start(), "C,")) == "A,B"
    assert g.finish(feed(g, g.start(), "C")) == ",A,B"


def test_ranking_of_multi_character_labels_and_a_count() -> None:
    g = grammar_for(Ranking(("1", "10", "2"), count=2))
    assert accepts(g, "10,1") and accepts(g, "1,10") and accepts(g, "2,10")
    for bad in ("1", "1,1", "10,10", "1,10,2", "1,", "3,1", "1,0"):
        assert not accepts(g, bad), bad
    state = feed(g, g.start(), "1")
    assert g.accepting(feed(g, state, ",2")) and not g.final(state)
    assert g.forced(state) == "" and g.finish(state) == ",2"  # "1" may still become "10"
    assert g.forced(feed(g, g.start(), "10")) == ","


def test_number_list_and_one_of() -> None:
    d = grammar_for(NumberList(max_items=3, max_digits=2))
    assert isinstance(d, NumberListGrammar)
    assert accepts(d, "3,12,1") and not accepts(d, "3,") and not accepts(d, ",3") and not accepts(d, "3,,1")
    assert not accepts(d, "1,2,3,4") and not accepts(d, "123") and not accepts(d, "3, 1")
    assert not d.final(feed(d, d.start(), "3")) and d.final(feed(d, d.start(), "1,2,34"))
    o = grammar_for(OneOf(("1", "2", "10")))
    assert isinstance(o, OneOfGrammar)
    assert accepts(o, "10") and accepts(o, "1") and not accepts(o, "3") and not accepts(o, "11")


def test_ave_accepts_gold_layout_and_refuses_foreign_attributes() -> None:
    g = AveJson(("flavor", "pack size"), ("product title",))
    assert accepts(g, AVE_GOLD)
    # attribute not in the targets, wrong order, source not a field, missing attribute
    assert not accepts(g, AVE_GOLD.replace('"flavor"', '"colour"'))
    assert feed(g, g.start(), '[{"attribute": "pack size"') is None
    assert feed(g, g.start(), '[{"attribute": "flavor", "value": "x", "source": "product brand"') is None
    assert not accepts(g, '[{"attribute": "flavor", "value": "jasmine", "source": "product title"}]')
    # a None value forces a None source, as in the gold data
    assert feed(g, g.start(), '[{"attribute": "flavor", "value": "None", "source": "product') is None


def test_ave_shortest_completion_is_valid_json() -> None:
    g = AveJson(("flavor", "pack size"), ("product title",))
    done = g.finish(g.start())
    assert done == g.spec.shortest()  # what the request budget is sized by
    assert json.loads(done) == [
        {"attribute": "flavor", "value": "None", "source": "None"},
        {"attribute": "pack size", "value": "None", "source": "None"},
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=220))
def test_every_reachable_ave_state_finishes_to_a_parseable_answer(picks: list[int]) -> None:
    """Walk the grammar with arbitrary allowed characters; the forced completion must parse."""
    g = AveJson(("color", "size", "brand"), ("product description", "product title"))
    alphabet = sorted(set('abc xyz"{}[],:N' + "colorsizebrandproduct titledescription"))
    state, text = g.start(), ""
    for k in picks:
        options = [c for c in alphabet if g.step(state, c) is not None]
        if not options:
            break
        ch = options[k % len(options)]
        state, text = g.step(state, ch), text + ch
    full = text + g.finish(state)
    assert accepts(g, full)
    assert g.finish(state).startswith(g.forced(state))  # forcing never leaves the shortest path
    parsed = get_task("AVE").parse(full)
    assert [item["attribute"] for item in parsed] == ["color", "size", "brand"]


def _ave_sample(inp: str, meta: dict | None = None) -> Sample:
    return Sample(id="a", task="AVE", instruction="i", input=inp, output="[]", split="test", meta=meta or {})


def test_ave_constraint_from_input_and_meta() -> None:
    inp = json.dumps(
        {"product title": "x", "product description": "y", "target attributes": "Flavor and Pack Size"}
    )
    ave = get_task("AVE")
    assert ave.constraint(_ave_sample(inp)) == AttributeValues(
        ("flavor", "pack size"), ("product description", "product title")
    )
    assert ave.constraint(_ave_sample(inp, {"target_attributes": ["brand"]})).attributes == ("brand",)
    assert ave.constraint(_ave_sample("not json")) is None
    assert ave.constraint(_ave_sample(json.dumps({"product title": "x"}))) is None


def test_grammar_for_refuses_what_is_not_a_spec() -> None:
    assert isinstance(grammar_for(Ranking(("A", "B"))), RankingGrammar)
    try:
        grammar_for("ranking")  # type: ignore[arg-type]
    except TypeError as exc:
        assert "ranking" in str(exc)
    else:
        raise AssertionError("a name was accepted as a spec")


def test_forced_text_is_a_prefix_of_every_completion() -> None:
    g = AveJson(("color", "size"), ("product title",))
    state = g.start()
    assert g.forced(state) == '[{"attribute": "'
    state = feed(g, state, '[{"attribute": "')
    assert g.forced(state) == 'color"'  # the only attribute allowed next
    state = feed(g, state, 'color", "value": "')
    assert g.forced(state) == ""  # the value is the model's
    state = feed(g, state, 'None", "source": "')
    assert g.forced(state) == 'None"'  # a None value forces a None source
    state = feed(g, g.start(), '[{"attribute": "color", "value": "red", "source": "')
    assert g.forced(state) == 'product title"'  # the only field name
    two = AveJson(("color",), ("product title", "product description"))
    state = feed(two, two.start(), '[{"attribute": "color", "value": "red", "source": "')
    assert two.forced(state) == "product "  # what both field names share
    assert two.forced(feed(two, state, "product d")) == 'escription"'
    r = grammar_for(Ranking(("A", "B")))
    assert r.forced(r.start()) == "" and r.forced(feed(r, r.start(), "B")) == ","
    assert r.forced(feed(r, r.start(), "B,")) == "A"
    o = grammar_for(OneOf(("very good", "very bad", "fine")))
    assert o.forced(o.start()) == "" and o.forced("v") == "ery "  # what the options left share
    assert o.forced("very g") == "ood" and o.forced("very good") == ""


def test_ranking_count_distinct_listed_numbers() -> None:
    """ShopBench retrieval: exactly ``count`` distinct listed items, multi-digit ones included;
    the shortest completion of any prefix is accepted, and the vLLM regex forbids repeats too."""
    spec = Ranking(tuple(str(i) for i in range(1, 16)), count=3)
    g = grammar_for(spec)
    for ok in ("6,9,15", "1,10,15", "15,1,2"):
        assert accepts(g, ok), ok
    for bad in ("1,1,2", "1,2", "1,2,3,4", "15,1,16", "", "1, 2,3", "01,2,3"):
        assert not accepts(g, bad), bad
    for prefix in ("", "1", "1,", "15,1", "15,14,1"):
        state = feed(g, g.start(), prefix)
        assert accepts(g, prefix + g.finish(state)), prefix
    from ecellm.infer.backends.vllm import constraint_spec
    from ecellm.infer.base import Request

    req = Request("r", "p", mode="constrained", constraint=Ranking(("1", "15"), count=2))
    regex = re.compile(constraint_spec(req)["regex"])
    assert regex.fullmatch("15,1") and regex.fullmatch("1,15") and not regex.fullmatch("15")
    assert not regex.fullmatch("15,15")
