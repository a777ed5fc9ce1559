"""Guesses by lookup: the tokens that followed the longest earlier occurrence of the row's tail."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ecellm.infer.lookup import Lookup


def test_a_copied_run_and_a_repetition_are_guessed() -> None:
    look = Lookup([5, 6, 7, 8, 9, 1])
    assert look.draft([6, 7], 3) == [8, 9, 1]  # copying the prompt
    assert look.draft([6, 7, 2, 3, 4, 2, 3], 2) == [4, 2]  # the row repeats itself: latest occurrence
    assert Lookup([1, 2]).draft([3], 4) == []  # nothing to look up
    assert look.draft([6, 7, 2, 3, 4, 2, 3], 0) == []


@given(
    prompt=st.lists(st.integers(0, 4), max_size=30),
    written=st.lists(st.integers(0, 4), max_size=30),
    k=st.integers(0, 6),
)
def test_a_guess_continues_the_longest_earlier_match(prompt: list[int], written: list[int], k: int) -> None:
    look = Lookup(prompt)
    for cut in range(len(written) + 1):  # the row's tokens arrive over several calls
        seq = prompt + written[:cut]
        guess = look.draft(written[:cut], k)
        assert len(guess) <= k
        # the longest tail n-gram (n <= 3) that occurred earlier with a token after it
        matches = [
            (n, at)
            for n in range(1, min(3, len(seq)) + 1)
            for at in range(n, len(seq))
            if seq[at - n : at] == seq[len(seq) - n :]
        ]
        if not matches or k == 0:
            assert guess == []
            continue
        n = max(m[0] for m in matches)
        at = max(a for m, a in matches if m == n)  # its latest occurrence
        assert guess == seq[at : at + k]
