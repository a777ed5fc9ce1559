"""AVE builder: the reference profile's sample unit, case and paragraph joining."""

from __future__ import annotations

import json

from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import ave


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
