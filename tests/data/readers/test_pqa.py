"""EPQA and HetPQA: real rows, labels, category inference."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.pqa import infer_category, normalize_category, read_epqa, read_hetpqa
from ecellm.errors import InputError

FIX = FIXTURES / "raw_b"



def test_epqa_and_hetpqa_real(raw_dir: Path) -> None:
    ep = read_epqa(raw_dir / "pqa/ePQA/dev.csv")
    assert ep.height == 9770 and ep["qid"].n_unique() == 977
    assert set(ep["label"].unique().to_list()) == {0, 1, 2}
    het = read_hetpqa(raw_dir / "pqa/hetPQA/answer_generation/train.csv")
    assert het.height == 3693  # tab-separated, unquoted: a '"' inside a field must not swallow rows
    assert het.filter(pl.col("candidate").str.contains('"')).height > 0
    assert read_hetpqa(raw_dir / "pqa/hetPQA/answer_generation/dev.csv").height == 398


def test_epqa_bad_label_names_line(tmp_path: Path) -> None:
    p = tmp_path / "dev.csv"
    p.write_text(
        "qid,question,ASIN,candidate,source,qa_pair_id,title,label,answer\n"
        "1,q?,B1,c,review,10,T,2,a\n"
        "1,q?,B1,c2,review,11,T,7,\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"record line 3.*field 'label'"):
        read_epqa(p)


def test_infer_category() -> None:
    assert infer_category("Seagate Backup Plus 3TB Desktop External Hard Drive USB 3.0") == "Electronics"
    assert infer_category("Lodge cast iron pan with lid for the kitchen") == "Home_and_Kitchen"
    assert infer_category("") == "Other"
    assert normalize_category("Home and Kitchen") == normalize_category("home_and_kitchen")
