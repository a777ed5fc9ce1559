"""MPC builder on real ESCI rows (splits by query, deterministic), and the ESCI rows MPC, PSI and
QPR share: the reference profile's English check on every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import RAW_REFERENCE, builder_options

from ecellm.data.builders import mpc, psi
from ecellm.data.builders.mpc import NOT_ENGLISH, esci_splits
from ecellm.tasks.mpc import OPTIONS


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


def _cfg(module, **over):
    return {**module.DEFAULTS, **over}


@pytest.fixture(scope="module")
def mpc_result(raw_dir: Path):
    return mpc.build(raw_dir, _cfg(mpc), 7)


def test_mpc_real(mpc_result) -> None:
    d = mpc_result.drafts
    assert {k: len(v) for k, v in d.items()} == {
        ("IND", "train"): 2000,
        ("IND", "val"): 200,
        ("IND", "test"): 500,
    }
    queries = {}
    for (_, split), drafts in d.items():
        for x in drafts:
            inp = json.loads(x.input)
            assert list(inp) == ["query", "product title"]
            assert x.options == list(OPTIONS)
            letter = {"E": "A", "S": "B", "C": "C", "I": "D"}[x.meta["esci_label"]]
            assert x.output == next(o for o in OPTIONS if o.startswith(letter + ":"))
            queries.setdefault(split, set()).add(x.meta["query_id"])
    assert not queries["val"] & queries["test"] and not queries["train"] & (queries["val"] | queries["test"])
    assert all(x.meta["esci_split"] == "train" for x in d[("IND", "train")])


def test_mpc_deterministic_and_seed_sensitive(raw_dir: Path, mpc_result) -> None:
    again = mpc.build(raw_dir, _cfg(mpc), 7)
    assert [x.input for x in again.drafts[("IND", "test")]] == [
        x.input for x in mpc_result.drafts[("IND", "test")]
    ]
    other = mpc.build(raw_dir, _cfg(mpc), 8)
    assert [x.input for x in other.drafts[("IND", "test")]] != [
        x.input for x in mpc_result.drafts[("IND", "test")]
    ]
