"""ESCI: US rows with titles, the query-grouped test split, missing columns."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.esci import read_esci, split_esci
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
