"""Raw readers never accept a mistyped field or an empty source silently.

Property tests: a valid record with one field replaced by an arbitrary JSON value of another type
must raise an InputError naming that field and the (1-based) line it sits on; valid records pass
with their strings unchanged (a list never turns into its Python repr). Empty files are errors.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecellm.data.readers import amazon_google, amazonqa, esci, mave, pqa
from ecellm.data.readers.amazon2018 import read_meta, read_reviews
from ecellm.errors import InputError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=6,
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REVIEW = {
    "reviewerID": "A1",
    "asin": "B000000001",
    "overall": 4.0,
    "reviewText": "Works well.",
    "summary": "Good",
    "unixReviewTime": 1500000000,
}
META = {
    "asin": "B000000001",
    "title": "Gift card",
    "brand": "Amazon",
    "category": ["Gift Cards"],
    "description": ["A card."],
    "price": "$10.00",
    "also_buy": ["B000000002"],
    "also_view": [],
    "similar_item": "",
}
MAVE = {
    "id": "P1",
    "category": "Shoes",
    "paragraphs": [{"text": "Red shoes", "source": "title"}],
    "attributes": [{"key": "Color", "evidences": [{"value": "Red", "pid": 0, "begin": 0, "end": 3}]}],
}
QA = {
    "questionText": "Does it fit?",
    "questionType": "yesno",
    "review_snippets": ["It fits."],
    "answers": [{"answerText": "Yes", "helpful": [1, 2]}],
    "is_answerable": True,
    "category": "Electronics",
    "asin": "B000000001",
}


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# field -> predicate of values the reader must accept for it
REVIEW_OK = {
    "reviewerID": lambda v: isinstance(v, str) and v != "",
    "asin": lambda v: isinstance(v, str) and v != "",
    "overall": lambda v: _is_num(v) and v in (1, 2, 3, 4, 5),
    "unixReviewTime": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "reviewText": lambda v: v is None or isinstance(v, str),
    "summary": lambda v: v is None or isinstance(v, str),
}
_strs = lambda v: v in (None, "") or (isinstance(v, list) and all(isinstance(x, str) for x in v))  # noqa: E731
META_OK = {
    "asin": lambda v: isinstance(v, str) and v != "",
    "title": lambda v: v is None or isinstance(v, str),
    "brand": lambda v: v is None or isinstance(v, str),
    "category": _strs,
    "description": lambda v: isinstance(v, str) or _strs(v),
    "price": lambda v: v is None or isinstance(v, str) or _is_num(v),
    "also_buy": _strs,
    "also_view": _strs,
    "similar_item": lambda v: v is None or isinstance(v, str | list),
}


_SCRATCH = tempfile.TemporaryDirectory(prefix="ecellm-readers-")  # removed at interpreter exit


def _write_lines(records: list[dict], name: str = "data.json") -> Path:
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _expect_error(read, records: list[dict], line: int, field: str) -> None:
    path = _write_lines(records)
    with pytest.raises(InputError) as err:
        list(read(path))
    assert err.value.file == str(path)
    assert err.value.record in (line, f"line {line}")
    assert err.value.field is not None and err.value.field.split(".")[0].split("[")[0] == field


@FAST
@given(field=st.sampled_from(sorted(REVIEW_OK)), value=JSON, before=st.integers(0, 3))
def test_mistyped_review_fields_are_errors(field: str, value: Any, before: int) -> None:
    bad = {**REVIEW, field: value}
    records = [REVIEW] * before + [bad]
    if REVIEW_OK[field](value):
        rows = list(read_reviews(_write_lines(records)))
        if field in ("reviewText", "summary"):
            assert rows[-1][field] == (value or "")  # the string itself, never a repr
        return
    _expect_error(read_reviews, records, before + 1, field)


@FAST
@given(field=st.sampled_from(sorted(META_OK)), value=JSON, before=st.integers(0, 3))
def test_mistyped_meta_fields_are_errors(field: str, value: Any, before: int) -> None:
    records = [META] * before + [{**META, field: value}]
    if META_OK[field](value):
        row = list(read_meta(_write_lines(records)))[-1]
        for key in ("title", "brand", "category", "description"):
            assert all(isinstance(x, str) for x in ([row[key]] if isinstance(row[key], str) else row[key]))
        return
    _expect_error(read_meta, records, before + 1, field)


def test_review_text_list_is_not_turned_into_repr() -> None:
    """The reported case: a list in reviewText used to reach 596 training inputs as "['...']"."""
    path = _write_lines([REVIEW, {**REVIEW, "reviewText": ["Great", "card"]}])
    with pytest.raises(InputError, match=r"record 2, field 'reviewText': expected a string, got list"):
        list(read_reviews(path))


MAVE_PATHS = {
    "id": ("id",),
    "category": ("category",),
    "paragraphs": ("paragraphs", 0, "text"),
    "attributes": ("attributes", 0, "key"),
    "attributes.evidences": ("attributes", 0, "evidences", 0, "begin"),
}


@FAST
@given(target=st.sampled_from(sorted(MAVE_PATHS)), value=JSON, before=st.integers(0, 2))
def test_mistyped_mave_fields_are_errors(target: str, value: Any, before: int) -> None:
    bad = copy.deepcopy(MAVE)
    *parents, last = MAVE_PATHS[target]
    node: Any = bad
    for key in parents:
        node = node[key]
    node[last] = value
    ok = {
        "id": isinstance(value, str) and value != "",
        "category": isinstance(value, str),
        "paragraphs": isinstance(value, str) and len(value) >= 3,  # the evidence spans 0..3
        "attributes": isinstance(value, str) and value != "",
        "attributes.evidences": type(value) is int and 0 <= value <= 3,  # begin <= end = 3
    }[target]
    records = [MAVE] * before + [bad]
    if ok:
        assert len(list(mave.read_mave(_write_lines(records)))) == before + 1
        return
    path = _write_lines(records)
    with pytest.raises(InputError) as err:
        list(mave.read_mave(path))
    assert err.value.record == before + 1 and err.value.field is not None


QA_OK = {
    "questionText": lambda v: isinstance(v, str),
    "category": lambda v: isinstance(v, str),
    "asin": lambda v: isinstance(v, str),
    "questionType": lambda v: v is None or isinstance(v, str),
    "review_snippets": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "is_answerable": lambda v: isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)),
}


@FAST
@given(field=st.sampled_from(sorted(QA_OK)), value=JSON, before=st.integers(0, 2))
def test_mistyped_amazonqa_fields_are_errors(field: str, value: Any, before: int) -> None:
    records = [QA] * before + [{**QA, field: value}]
    path = _write_lines(records, "train-qar.jsonl")
    if QA_OK[field](value):
        items = list(amazonqa.iter_amazonqa(path, "train"))
        assert isinstance(items[-1].question_type, str)
        return
    with pytest.raises(InputError) as err:
        list(amazonqa.iter_amazonqa(path, "train"))
    assert err.value.record == f"line {before + 1}" and err.value.field == field


# --- empty sources --------------------------------------------------------------------------


def test_empty_line_files_are_errors(tmp_path: Path) -> None:
    for name, read in (
        ("Gift_Cards_5.json", read_reviews),
        ("meta_Gift_Cards.json", read_meta),
        ("mave_positives.jsonl", mave.read_mave),
        ("mave_negatives.jsonl", mave.read_mave),
        ("train-qar.jsonl", lambda p: amazonqa.iter_amazonqa(p, "train")),
    ):
        path = tmp_path / name
        path.write_text("\n\n", encoding="utf-8")  # blank lines only: no record
        with pytest.raises(InputError, match="empty source") as err:
            list(read(path))
        assert err.value.file == str(path)


def test_header_only_csv_files_are_errors(tmp_path: Path) -> None:
    ag = tmp_path / "amazon_google"
    ag.mkdir()
    (ag / "Amazon.csv").write_text("id,title,description,manufacturer,price\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty source"):
        amazon_google.read_amazon(tmp_path)
    epqa = tmp_path / "dev.csv"
    epqa.write_text(",".join(pqa.EPQA_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty source"):
        pqa.read_epqa(epqa)
    het = tmp_path / "train.csv"
    het.write_text("\t".join(pqa.HETPQA_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty source"):
        pqa.read_hetpqa(het)


def _esci(tmp_path: Path, query: list, rows: int = 1) -> Path:
    d = tmp_path / "esci"
    d.mkdir(exist_ok=True)
    pl.DataFrame(
        {
            "example_id": list(range(rows)),
            "query": query,
            "query_id": [1] * rows,
            "product_id": ["P1"] * rows,
            "product_locale": ["us"] * rows,
            "esci_label": ["E"] * rows,
            "small_version": [1] * rows,
            "large_version": [1] * rows,
            "split": ["train"] * rows,
        }
    ).write_parquet(d / esci.EXAMPLES)
    products = {"product_id": ["P1"], "product_title": ["Red shoes"], "product_locale": ["us"]}
    pl.DataFrame(products).write_parquet(d / esci.PRODUCTS)
    return d


def test_esci_numeric_query_column_and_empty_selection_are_errors(tmp_path: Path) -> None:
    _esci(tmp_path, ["red shoes"])
    assert esci.read_esci(tmp_path).height == 1
    with pytest.raises(InputError, match="no judgements for locale 'fr'"):
        esci.read_esci(tmp_path, locale="fr")
    _esci(tmp_path, [12345])
    with pytest.raises(InputError, match=r"field 'query': expected a text column"):
        esci.read_esci(tmp_path)
