"""Readers for Amazon-2018, Amazon-Google and MAVE: real rows, own fixtures, and bad input."""

from __future__ import annotations

import gzip
import json
import math
import shutil

import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.amazon2018 import (
    load_meta,
    meta_path,
    meta_title,
    parse_similar_item,
    read_meta,
    read_reviews,
    reviews_path,
)
from ecellm.data.readers.amazon_google import parse_price, read_amazon, read_google, read_mapping
from ecellm.data.readers.mave import mave_files, read_mave
from ecellm.errors import InputError

FIX = FIXTURES / "raw_a"


def test_real_reviews_gz(raw_dir):
    rows = list(read_reviews(reviews_path(raw_dir, "Gift_Cards")))
    assert len(rows) == 2972
    assert {r["overall"] for r in rows} == {1, 2, 3, 4, 5}
    assert len({r["reviewerID"] for r in rows}) == 458 and len({r["asin"] for r in rows}) == 148
    assert all(isinstance(r["unixReviewTime"], int) for r in rows)
    assert sum(r["overall"] == 5 for r in rows) == 2752  # the 93% five-star skew


def test_real_meta_duplicates_and_html_titles(raw_dir):
    path = meta_path(raw_dir, "Magazine_Subscriptions")
    assert sum(1 for _ in read_meta(path)) == 3385
    meta, dups = load_meta(path)
    assert len(meta) == 2320 and dups == 1065
    row = meta["B00005N7NQ"]  # REASON magazine: HTML-fragment title, real description
    assert meta_title(row) == ("", "")
    title, origin = meta_title(row, fallback_words=5)
    assert (title, origin) == ("REASON is edited for people", "description")
    gift, _ = load_meta(meta_path(raw_dir, "Gift_Cards"))
    assert len(gift) == 1547
    assert sum(bool(r["also_buy"]) for r in gift.values()) == 336
    assert sum(bool(r["also_view"]) for r in gift.values()) == 880
    assert not any(r["similar_item"] for r in gift.values())


def test_plain_json_fixture_equals_gzipped_copy(tmp_path):
    plain = reviews_path(FIX, "Toy_Cat")
    assert plain.name == "Toy_Cat_5.json"
    gz_dir = tmp_path / "amazon_reviews_2018" / "reviews"
    gz_dir.mkdir(parents=True)
    with gzip.open(gz_dir / "Toy_Cat_5.json.gz", "wb") as fh:
        fh.write(plain.read_bytes())
    assert reviews_path(tmp_path, "Toy_Cat").name == "Toy_Cat_5.json.gz"
    assert list(read_reviews(plain)) == list(read_reviews(reviews_path(tmp_path, "Toy_Cat")))


def test_similar_item_forms():
    html = ' class="comparison_table"><a href="/dp/B000000004/ref=x">a</a><a href="/dp/B000000005/">b</a>'
    assert parse_similar_item(html) == ["B000000004", "B000000005"]
    assert parse_similar_item(["B1", {"asin": "B2"}, "", "B1"]) == ["B1", "B2"]
    assert parse_similar_item("") == [] and parse_similar_item(None) == []
    rows = {r["asin"]: r for r in read_meta(meta_path(FIX, "Toy_Cat"))}
    assert rows["P000000001"]["similar_item"] == ["P000000004"]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("{not json", None, "malformed JSON"),
        (json.dumps({"reviewerID": "U", "asin": "A", "unixReviewTime": 1}), "overall", "missing"),
        (json.dumps({"reviewerID": "U", "asin": "A", "overall": 7, "unixReviewTime": 1}), "overall", "1-5"),
        (
            json.dumps({"reviewerID": "U", "asin": "A", "overall": "x", "unixReviewTime": 1}),
            "overall",
            "number",
        ),
    ],
)
def test_bad_review_lines_name_file_line_field(tmp_path, line, field, message):
    good = json.dumps({"reviewerID": "U", "asin": "A", "overall": 5, "unixReviewTime": 1})
    path = tmp_path / "Bad_5.json"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(InputError) as err:
        list(read_reviews(path))
    assert err.value.file == str(path) and err.value.record == 3 and err.value.field == field
    assert message in str(err.value)


def test_bad_meta_relation_type(tmp_path):
    path = tmp_path / "meta_X.json"
    path.write_text(json.dumps({"asin": "A1", "title": "t", "also_buy": "A2"}) + "\n")
    with pytest.raises(InputError, match=r"record 1, field 'also_buy'"):
        list(read_meta(path))


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="Nope_5.json"):
        reviews_path(tmp_path, "Nope")


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


def test_real_mave(raw_dir):
    pos, neg = mave_files(raw_dir)
    positives, negatives = list(read_mave(pos)), list(read_mave(neg))
    assert (len(positives), len(negatives)) == (9811, 1942)
    assert all(not a["evidences"] for r in negatives for a in r["attributes"])
    assert len({r["id"] for r in positives} | {r["id"] for r in negatives}) == 1943
    ev = positives[0]["attributes"][0]["evidences"][0]
    text = positives[0]["paragraphs"][ev["pid"]]["text"]
    assert text[ev["begin"] : ev["end"]] == ev["value"] == "Ellie Shoes"


def test_mave_bad_offsets(tmp_path):
    src = FIX / "mave"
    shutil.copytree(src, tmp_path / "mave")
    bad = json.loads((src / "mave_positives.jsonl").read_text().splitlines()[0])
    bad["attributes"][0]["evidences"][0]["pid"] = 5
    with (tmp_path / "mave" / "mave_positives.jsonl").open("a") as fh:
        fh.write(json.dumps(bad) + "\n")
    with pytest.raises(InputError, match=r"mave_positives.jsonl, record 4, field 'evidences.pid'"):
        list(read_mave(mave_files(tmp_path)[0]))
