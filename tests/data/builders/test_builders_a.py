"""AVE, PRP, PM, SA and SR builders on the real ../shared/raw rows and on hand-written fixtures."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
from tests.conftest import FIXTURES

from ecellm.data.builders import ave, pm, prp, sa, sr
from ecellm.data.builders.base import BuildResult
from ecellm.data.quality import normalize_key
from ecellm.tasks.prp import OPTIONS as PRP_OPTIONS
from ecellm.tasks.sa import OPTIONS as SA_OPTIONS
from ecellm.tasks.sa import STARS
from ecellm.tasks.sr import LETTERS as SR_LETTERS

FIX = FIXTURES / "raw_a"
MODULES = {"AVE": ave, "PRP": prp, "PM": pm, "SA": sa, "SR": sr}


@pytest.fixture(scope="session")
def built(raw_dir) -> dict[str, BuildResult]:
    """Each builder once on the real raw data with its defaults (seed 0)."""
    return {abbr: mod.build(raw_dir, dict(mod.DEFAULTS), 0) for abbr, mod in MODULES.items()}


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def _strict_json(text: str):
    def no_constants(name: str):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=no_constants)


@pytest.mark.parametrize("abbr", sorted(MODULES))
def test_groups_present_and_deterministic(built, raw_dir, abbr):
    result = built[abbr]
    assert result.task == abbr
    for split in ("train", "val", "test"):
        assert result.drafts[("IND", split)], f"{abbr} IND {split} empty"
    if abbr != "PM":
        assert result.drafts[("OOD", "test")], f"{abbr} OOD test empty"
    assert all(p.exists() for p in result.sources)
    again = MODULES[abbr].build(raw_dir, dict(MODULES[abbr].DEFAULTS), 0)
    assert again.drafts == result.drafts and again.dropped == result.dropped
    other = MODULES[abbr].build(raw_dir, dict(MODULES[abbr].DEFAULTS), 1)
    assert other.drafts != result.drafts


def test_ave_real_format(built):
    result = built["AVE"]
    keys_by_domain: dict[str, set[str]] = {"IND": set(), "OOD": set()}
    for (domain, _), d in _all(result):
        inp, out = _strict_json(d.input), _strict_json(d.output)
        targets = inp.pop("target attributes").split(" and ")
        assert targets == d.meta["target_attributes"] == sorted(targets)
        assert inp == {k: v.lower() for k, v in inp.items()} and "product title" in inp
        assert sorted({o["attribute"] for o in out}) == targets
        for o in out:
            assert set(o) == {"attribute", "value", "source"}
            if o["value"] == "None":
                assert o["source"] == "None" and o["attribute"] in d.meta["negative_attributes"]
            else:
                assert o["value"] == o["value"].lower() and o["value"] in inp[o["source"]]
        keys_by_domain[domain].update(targets)
    assert not keys_by_domain["IND"] & keys_by_domain["OOD"]  # OOD keys unseen in IND
    held = result.notes[0].split(": ", 1)[1].split(", ")
    assert set(held) == keys_by_domain["OOD"]
    train_ids = {d.meta["product_id"] for d in result.drafts[("IND", "train")]}
    assert not train_ids & {d.meta["product_id"] for d in result.drafts[("OOD", "test")]}


def test_ave_fixture_exact_output():
    result = ave.build(FIX, {"fractions": [1, 0, 0], "ood_keys": ["Tea variety"]}, 0)
    (d,) = result.drafts[("IND", "train")]
    assert json.loads(d.input) == {
        "product title": "acme trail runner shoes, blue mesh, size 10",
        "product description": "lightweight running shoe with a breathable mesh upper & foam sole.",
        "target attributes": "brand and closure and material",
    }
    assert json.loads(d.output) == [
        {"attribute": "brand", "value": "acme", "source": "product title"},
        {"attribute": "closure", "value": "None", "source": "None"},
        {"attribute": "material", "value": "mesh", "source": "product title"},
        {"attribute": "material", "value": "mesh", "source": "product description"},
    ]
    # the Brand negative contradicts the Brand positive; FX2's only key is held out
    assert result.dropped == {"all attributes held out for OOD": 1, "negative conflicting with a positive": 1}


def test_ave_choose_ood_keys_skips_oversized_keys():
    counts = Counter({"brand": 100, "color": 30, "size": 40, "scent": 25})
    chosen = ave.choose_ood_keys(counts, 60, seed=0, tolerance=0.1)
    assert "brand" not in chosen
    assert 54 <= sum(counts[k] for k in chosen) <= 66


def test_prp_real_format(built):
    result = built["PRP"]
    seen = set()
    for (domain, _), d in _all(result):
        inp = json.loads(d.input)
        assert list(inp) == ["Product 1:", "Product 2:"]
        t1, t2 = inp["Product 1:"], inp["Product 2:"]
        assert t1 and t2 and normalize_key(t1) < normalize_key(t2)
        assert "<" not in t1 + t2 and "&#" not in t1 + t2
        assert d.options == list(PRP_OPTIONS) and d.output in ("A", "B")  # raw data has no similar_item
        assert d.meta["category"] == ("Gift_Cards" if domain == "IND" else "Magazine_Subscriptions")
        assert d.input not in seen
        seen.add(d.input)
    assert result.dropped["pair with more than one relation"] > 0
    assert all("description" in d.meta["title_from"] for d in result.drafts[("OOD", "test")])


def test_prp_strict_titles_leave_magazine_empty(raw_dir):
    result = prp.build(raw_dir, {"title_fallback_words": 0, "ind_categories": []}, 0)
    assert result.drafts[("OOD", "test")] == []  # every Magazine partner title is an HTML fragment


def test_prp_fixture_similar_item_and_drops():
    result = prp.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": [], "fractions": [1, 0, 0]}, 0)
    got = [
        (json.loads(d.input)["Product 1:"], json.loads(d.input)["Product 2:"], d.output, d.meta["relation"])
        for d in result.drafts[("IND", "train")]
    ]
    assert got == [
        ("Alpha Gift Card", "Beta & Co Gift Card", "A", "also_buy"),
        ("Alpha Gift Card", "Delta Card", "C", "similar_item"),
        ("Alpha Gift Card", "Gamma Card", "B", "also_view"),
    ]
    assert result.dropped == {
        "duplicate meta rows": 0,
        "empty title after cleaning": 1,
        "pair with more than one relation": 1,
        "partner not in category meta": 1,
        "same title": 1,
    }


def test_pm_real_format_and_balance(built):
    result = built["PM"]
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


def test_sa_real_format(built):
    result = built["SA"]
    for (domain, _split), d in _all(result):
        assert d.options == list(SA_OPTIONS) and d.output in SA_OPTIONS
        assert STARS[d.output[0]] == d.meta["rating"]
        assert len(d.input.split()) >= 10
        cats = sa.DEFAULTS["ind_categories" if domain == "IND" else "ood_categories"]
        assert d.meta["category"] in cats
    train = Counter(d.output[0] for d in result.drafts[("IND", "train")])
    test = Counter(d.output[0] for d in result.drafts[("IND", "test")])
    assert train["A"] / sum(train.values()) > 0.75  # natural skew kept in train
    assert test["A"] / sum(test.values()) < train["A"] / sum(train.values())  # test balanced by rating
    texts = [normalize_key(d.input) for _, d in _all(result)]
    assert len(texts) == len(set(texts))  # no text in two splits or domains


def test_sa_pick_round_robin():
    rows = [{"overall": s} for s in [5] * 10 + [4] * 2 + [1]]
    got = sa.pick(rows, 6, True, random.Random(0))
    assert Counter(r["overall"] for r in got) == {5: 3, 4: 2, 1: 1}
    assert len(sa.pick(rows, 6, False, random.Random(0))) == 6


def test_sa_fixture_plain_json():
    result = sa.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": []}, 0)
    # 17 fixture reviews have (u + j) % 7 == 0 -> "Too short.", plus 4 one-word reviews
    assert result.dropped == {"fewer than min_words words": 21}
    assert sum(len(g) for g in result.drafts.values()) == 125 + 4 - 21


def test_ordinal():
    got = [sr.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112)]
    assert got == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "101st",
        "111th",
        "112th",
    ]


def _check_sr(result: BuildResult) -> None:
    by_user: dict[tuple[str, str], dict[str, object]] = {}
    for (domain, split), d in _all(result):
        history = json.loads(d.input)
        for line in history:
            assert re.match(r"^\d+(st|nd|rd|th): \S", line)
        assert len(d.options) == 20
        assert [o.split(":", 1)[0] for o in d.options] == list(SR_LETTERS)
        idx = SR_LETTERS.index(d.output)
        assert d.meta["candidates"][idx] == d.meta["target_item"]
        own = set(d.meta["history_items"]) | {d.meta["target_item"]}
        assert set(d.meta["candidates"]) & own == {d.meta["target_item"]}
        assert len({normalize_key(o.split(": ", 1)[1]) for o in d.options}) == 20
        by_user[(domain, d.meta["user_id"])] = {**by_user.get((domain, d.meta["user_id"]), {}), split: d}
    for splits in by_user.values():
        if {"train", "val", "test"} <= set(splits):
            tr, va, te = splits["train"], splits["val"], splits["test"]
            # leave-one-out: each later split's history ends with the earlier split's target
            assert va.meta["history_items"][-1] == tr.meta["target_item"]
            assert te.meta["history_items"][-1] == va.meta["target_item"]


def test_sr_real_format(built):
    _check_sr(built["SR"])
    result = built["SR"]
    assert {d.meta["category"] for d in result.drafts[("OOD", "test")]} == {"Magazine_Subscriptions"}


def test_sr_fixture_leave_one_out_and_pool():
    result = sr.build(FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": []}, 0)
    _check_sr(result)
    assert {k: len(v) for k, v in result.drafts.items()} == {
        ("IND", "train"): 25,
        ("IND", "val"): 25,
        ("IND", "test"): 25,
    }
    assert result.dropped == {
        "duplicate meta rows": 0,
        "interaction outside the k-core": 2,  # U900's two items
        "item without usable meta text": 1,  # X000000000 is not in meta
        "repeated (user, item) interaction": 1,  # U000 reviews T000000000 again later
    }
    d = next(d for d in result.drafts[("IND", "test")] if d.meta["user_id"] == "U003")
    # U003's items are (3 + 5j) % 25 at times 1000 j + 3: test target = item 23, history 3, 8, 13, 18
    assert d.meta["target_item"] == "T000000023"
    assert d.meta["history_items"] == ["T000000003", "T000000008", "T000000013", "T000000018"]
    assert (
        json.loads(d.input)[0] == "1st: Toy item 03 wooden puzzle | category: Toys > Puzzles | brand: Brand 0"
    )
    # the pool has 25 items, the user 5: the 19 negatives are 19 of the 20 others
    assert len(set(d.meta["candidates"])) == 20
    strict = sr.build(
        FIX, {"ind_categories": ["Toy_Cat"], "ood_categories": [], "title_fallback_words": 0}, 0
    )
    # without the description fallback item 24 goes, the k-core cascade leaves 20 users x 5 of 20
    # items, and 15 non-own items cannot supply 19 negatives: every sample is dropped, none is padded
    assert all(not g for g in strict.drafts.values())
    assert strict.dropped["candidate pool too small"] == 60


def test_gold_copy_scores_one(built):
    from ecellm.data.schema import Sample
    from ecellm.evaluate import evaluate

    samples = []
    for abbr, result in built.items():
        for (domain, split), group in result.drafts.items():
            if split != "test":
                continue
            for i, d in enumerate(group):
                samples.append(
                    Sample(
                        id=f"{abbr}-{domain}-{split}-{i:06d}",
                        task=abbr,
                        setting=f"{domain}_Diverse_Instruction",
                        split=split,
                        instruction="i",
                        input=d.input,
                        options=d.options,
                        output=d.output,
                        meta=d.meta,
                    )
                )
    gold = {s.id: s.output for s in samples}
    for mode in ("paper", "strict"):
        rows = evaluate(samples, gold, mode=mode)["results"]
        assert {r["task"] for r in rows} == set(MODULES)
        for r in rows:
            assert r["invalid"] == 0
            assert r["score"] == pytest.approx(1.0, abs=1e-5), (mode, r["task"], r["setting"])


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
