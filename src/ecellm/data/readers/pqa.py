"""Readers for amazon-science/contextual-product-qa (ePQA and hetPQA), plus a category guesser.

- ``ePQA/dev.csv`` is an ordinary quoted CSV (qid, question, ASIN, candidate, source, qa_pair_id,
  title, label, answer); ``label`` is 0 irrelevant, 1 partially relevant, 2 answers the question.
- ``hetPQA/answer_generation/{train,dev}.csv`` are *tab*-separated despite the extension and use
  no quoting at all (hundreds of fields contain a bare ``"``), so they are read with quoting off.

PQA has no category column, yet AP and AG need in-domain and out-of-domain product categories.
:func:`infer_category` assigns a coarse category from product text with a fixed keyword lexicon:
deterministic, inspectable, and good enough to hold out a product family (documented in
docs/data.md as an inferred, approximate domain split).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ecellm.errors import InputError

EPQA_COLUMNS = ("qid", "question", "ASIN", "candidate", "source", "qa_pair_id", "title", "label", "answer")
HETPQA_COLUMNS = ("ASIN", "question", "candidate", "answer", "source")

# Coarse categories named as in Amazon's top-level taxonomy (AmazonQA uses the same names).
_LEXICON: dict[str, str] = {
    "Electronics": (
        "usb, hdmi, camera, speaker, speakers, headphone, headphones, earbuds, laptop, computer, tablet, "
        "ipad, iphone, phone, charger, cable, router, wifi, bluetooth, tv, monitor, keyboard, mouse, "
        "xbox, playstation, ps3, ps4, nintendo, wii, gamecube, dvd, blu-ray, receiver, hard drive, ssd, "
        "memory card, printer, ink, software, antivirus, windows, mac, stereo, amplifier, projector, gps, "
        "battery, batteries, headset, earphones, audio, video, hdtv, smartphone, controller, console, "
        "drone, quadcopter, radio, microphone, lens"
    ),
    "Home_and_Kitchen": (
        "kitchen, cookware, pan, pot, knife, coffee, blender, mattress, pillow, sheet, sheets, towel, "
        "curtain, rug, lamp, table, chair, sofa, shelf, storage, vacuum, refrigerator, fridge, "
        "dishwasher, microwave, oven, toaster, washer, dryer, ice maker, heater, fan, air purifier, "
        "humidifier, bedding, furniture"
    ),
    "Tools_and_Home_Improvement": (
        "drill, saw, wrench, screwdriver, hammer, tool, tools, faucet, valve, pipe, generator, ladder, "
        "paint, sander, socket, bolt, screw, hose, filter, light bulb, led bulb, switch, outlet, "
        "thermostat, register"
    ),
    "Sports_and_Outdoors": (
        "bike, bicycle, camping, tent, fishing, golf, yoga, fitness, exercise, hiking, kayak, gun, rifle, "
        "holster, hunting, ball, treadmill, backpack, fire pit"
    ),
    "Toys_and_Games": (
        "toy, toys, lego, doll, puzzle, game, games, kids, baby, crib, stroller, plush, board game, "
        "cards, playset"
    ),
    "Beauty_and_Health": (
        "shampoo, conditioner, lotion, cream, skin, hair, vitamin, supplement, tablets, capsules, mask, "
        "makeup, razor, toothbrush, perfume, butter, oil, soap"
    ),
    "Clothing_Shoes_and_Jewelry": (
        "shirt, shoe, shoes, boot, boots, socks, jacket, dress, pants, watch, ring, necklace, bracelet, "
        "slippers, hat, sunglasses, jeans, sweater"
    ),
    "Grocery": "tea, chocolate, cookies, snack, rice, sauce, candy, coffee beans, flour",
}
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    c: tuple(w.strip() for w in t.split(",")) for c, t in _LEXICON.items()
}
_PATTERNS = {
    cat: re.compile(r"\b(?:" + "|".join(re.escape(k) for k in kws) + r")\b")
    for cat, kws in CATEGORY_KEYWORDS.items()
}


def infer_category(text: str | None) -> str:
    """The lexicon category with the most distinct keyword hits in ``text`` (ties: lexicon order).

    Returns ``"Other"`` when nothing matches. Pure function of the text, so the domain split is
    reproducible and independent of the seed.
    """
    low = (text or "").lower()
    best, best_hits = "Other", 0
    for cat, pat in _PATTERNS.items():
        hits = len(set(pat.findall(low)))
        if hits > best_hits:
            best, best_hits = cat, hits
    return best


def normalize_category(name: str | None) -> str:
    """``"Home and Kitchen"``, ``"home_and_kitchen"`` -> ``"home_and_kitchen"`` for comparisons."""
    return re.sub(r"[^a-z0-9]+", "_", (name or "").lower()).strip("_")


def _require(path: Path, df_cols: list[str], needed: tuple[str, ...]) -> None:
    for col in needed:
        if col not in df_cols:
            raise InputError(f"missing column (found: {', '.join(df_cols)})", file=str(path), field=col)


def read_epqa(path: Path) -> pl.DataFrame:
    """ePQA candidates, one row per (question, candidate), sorted by (qid, qa_pair_id).

    ``label`` must be 0, 1 or 2; a bad value raises :class:`InputError` naming the CSV line.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        lf = pl.scan_csv(path, infer_schema=False)  # all strings: we validate types ourselves
        _require(path, lf.collect_schema().names(), EPQA_COLUMNS)
        df = lf.select(list(EPQA_COLUMNS)).with_row_index("line", offset=2).collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"unreadable CSV: {exc}", file=str(path)) from exc
    if df.height == 0:
        raise InputError("no rows in the file (empty source)", file=str(path))
    df = df.with_columns(
        pl.col("qid").cast(pl.Int64, strict=False),
        pl.col("qa_pair_id").cast(pl.Int64, strict=False),
        pl.col("label").cast(pl.Int64, strict=False),
    )
    for col in ("qid", "qa_pair_id", "label"):
        bad = df.filter(pl.col(col).is_null())
        if bad.height:
            raise InputError("not an integer", file=str(path), record=f"line {bad['line'][0]}", field=col)
    bad = df.filter(~pl.col("label").is_in([0, 1, 2]))
    if bad.height:
        raise InputError(
            "label must be 0, 1 or 2", file=str(path), record=f"line {bad['line'][0]}", field="label"
        )
    return df.sort("qid", "qa_pair_id")


def read_hetpqa(path: Path) -> pl.DataFrame:
    """hetPQA answer-generation rows (tab-separated, no quoting), with their 1-based file line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        lf = pl.scan_csv(path, separator="\t", quote_char=None, infer_schema=False)
        _require(path, lf.collect_schema().names(), HETPQA_COLUMNS)
        df = lf.select(list(HETPQA_COLUMNS)).with_row_index("line", offset=2).collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"unreadable tab-separated file: {exc}", file=str(path)) from exc
    if df.height == 0:
        raise InputError("no rows in the file (empty source)", file=str(path))
    return df
