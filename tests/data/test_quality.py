"""Quality-control steps on hand-made drafts, with exact dropped counts."""

from __future__ import annotations

import json

import pytest

from ecellm.data.builders.base import Draft
from ecellm.data.quality import (
    DEFAULT_QUALITY,
    QUALITY_STEPS,
    clean_text,
    detect_language,
    english_only,
    leakage_check,
    length_limits,
    min_information,
    near_duplicates,
    normalize_key,
    normalize_text,
    run_quality,
    step_config,
    truncate_words,
)

EN = "This gift card arrived quickly and my daughter was very happy to use it at the store."
FR = "Cette carte cadeau est arrivée rapidement et ma fille était très contente de l'utiliser au magasin."
DE = "Diese Geschenkkarte kam schnell an und meine Tochter hat sie sehr gerne im Laden benutzt."


def prp(t1: str, t2: str, out: str = "A") -> Draft:
    return Draft(input=json.dumps({"Product 1:": t1, "Product 2:": t2}, ensure_ascii=False), output=out)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (None, ""),
        ('<span class="a-size-medium a-color-secondary"', ""),  # Magazine meta fragment
        (" Amazon Gift Card - Happy First Mother&#39;s Day", "Amazon Gift Card - Happy First Mother's Day"),
        ("&amp;lt;b&amp;gt;Bold&amp;lt;/b&amp;gt; text", "Bold text"),  # double-escaped tag
        ("<p>One<br/>two</p>\n\t three", "One two three"),
        ("a < b and c > d", "a < b and c > d"),  # not tags
        ("\ufb01ne\u00a0caf\u0065\u0301", "fine café"),  # NFKC ligature, nbsp, combining accent
        ("<script>var x = 1;</script>kept", "kept"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean
    assert clean_text(clean) == clean  # idempotent


def test_normalize_key_and_truncate():
    assert normalize_key("  The <b>Gift</b>-Card!! ") == "the gift card"
    assert truncate_words("a b  c d", 2) == "a b"
    assert truncate_words("a b", 5) == "a b"


def test_steps_registered_in_order():
    assert list(QUALITY_STEPS) == [
        "normalize_text",
        "min_information",
        "length_limits",
        "english_only",
        "near_duplicates",
    ]
    assert set(QUALITY_STEPS) == set(DEFAULT_QUALITY)


def test_step_config_section_or_subsection_and_per_task():
    whole = {"english_only": {"min_words": 3}, "near_duplicates": {"per_task": {"PRP": {"threshold": 0.5}}}}
    assert step_config("english_only", whole, "SA")["min_words"] == 3
    assert step_config("english_only", {"min_words": 4}, "SA")["min_words"] == 4
    assert step_config("length_limits", whole, "SA") == DEFAULT_QUALITY["length_limits"]
    nd = step_config("near_duplicates", whole, "PRP")
    assert nd["threshold"] == 0.5 and nd["method"] == "exact"
    assert step_config("near_duplicates", whole, "SA")["method"] == "shingles"  # default per_task kept
    # a per-task value (default or user) beats a step-level one; the user's per-task beats both
    assert step_config("near_duplicates", {"method": "exact"}, "SA")["method"] == "shingles"
    user_sa = {"method": "exact", "per_task": {"SA": {"method": "exact"}}}
    assert step_config("near_duplicates", user_sa, "SA")["method"] == "exact"
    assert step_config("english_only", {"enabled": True}, "PRP")["enabled"] is False


def test_normalize_text_cleans_without_dropping_and_keeps_clean_drafts_identical():
    dirty = prp("Mother&#39;s Day <b>Card</b>", "Plain")
    clean = Draft(input=json.dumps({"a": "x"}, separators=(",", ":")), output="A", options=["A: x"])
    out, n = normalize_text([dirty, clean], "PRP", {})
    assert n == 0
    assert json.loads(out[0].input) == {"Product 1:": "Mother's Day Card", "Product 2:": "Plain"}
    assert out[1] is clean  # untouched: formatting preserved byte for byte
    sa, _ = normalize_text([Draft(input="Great &amp; <i>cheap</i>", output="A: very positive")], "SA", {})
    assert sa[0].input == "Great & cheap"


def test_english_only_drops_long_foreign_text_keeps_short_titles():
    drafts = [
        Draft(input=EN, output="A: very positive"),
        Draft(input=FR, output="A: very positive"),
        Draft(input=DE, output="A: very positive"),
        prp("Maggiano's Gift Card", "Buca di Beppo Gift Card"),  # short: not judged, kept
    ]
    assert detect_language(FR)[0] == "fr" and detect_language(EN)[0] == "en"
    kept, n = english_only(drafts, "SA", {})
    assert n == 2
    assert [d.input for d in kept] == [EN, drafts[3].input]
    # with min_words lowered the Italian-looking titles are judged too and dropped
    on = {"min_words": 2, "min_confidence": 0.5, "per_task": {"PRP": {"enabled": True}}}
    kept, n = english_only(drafts[3:], "PRP", on)
    assert n == 1
    # catalog-text tasks are not judged by default (brand-heavy titles fool langid)
    assert english_only(drafts[3:], "PRP", {"min_words": 2, "min_confidence": 0.5})[1] == 0
    assert english_only([Draft(input=FR, output="A")], "SR", {})[1] == 0
    _, n = english_only(drafts, "SA", {"enabled": False})
    assert n == 0


def test_detect_language_matches_langid():
    import langid

    for text in (EN, FR, DE, "Gift card"):
        lang, conf = detect_language(text)
        assert lang == langid.classify(text)[0]


def test_length_limits_exact_counts():
    drafts = [Draft(input="x" * n, output="y" * m) for n, m in ((5, 1), (10, 1), (11, 1), (5, 0), (5, 4))]
    kept, n = length_limits(drafts, "SA", {"max_input_chars": 10, "max_output_chars": 3})
    assert n == 3  # 11-char input, empty output, 4-char output
    assert [len(d.input) for d in kept] == [5, 10]


def test_near_duplicates_exact_keeps_first():
    drafts = [prp("Card A", "Card B", "A"), prp("card a!", "CARD   B", "B"), prp("Card A", "Card C")]
    kept, n = near_duplicates(drafts, "PRP", {})
    assert n == 1 and kept == [drafts[0], drafts[2]]
    # options are part of the identity (SR: same history, different candidates)
    sr = [
        Draft(input='["1st: x"]', output="A", options=["A: p"]),
        Draft(input='["1st: x"]', output="A", options=["A: q"]),
    ]
    assert near_duplicates(sr, "SR", {})[1] == 0


def test_near_duplicates_shingles_catches_one_word_change():
    base = " ".join(f"word{i}" for i in range(60))
    near = base.replace("word30", "changed")  # 3 of 58 shingles differ: Jaccard 55/61 = 0.90
    far = " ".join(f"other{i}" for i in range(60))
    drafts = [Draft(input=base, output="A"), Draft(input=near, output="A"), Draft(input=far, output="A")]
    kept, n = near_duplicates(drafts, "SA", {"threshold": 0.9})
    assert n == 1 and kept == [drafts[0], drafts[2]]
    kept, n = near_duplicates(drafts, "SA", {"threshold": 0.95})
    assert n == 0
    kept, n = near_duplicates(drafts, "PRP", {"threshold": 0.9})
    assert n == 0
    with pytest.raises(ValueError, match="method"):
        near_duplicates(drafts, "PRP", {"method": "fuzzy"})


def test_min_information_html_titles_and_missing_fields():
    drafts = [
        prp('<span class="a-size-medium a-color-secondary"', "Real title"),  # empty after cleaning
        prp("Real title", "Another"),
        prp("-", "Another"),  # punctuation only
        Draft(input=json.dumps({"product 1": {"title": "x1"}, "product 2": {"title": None}}), output="no"),
        Draft(input=json.dumps({"question": "why?", "document": ["", "ok doc"]}), output="yes"),
        Draft(input=json.dumps({"question": "why?", "document": []}), output="yes"),
        Draft(input="fine review text", output=""),  # empty output
    ]
    assert min_information(drafts[:3], "PRP", {}) == ([drafts[1]], 2)
    assert min_information(drafts[3:4], "PM", {})[1] == 1
    assert min_information(drafts[4:6], "AP", {}) == ([drafts[4]], 1)
    assert min_information(drafts[6:], "SA", {})[1] == 1


def test_run_quality_reports_every_step():
    drafts = [
        Draft(input=EN, output="A: very positive"),
        Draft(input=EN + " ", output="B: positive"),
        Draft(input=FR, output="A: very positive"),
    ]
    kept, dropped = run_quality(drafts, "SA")
    assert dropped == {
        "normalize_text": 0,
        "min_information": 0,
        "length_limits": 0,
        "english_only": 1,
        "near_duplicates": 1,
    }
    assert len(kept) == 1


def test_leakage_check_by_normalized_input():
    train = [prp("Card A", "Card B"), Draft(input=EN, output="A: very positive")]
    test = [
        prp("card a", "card b", "B"),
        Draft(input=EN.upper(), output="C: neutral"),
        prp("Card A", "Card Z"),
    ]
    kept = leakage_check(train, test)
    assert kept == [test[2]]


def test_a_name_that_reads_as_another_tasks_alias_gets_no_task_settings() -> None:
    # the shopping family's "query-product-ranking" resolves to QPR through QPR's alias; QPR's
    # required fields ("product list") would drop every ranking record of that family
    from ecellm.data.quality import step_config

    assert step_config("min_information", {}, "QPR")["required"] == ["query", "product list"]
    assert step_config("min_information", {}, "query-product-ranking")["required"] == ["*"]
