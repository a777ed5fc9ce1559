"""Amazon-2018 reviews and metadata: real rows, own fixtures, bad input named by file, line and field."""

from __future__ import annotations

import gzip
import json

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
