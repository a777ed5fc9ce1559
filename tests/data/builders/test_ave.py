"""AVE builder: real ../shared/raw rows (format, OOD keys unseen in IND, gold scores 1.0), the
hand-written fixture, and the reference profile's sample unit, case and paragraph joining."""

from __future__ import annotations

import json
from collections import Counter

from tests.conftest import FIXTURES, RAW_REFERENCE, builder_options

from ecellm.data.builders import ave
from ecellm.data.builders.base import BuildResult


def _drafts(profile: str | None) -> list:
    res = ave.build(RAW_REFERENCE, builder_options("AVE", profile, ood_sizes={"test": 0}), 5)
    return [d for group in res.drafts.values() for d in group]


def test_lite_groups_a_product_lower_cased():
    drafts = _drafts(None)
    assert len(drafts) == 10  # one sample per product
    d = next(x for x in drafts if x.meta["product_id"] == "RP00")
    assert json.loads(d.input) == {
        "product title": "acmeworks sturdy lamp navy blue edition",
        "product description": "a sturdy lamp in navy blue.",
        "target attributes": "brand and color and item weight",
    }


def test_reference_profile_one_attribute_case_kept_paragraphs_joined():
    drafts = _drafts("reference")
    assert len(drafts) == 30  # one sample per product-attribute (MAVE line)
    rp00 = [x for x in drafts if x.meta["product_id"] == "RP00"]
    assert [x.meta["target_attributes"] for x in rp00] == [["brand"], ["color"], ["item weight"]]
    inputs = [json.loads(x.input) for x in rp00]
    assert inputs[1] == {
        "product title": "AcmeWorks Sturdy Lamp, Navy Blue Edition",  # two title paragraphs, ", "
        "product description": "A sturdy lamp in Navy Blue.",
        "target attributes": "Color",
    }
    assert inputs[2]["target attributes"] == "Item Weight"
    # the output triples stay lower-cased, as the reference writes them
    color = {"attribute": "color", "value": "navy blue", "source": "product title"}
    assert json.loads(rp00[1].output) == [color]
    assert json.loads(rp00[2].output) == [{"attribute": "item weight", "value": "None", "source": "None"}]


FIX = FIXTURES / "raw_a"


def _all(result: BuildResult):
    return [(key, d) for key, group in sorted(result.drafts.items()) for d in group]


def _strict_json(text: str):
    def no_constants(name: str):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=no_constants)


def test_groups_present_and_deterministic(check_groups):
    check_groups("AVE")


def test_ave_real_format(real_build):
    result = real_build("AVE")
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


def test_gold_copy_scores_one(real_build, check_gold_scores_one):
    check_gold_scores_one(real_build("AVE"))
