"""Paired bootstrap: zero for identical runs, a positive interval for a clearly better run,
seeded and therefore repeatable."""

from __future__ import annotations

from ecellm.data.schema import Sample
from ecellm.evaluate.paired import paired_bootstrap


def _samples(n: int) -> list[Sample]:
    return [
        Sample(
            id=f"PSI-{i:03d}",
            task="PSI",
            instruction="Is it a substitute? yes or no.",
            input=f"pair {i}",
            output="yes" if i % 2 else "no",
            split="test",
        )
        for i in range(n)
    ]


def test_identical_runs_have_a_zero_delta_and_interval() -> None:
    s = _samples(20)
    preds = {x.id: "yes" for x in s}
    boot = paired_bootstrap(s, preds, preds, resamples=200, seed=1)
    mean = next(iter(boot["means"].values()))
    assert mean == {"delta": 0.0, "lo": 0.0, "hi": 0.0}


def test_a_clearly_better_run_has_an_interval_above_zero_and_is_seeded() -> None:
    s = _samples(40)
    base = {x.id: "no" for x in s}  # one label: F1 of yes = 0
    tuned = {x.id: x.output for x in s[:36]} | {x.id: "no" for x in s[36:]}
    a = paired_bootstrap(s, base, tuned, resamples=300, seed=3)
    b = paired_bootstrap(s, base, tuned, resamples=300, seed=3)
    assert a == b
    d = a["tasks"][("PSI", "IND_Diverse_Instruction")]
    assert d["lo"] > 0.5 and d["delta"] > 0.9 and d["hi"] <= 1.0
    assert a["means"]["IND_Diverse_Instruction"]["lo"] == d["lo"]
