"""PSI builder on the real ESCI rows: labels and the positive share."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ecellm.data.builders import psi


def _cfg(module, **over):
    return {**module.DEFAULTS, **over}


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
