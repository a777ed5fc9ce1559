"""PM builder on the real ../shared/raw rows: format, balance and hard negatives."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ecellm.data.builders import pm
from ecellm.data.builders.base import BuildResult
from ecellm.data.quality import normalize_key


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def _strict_json(text: str):
    def no_constants(name: str):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=no_constants)


def test_groups_present_and_deterministic(check_groups):
    check_groups("PM", ood=False)


def test_pm_real_format_and_balance(real_build):
    result = real_build("PM")
    amazon_by_split = {}
    for (_, split), group in sorted(result.drafts.items()):
        assert Counter(d.output for d in group) == {"yes": len(group) // 2, "no": len(group) // 2}
        amazon_by_split[split] = {d.meta["amazon_id"] for d in group}
        for d in group:
            assert "NaN" not in d.input
            inp = _strict_json(d.input)
            assert list(inp) == ["product 1", "product 2"]
            for p in inp.values():
                assert list(p) == ["title", "description", "manufacturer", "price"] and p["title"]
                assert p["description"] is None or len(p["description"].split()) <= 50
    assert not amazon_by_split["train"] & amazon_by_split["test"]
    assert not amazon_by_split["train"] & amazon_by_split["val"]
    sizes = {k: len(v) for k, v in result.drafts.items()}
    assert sizes[("IND", "val")] == 200 and sizes[("IND", "train")] > 1700


def test_pm_hard_negatives_overlap(raw_dir):
    from ecellm.data.readers.amazon_google import read_google

    google = read_google(raw_dir)
    result = pm.build(raw_dir, {"negatives": "hard"}, 0)
    hard = [d for _, d in _all(result) if d.meta["pair_kind"] == "hard"]
    assert len(hard) > 500
    for d in hard:
        inp = json.loads(d.input)
        a, g = inp["product 1"], inp["product 2"]
        ta = {t for t in normalize_key(a["title"]).split() if len(t) > 1}
        tg = {t for t in normalize_key(google[d.meta["google_id"]]["title"]).split() if len(t) > 1}
        same_manu = a["manufacturer"] and normalize_key(a["manufacturer"]) == normalize_key(g["manufacturer"])
        assert same_manu or len(ta & tg) / len(ta | tg) >= 0.3
    with pytest.raises(ValueError, match="negatives"):
        pm.build(raw_dir, {"negatives": "nearest"}, 0)


def test_pm_hard_negatives_defeat_the_title_overlap_shortcut(raw_dir):
    """A title-Jaccard threshold fitted on train answers random-negative pairs almost perfectly;
    with hard/nearest negatives it must not, and every fallback negative shares a title token."""

    def jac(d):
        inp = json.loads(d.input)
        a, b = (
            {t for t in normalize_key(inp[k]["title"]).split() if len(t) > 1}
            for k in ("product 1", "product 2")
        )
        return len(a & b) / len(a | b) if a | b else 0.0

    result = pm.build(raw_dir, {"negatives": "hard"}, 0)
    kinds = [d.meta["pair_kind"] for _, d in _all(result)]
    assert kinds.count("nearest") > 100 and kinds.count("random") < 0.05 * kinds.count("hard")
    assert all(jac(d) > 0 for _, d in _all(result) if d.meta["pair_kind"] == "nearest")
    train = sorted((jac(d), d.output == "yes") for d in result.drafts[("IND", "train")])
    _, thr = max((sum((j >= t) == y for j, y in train) / len(train), t) for t, _ in train)
    test = result.drafts[("IND", "test")]
    assert sum((jac(d) >= thr) == (d.output == "yes") for d in test) / len(test) < 0.8


def test_gold_copy_scores_one(real_build, check_gold_scores_one):
    check_gold_scores_one(real_build("PM"))
