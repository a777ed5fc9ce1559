"""AP builder: IND/OOD by the reference's categories under the reference profile."""

from __future__ import annotations

from collections import Counter

from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import ap
from ecellm.data.builders.ap import OUT_OF_DOMAIN


def _categories(profile: str | None) -> tuple[dict, dict]:
    res = ap.build(RAW_REFERENCE, builder_options("AP", profile), 11)
    by_domain: dict[str, Counter] = {}
    for (domain, _), group in res.drafts.items():
        by_domain.setdefault(domain, Counter()).update(d.meta["category"] for d in group)
    return by_domain, res.dropped


def test_reference_profile_uses_the_reference_categories():
    lite, dropped = _categories(None)
    assert set(lite["OOD"]) == {"Electronics"} and "Beauty" in lite["IND"] and OUT_OF_DOMAIN not in dropped
    ref, dropped = _categories("reference")
    assert set(ref["IND"]) == {"Sports_and_Outdoors", "Tools_and_Home_Improvement"}
    assert set(ref["OOD"]) == {"Cell_Phones_and_Accessories"}
    assert dropped[OUT_OF_DOMAIN] == 3 * 5  # Beauty, Electronics, Home_and_Kitchen: 5 questions each


def test_ind_categories_none_keeps_every_other_category():
    assert ap.domain_of("Beauty", {"ood_categories": ["Electronics"], "ind_categories": None}) == "IND"
    assert ap.domain_of("beauty", {"ood_categories": [], "ind_categories": ["Toys"]}) is None
    phones = {"ood_categories": ["Cell_Phones_and_Accessories"]}
    assert ap.domain_of("Cell Phones and Accessories", phones) == "OOD"
