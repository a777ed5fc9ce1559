"""The most common answer: counting rules, property-tested."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecellm.evaluate.answers import most_common
from ecellm.tasks import get_task

ANSWER = st.one_of(
    st.none(), st.sampled_from(["yes", "no", "A", "B"]), st.lists(st.sampled_from("ABCD"), max_size=4)
)


@given(st.lists(ANSWER, min_size=1, max_size=40))
def test_share_is_the_largest_count_and_the_answer_has_it(parsed):
    top = most_common(parsed)
    keys = ["invalid" if p is None else ",".join(p) if isinstance(p, list) else p for p in parsed]
    counts = Counter(keys)
    assert top["share"] == max(counts.values()) / len(parsed)
    assert counts[top["answer"]] == max(counts.values())
    assert top == most_common(list(reversed(parsed)))  # order-free, ties broken by the text


def test_no_answers_is_an_error():
    with pytest.raises(ValueError):
        most_common([])


def test_free_text_and_extraction_tasks_are_open():
    assert not get_task("AG").countable and not get_task("AVE").countable
    assert all(get_task(t).countable for t in ("PM", "SA", "SR", "QPR"))
