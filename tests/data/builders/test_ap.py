"""AP builder: real rows (products never cross splits, balanced answers), the AmazonQA fixture, and
IND/OOD by the reference's categories under the reference profile."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import FIXTURES, RAW_REFERENCE, builder_options

from ecellm.data.builders import ap
from ecellm.data.builders.ap import OUT_OF_DOMAIN
from ecellm.data.readers.pqa import normalize_category


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


FIX = FIXTURES / "raw_b"


def _cfg(module, **over):
    return {**module.DEFAULTS, **over}


def test_ap_real(raw_dir: Path) -> None:
    res = ap.build(raw_dir, _cfg(ap), 11)
    asins: dict[tuple[str, str], set[str]] = {}
    for key, drafts in res.drafts.items():
        for x in drafts:
            inp = json.loads(x.input)
            assert list(inp) == ["question", "document"] and 1 <= len(inp["document"]) <= 5
            assert x.output == ("yes" if 2 in x.meta["candidate_labels"] else "no")
            assert (normalize_category(x.meta["category"]) == "electronics") == (key[0] == "OOD")
            asins.setdefault(key, set()).add(x.meta["asin"])
    assert set(res.drafts) == {("IND", "train"), ("IND", "val"), ("IND", "test"), ("OOD", "test")}
    keys = list(asins)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not asins[a] & asins[b], f"product in both {a} and {b}"
    # a question's positive and negative documents have the same length
    by_q: dict[int, set[int]] = {}
    for drafts in res.drafts.values():
        for x in drafts:
            by_q.setdefault(x.meta["qid"], set()).add(len(x.meta["candidate_labels"]))
    assert all(len(v) == 1 for v in by_q.values())
    outs = Counter(x.output for v in res.drafts.values() for x in v)
    assert 0.4 < outs["yes"] / sum(outs.values()) < 0.6


def test_ap_amazonqa_fixture() -> None:
    res = ap.build(FIX, _cfg(ap), 0)
    got = {k: Counter(x.output for x in v) for k, v in res.drafts.items()}
    assert got == {
        ("IND", "train"): {"yes": 4, "no": 1},
        ("IND", "val"): {"yes": 1, "no": 1},
        ("IND", "test"): {"yes": 2},
        ("OOD", "test"): {"yes": 2, "no": 1},  # Electronics rows of every file
    }
    assert all(x.meta["source"] == "amazonqa" for v in res.drafts.values() for x in v)
