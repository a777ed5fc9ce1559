"""MPC, PSI, QPR, AP and AG builders on real rows of ../shared/raw and on the AmazonQA fixture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm.data.builders import ag, ap, mpc, psi, qpr
from ecellm.data.readers.pqa import normalize_category
from ecellm.tasks.mpc import OPTIONS

FIX = FIXTURES / "raw_b"


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


def test_psi_labels_and_balance(raw_dir: Path) -> None:
    res = psi.build(raw_dir, _cfg(psi, sizes={"train": None, "val": None, "test": None}), 3)
    for drafts in res.drafts.values():
        for x in drafts:
            assert x.output == ("yes" if x.meta["esci_label"] == "S" else "no")
            assert list(json.loads(x.input)) == ["query", "product"]
    train = Counter(x.output for x in res.drafts[("IND", "train")])
    assert train == {"yes": 874, "no": 3473 - 874}  # natural ESCI share (README: S 874 in train)
    bal = psi.build(
        raw_dir, _cfg(psi, positive_ratio=0.5, sizes={"train": None, "val": None, "test": None}), 3
    )
    assert Counter(x.output for x in bal.drafts[("IND", "train")]) == {"yes": 874, "no": 874}
    # val/test keep the natural distribution
    assert len(bal.drafts[("IND", "test")]) == len(res.drafts[("IND", "test")])


def test_qpr_real(raw_dir: Path) -> None:
    res = qpr.build(raw_dir, _cfg(qpr), 5)
    total = 0
    for drafts in res.drafts.values():
        for x in drafts:
            inp = json.loads(x.input)
            labels = x.meta["labels"]
            assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
            assert [p.split(": ", 1)[0] for p in inp["product list"]] == list("ABCD"[: len(labels)])
            assert x.output == qpr.gold_ranking(labels)
            total += 1
    assert total == 637 + 264  # one sample per query; every query has >= 2 labels here
    assert qpr.gold_ranking(["S", "C", "E"]) == "C,A,B"
    assert qpr.gold_ranking(["I", "E"]) == "B,A"


def test_qpr_max_products(raw_dir: Path) -> None:
    res = qpr.build(raw_dir, _cfg(qpr, max_products=2, sizes={"train": 50, "val": 10, "test": 10}), 5)
    assert all(len(x.meta["labels"]) == 2 for v in res.drafts.values() for x in v)


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


def test_ag_real(raw_dir: Path) -> None:
    res = ag.build(raw_dir, _cfg(ag), 11)
    sources = Counter(x.meta["source"] for v in res.drafts.values() for x in v)
    assert set(sources) == {"hetpqa", "epqa"}
    assert (
        res.dropped["epqa question without a written answer"] == 172
    )  # 56 without any answer + 116 w/o label 2
    seen: dict[str, tuple[str, str]] = {}
    for key, drafts in res.drafts.items():
        for x in drafts:
            assert len(x.output.split()) >= 2
            assert json.loads(x.input)["document"]
            assert seen.setdefault(x.meta["asin"], key) == key  # no product crosses splits/domains


def test_ap_ag_amazonqa_fixture() -> None:
    res = ap.build(FIX, _cfg(ap), 0)
    got = {k: Counter(x.output for x in v) for k, v in res.drafts.items()}
    assert got == {
        ("IND", "train"): {"yes": 4, "no": 1},
        ("IND", "val"): {"yes": 1, "no": 1},
        ("IND", "test"): {"yes": 2},
        ("OOD", "test"): {"yes": 2, "no": 1},  # Electronics rows of every file
    }
    assert all(x.meta["source"] == "amazonqa" for v in res.drafts.values() for x in v)
    gen = ag.build(FIX, _cfg(ag), 0)
    outs = {k: sorted(x.output for x in v) for k, v in gen.drafts.items()}
    assert outs == {
        ("IND", "train"): [
            "About as loud as a vacuum cleaner.",
            "It holds at least 250 pounds according to reviewers.",
        ],
        ("IND", "val"): ["The lid is tempered glass with a steel rim."],
        ("IND", "test"): ["About two minutes on a medium setting."],
        ("OOD", "test"): ["Around twenty hours per charge."],
    }
    assert gen.dropped["amazonqa not descriptive, unanswerable or unanswered"] == 7
