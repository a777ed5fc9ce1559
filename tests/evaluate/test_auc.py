"""Margin AUC of yes/no choice scores: threshold-free, offset-invariant, paired between runs."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ecellm.data.schema import Sample
from ecellm.evaluate.auc import auc_delta, margin_auc, yes_no_margins


def _pm(i: int, gold: str) -> Sample:
    return Sample(
        id=f"PM-{i:03d}",
        task="PM",
        setting="IND_Diverse_Instruction",
        instruction="i",
        input="x",
        output=gold,
    )


def test_margin_auc_counts_ordered_pairs_and_half_ties() -> None:
    assert margin_auc([3.0, 2.0, 1.0, 0.0], [True, True, False, False]) == 1.0
    assert margin_auc([0.0, 1.0, 2.0, 3.0], [True, True, False, False]) == 0.0
    assert margin_auc([1.0, 1.0], [True, False]) == 0.5
    assert math.isnan(margin_auc([1.0, 2.0], [True, True]))


@given(
    st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=2, max_size=30),
    st.floats(-10, 10, allow_nan=False),
)
def test_margin_auc_is_the_pair_fraction_and_ignores_offsets(pairs, shift) -> None:
    margins = [float(m) for m, _ in pairs]
    gold = [g for _, g in pairs]
    pos = [m for m, g in pairs if g]
    neg = [m for m, g in pairs if not g]
    auc = margin_auc(margins, gold)
    if not pos or not neg:
        assert math.isnan(auc)
        return
    want = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    assert math.isclose(auc, want)
    assert math.isclose(margin_auc([m + shift for m in margins], gold), auc)  # an offset changes nothing


def test_auc_delta_pairs_two_runs_on_the_same_samples() -> None:
    samples = [_pm(i, "yes" if i % 2 else "no") for i in range(20)]
    good = [
        {"id": s.id, "choice_scores": {"yes": float(i % 2) + 0.01 * i, "no": 0.0}}
        for i, s in enumerate(samples)
    ]
    flat = [{"id": s.id, "choice_scores": {"yes": 0.0, "no": 0.0}} for s in samples]
    assert list(yes_no_margins(samples, good)) == [("PM", "IND_Diverse_Instruction")]
    r = auc_delta(samples, flat, good, resamples=200, seed=1)[("PM", "IND_Diverse_Instruction")]
    assert r["n"] == 20 and r["before"] == 0.5 and r["after"] == 1.0
    assert r["delta_ci"][0] > 0  # paired: the same resamples for both runs
    same = auc_delta(samples, good, good, resamples=200, seed=1)[("PM", "IND_Diverse_Instruction")]
    assert same["delta_ci"] == (0.0, 0.0)
    # records without both scores (generation) are left out
    assert yes_no_margins(samples, [{"id": samples[0].id, "choice_scores": None}]) == {}
