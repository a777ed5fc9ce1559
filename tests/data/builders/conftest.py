"""Fixtures the builder tests share: each builder's real-data build (made once per session) and
the two checks every builder must pass (deterministic groups; its gold answers score 1.0)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ecellm.data.builders import load_builder
from ecellm.data.builders.base import BuildResult


@pytest.fixture(scope="session")
def real_build(raw_dir) -> Callable[[str], BuildResult]:
    """``real_build(abbr)``: the builder on the real raw data with its defaults (seed 0), built on
    first use and kept for the session."""
    cache: dict[str, BuildResult] = {}

    def build(abbr: str) -> BuildResult:
        if abbr not in cache:
            mod = load_builder(abbr)
            cache[abbr] = mod.build(raw_dir, dict(mod.DEFAULTS), 0)
        return cache[abbr]

    return build


@pytest.fixture
def check_groups(raw_dir, real_build) -> Callable[[str], None]:
    """Every IND split (and the OOD test, where the task has one) is filled, the build is the
    same for the same seed and differs for another."""

    def check(abbr: str, *, ood: bool = True) -> None:
        mod, result = load_builder(abbr), real_build(abbr)
        assert result.task == abbr
        for split in ("train", "val", "test"):
            assert result.drafts[("IND", split)], f"{abbr} IND {split} empty"
        if ood:
            assert result.drafts[("OOD", "test")], f"{abbr} OOD test empty"
        assert all(p.exists() for p in result.sources)
        again = mod.build(raw_dir, dict(mod.DEFAULTS), 0)
        assert again.drafts == result.drafts and again.dropped == result.dropped
        assert mod.build(raw_dir, dict(mod.DEFAULTS), 1).drafts != result.drafts

    return check


@pytest.fixture
def check_gold_scores_one() -> Callable[[BuildResult], None]:
    """A build's test drafts, answered with their own gold output, score 1.0 with no invalid
    answer in paper and strict mode: the builder writes gold answers its task's parser reads."""
    from ecellm.data.schema import Sample
    from ecellm.evaluate import evaluate

    def check(result: BuildResult) -> None:
        samples = [
            Sample(
                id=f"{result.task}-{domain}-{split}-{i:06d}",
                task=result.task,
                setting=f"{domain}_Diverse_Instruction",
                split=split,
                instruction="i",
                input=d.input,
                options=d.options,
                output=d.output,
                meta=d.meta,
            )
            for (domain, split), group in sorted(result.drafts.items())
            if split == "test"
            for i, d in enumerate(group)
        ]
        gold = {s.id: s.output for s in samples}
        for mode in ("paper", "strict"):
            rows = evaluate(samples, gold, mode=mode)["results"]
            assert {r["task"] for r in rows} == {result.task}
            for r in rows:
                assert r["invalid"] == 0
                assert r["score"] == pytest.approx(1.0, abs=1e-5), (mode, r["task"], r["setting"])

    return check
