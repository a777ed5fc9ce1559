"""Amazon-Google product pairs: real rows, prices, encodings and headers."""

from __future__ import annotations

import math

import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.amazon_google import parse_price, read_amazon, read_google, read_mapping
from ecellm.errors import InputError

FIX = FIXTURES / "raw_a"



def test_real_amazon_google(raw_dir):
    amazon, google, mapping = read_amazon(raw_dir), read_google(raw_dir), read_mapping(raw_dir)
    assert (len(amazon), len(google), len(mapping)) == (1354, 3039, 1103)
    assert all(a in amazon and g in google for a, g in mapping)
    row = amazon["A90A84F8080"]
    assert row["title"] == "clickart 950 000 - premier image pack (dvd-rom)"
    assert row["description"] is None and row["manufacturer"] == "broderbund" and row["price"] == 0.0
    g = google["http://www.google.com/base/feeds/snippets/281800806582973110"]
    assert g["title"] == "learning quickbooks 2007" and g["price"] == 38.99
    assert sum(isinstance(r["price"], str) for r in google.values()) == 61  # "69.71 gbp" kept as text
    for r in [*amazon.values(), *google.values()]:
        assert not (isinstance(r["price"], float) and math.isnan(r["price"]))


def test_price_parsing():
    assert parse_price("38.99") == 38.99
    assert parse_price("$1,299.00") == 1299.0
    assert parse_price("69.71 gbp") == "69.71 gbp"
    assert parse_price("") is None and parse_price(None) is None and parse_price("nan") is None


def test_amazon_google_cp1252_and_bad_header(tmp_path):
    d = tmp_path / "amazon_google"
    d.mkdir()
    (d / "Amazon.csv").write_bytes(
        '"id","title","description","manufacturer","price"\n"a1","caf\xe9 pro","","m","1"\n'.encode("cp1252")
    )
    assert read_amazon(tmp_path)["a1"]["title"] == "café pro"
    (d / "GoogleProducts.csv").write_text('"id","title","description","manufacturer","price"\n')
    with pytest.raises(InputError, match=r"GoogleProducts.csv, record 1, field 'name'"):
        read_google(tmp_path)
    (d / "Amzon_GoogleProducts_perfectMapping.csv").write_text('"idAmazon","idGoogleBase"\n"a1",""\n')
    with pytest.raises(InputError, match=r"record 2, field 'idGoogleBase'"):
        read_mapping(tmp_path)
