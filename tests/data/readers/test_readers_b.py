"""Readers for ESCI, PQA and AmazonQA on the real raw files and on hand-written fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.amazonqa import iter_amazonqa, read_amazonqa
from ecellm.data.readers.esci import read_esci, split_esci
from ecellm.data.readers.pqa import infer_category, normalize_category, read_epqa, read_hetpqa
from ecellm.errors import InputError

FIX = FIXTURES / "raw_b"


def test_esci_reads_us_rows_with_titles(raw_dir: Path) -> None:
    df = read_esci(raw_dir)
    assert df.height == 4900  # README: 4,900 judgements, all US, small_version = 1
    assert df["product_title"].null_count() == 0
    assert df["example_id"].to_list() == sorted(df["example_id"].to_list())
    assert dict(df.group_by("esci_label").len().iter_rows()) == {"E": 1293, "S": 1235, "C": 1247, "I": 1125}
    with pytest.raises(InputError, match="no judgements for locale 'es'"):  # an empty source
        read_esci(raw_dir, locale="es")


def test_esci_split_halves_test_by_query(raw_dir: Path) -> None:
    parts = split_esci(read_esci(raw_dir), seed=1)
    q = {k: set(v["query_id"].to_list()) for k, v in parts.items()}
    assert parts["train"].height == 3473
    assert parts["val"].height + parts["test"].height == 1427
    assert len(q["val"]) + len(q["test"]) == 264 and len(q["val"]) == 132
    assert not (q["val"] & q["test"]) and not (q["train"] & (q["val"] | q["test"]))
    again = split_esci(read_esci(raw_dir), seed=1)
    assert again["val"]["example_id"].to_list() == parts["val"]["example_id"].to_list()


def test_esci_missing_column_names_field(tmp_path: Path, raw_dir: Path) -> None:
    esci = tmp_path / "esci"
    esci.mkdir()
    ex = pl.read_parquet(raw_dir / "esci" / "shopping_queries_dataset_examples.parquet").drop("esci_label")
    ex.write_parquet(esci / "shopping_queries_dataset_examples.parquet")
    (esci / "shopping_queries_dataset_products.parquet").write_bytes(
        (raw_dir / "esci" / "shopping_queries_dataset_products.parquet").read_bytes()
    )
    with pytest.raises(InputError, match="field 'esci_label'"):
        read_esci(tmp_path)


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


def test_amazonqa_fixture() -> None:
    items = read_amazonqa(FIX)
    assert [i.split for i in items].count("train") == 6 and len(items) == 12
    blender = next(i for i in items if i.asin == "B000KTCH02")
    assert blender.best_answer() == "About as loud as a vacuum cleaner."  # 7 up-votes beat 2
    toaster = next(i for i in items if i.asin == "B000KTCH05")
    assert toaster.best_answer() == "About two minutes on a medium setting."  # empty answer skipped
    assert sum(i.is_answerable for i in items) == 9


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"asin": "B1", "category": "X", "questionText": "q", "is_answerable": "yes"}, "is_answerable"),
        (
            {
                "asin": "B1",
                "category": "X",
                "questionText": "q",
                "is_answerable": True,
                "answers": [{"x": 1}],
            },
            "answers[0].answerText",
        ),
        ({"asin": "B1", "category": "X", "is_answerable": True}, "questionText"),
    ],
)
def test_amazonqa_bad_rows_name_line_and_field(tmp_path: Path, line: dict, field: str) -> None:
    p = tmp_path / "train-qar.jsonl"
    good = {"asin": "B0", "category": "X", "questionText": "ok?", "is_answerable": False}
    p.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"record line 2.*field '{re.escape(field)}'"):
        list(iter_amazonqa(p, "train"))


def test_amazonqa_malformed_json(tmp_path: Path) -> None:
    p = tmp_path / "val-qar.jsonl"
    p.write_text('{"asin": \n', encoding="utf-8")
    with pytest.raises(InputError, match="record line 1.*malformed JSON"):
        list(iter_amazonqa(p, "val"))
