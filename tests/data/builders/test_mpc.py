"""ESCI rows shared by MPC, PSI and QPR: the reference profile's English check on every field."""

from __future__ import annotations

import json

from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import mpc, psi
from ecellm.data.builders.mpc import NOT_ENGLISH, esci_splits


def _texts(profile: str | None) -> tuple[set[str], set[str], dict]:
    rows, dropped = esci_splits(RAW_REFERENCE, builder_options("MPC", profile), 3)
    every = [r for part in rows.values() for r in part]
    return {r["query"] for r in every}, {r["product_title"] for r in every}, dropped


def test_reference_profile_judges_every_query_and_title():
    queries, titles, dropped = _texts(None)
    german = "kabellose kopfhörer mit geräuschunterdrückung für damen und herren"  # 9 words
    spanish = "Zapatillas de correr para mujer negras"  # 6 words: too short for the lite quality step
    assert german in queries and spanish in titles and NOT_ENGLISH not in dropped
    queries, titles, dropped = _texts("reference")
    assert german not in queries and spanish not in titles
    assert dropped[NOT_ENGLISH] == 5  # the German query's four rows and the Spanish title's row
    assert len(queries) == 8 and len(titles) == 36 - 5


def test_profile_reaches_every_esci_task():
    for module, abbr in ((mpc, "MPC"), (psi, "PSI")):
        lite = module.build(RAW_REFERENCE, builder_options(abbr), 3)
        ref = module.build(RAW_REFERENCE, builder_options(abbr, "reference"), 3)
        assert ref.dropped[NOT_ENGLISH] == 5
        n = sum(len(v) for v in lite.drafts.values())
        assert sum(len(v) for v in ref.drafts.values()) == n - 5
        assert all("Zapatillas" not in json.loads(d.input).get("product title", d.input)
                   for v in ref.drafts.values() for d in v)
