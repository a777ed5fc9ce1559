"""Reader for the Shopping Queries Dataset (ESCI) parquet pair.

The official products file is about 1.1 GB and the examples file 2.6 M rows, so both are read
through polars lazy scans: only the needed columns are projected and the locale / version
filters are pushed down into the parquet scan before the join. Nothing is loaded through pandas.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ecellm.errors import InputError

EXAMPLES = "shopping_queries_dataset_examples.parquet"
PRODUCTS = "shopping_queries_dataset_products.parquet"
LABELS = ("E", "S", "C", "I")

_EXAMPLE_COLS = ("example_id", "query", "query_id", "product_id", "product_locale", "esci_label", "split")
_PRODUCT_COLS = ("product_id", "product_title", "product_locale")


def esci_files(raw_dir: Path) -> tuple[Path, Path]:
    """The examples and products parquet paths under ``raw_dir/esci`` (or ``raw_dir`` itself)."""
    for base in (Path(raw_dir) / "esci", Path(raw_dir)):
        ex, pr = base / EXAMPLES, base / PRODUCTS
        if ex.exists() and pr.exists():
            return ex, pr
    raise InputError(
        f"ESCI parquet pair ({EXAMPLES}, {PRODUCTS}) not found", file=str(Path(raw_dir) / "esci")
    )


_TEXT_COLS = ("query", "product_id", "product_locale", "esci_label", "split", "product_title")


def _check_columns(path: Path, lf: pl.LazyFrame, needed: tuple[str, ...]) -> None:
    """Columns present, and text columns typed as text: a numeric ``query`` column would
    otherwise become digit strings in the prompts."""
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"unreadable parquet: {exc}", file=str(path)) from None
    for col in needed:
        if col not in schema:
            raise InputError("missing column", file=str(path), field=col)
        if col in _TEXT_COLS and schema[col] not in (pl.String, pl.Categorical, pl.Null):
            raise InputError(f"expected a text column, got {schema[col]}", file=str(path), field=col)


def read_esci(raw_dir: Path, *, locale: str = "us", version: str | None = "small") -> pl.DataFrame:
    """Judgements joined with product titles, one row per (query, product).

    Columns: example_id, query, query_id, product_id, esci_label, split, product_title. Rows are
    filtered to ``locale`` and, when ``version`` is ``"small"`` or ``"large"``, to that ESCI
    version; labels outside E/S/C/I raise :class:`InputError` naming the example. The result is
    sorted by example_id so callers never depend on file order.
    """
    ex_path, pr_path = esci_files(raw_dir)
    ex = pl.scan_parquet(ex_path)
    pr = pl.scan_parquet(pr_path)
    ver_col = f"{version}_version" if version else None
    _check_columns(ex_path, ex, _EXAMPLE_COLS + ((ver_col,) if ver_col else ()))
    _check_columns(pr_path, pr, _PRODUCT_COLS)
    ex = ex.filter(pl.col("product_locale") == locale)
    if ver_col:
        ex = ex.filter(pl.col(ver_col) == 1)
    ex = ex.select(list(_EXAMPLE_COLS))
    pr = pr.filter(pl.col("product_locale") == locale).select(list(_PRODUCT_COLS))
    df = (
        ex.join(pr, on=["product_id", "product_locale"], how="left")
        .drop("product_locale")
        .sort("example_id")
        .collect()
    )
    if df.height == 0:
        raise InputError(
            f"no judgements for locale {locale!r}" + (f" in the {version} version" if version else ""),
            file=str(ex_path),
        )
    bad = df.filter(~pl.col("esci_label").is_in(list(LABELS)) | pl.col("esci_label").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(
            f"esci_label must be one of {LABELS}, got {row['esci_label']!r}",
            file=str(ex_path),
            record=f"example_id {row['example_id']}",
            field="esci_label",
        )
    return df


def split_esci(df: pl.DataFrame, seed: int) -> dict[str, pl.DataFrame]:
    """ESCI's train split as ``train``; its test split halved by query into ``val`` and ``test``.

    Halving is by query id (sorted, then a seeded shuffle), so val and test share no query and
    neither shares one with train (ESCI's own split is query-disjoint). MPC, PSI and QPR call this
    with the same seed, so the three tasks agree on which queries are held out.
    """
    from ecellm.data.splits import halve, rng

    test = df.filter(pl.col("split") == "test")
    val_q, test_q = halve(test["query_id"].to_list(), rng(seed, "esci-halve"))
    return {
        "train": df.filter(pl.col("split") == "train"),
        "val": test.filter(pl.col("query_id").is_in(val_q)),
        "test": test.filter(pl.col("query_id").is_in(test_q)),
    }
