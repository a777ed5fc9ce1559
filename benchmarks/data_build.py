"""Data build benchmark: rows/s per builder, and build time on the raw data replicated 1x vs 10x.

The reference SR notebook rebuilt a candidate pool per user, so its cost grew quadratically with
the data. Here the raw data is replicated k times into a temp folder (every copy gets distinct
ids and a distinct text suffix, so copies are new products, users and queries rather than
duplicates the quality steps would drop), size caps are lifted, and the whole pipeline is timed.
Linear growth shows as a 10x/1x time ratio close to 10 (fixed costs push it below).

    python3 benchmarks/data_build.py [--raw-dir ../shared/raw] [--factor 10]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from ecellm.data.builders import builder_modules, load_builder
from ecellm.data.pipeline import build_dataset

ID_KEYS = {"asin", "reviewerID", "id", "also_buy", "also_view", "similar_item"}
TEXT_KEYS = {"title", "reviewText", "summary", "questionText"}
CSV_IDS = {"id", "idAmazon", "idGoogleBase", "ASIN"}
CSV_INTS = {"qid", "qa_pair_id"}
CSV_TEXT = {"title", "name", "question"}


def _tag(value: Any, c: int, text: bool) -> Any:
    if c == 0:
        return value
    if isinstance(value, list):
        return [_tag(v, c, text) for v in value]
    if isinstance(value, str):
        return f"{value} copy{c}" if text else f"{value}-{c}"
    return value


def _json_lines(src: Path, dst: Path, k: int) -> None:
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt", encoding="utf-8") as fin, opener(dst, "wt", encoding="utf-8") as fout:
        lines = [json.loads(line) for line in fin if line.strip()]
        for c in range(k):
            for rec in lines:
                out = {
                    key: _tag(v, c, key in TEXT_KEYS) if key in ID_KEYS | TEXT_KEYS else v
                    for key, v in rec.items()
                }
                fout.write(json.dumps(out) + "\n")


def _frame(
    df: pl.DataFrame, k: int, ids: set[str], text: set[str], ints: frozenset[str] | set[str] = frozenset()
) -> pl.DataFrame:
    parts = []
    for c in range(k):
        exprs = []
        for col in df.columns:
            if c and col in ints:
                exprs.append((pl.col(col).cast(pl.Int64) + c * 10_000_000).cast(df.schema[col]))
            elif c and col in ids:
                exprs.append(pl.col(col).cast(pl.String) + f"-{c}")
            elif c and col in text:
                exprs.append(pl.col(col) + f" copy{c}")
        parts.append(df.with_columns(exprs) if exprs else df)
    return pl.concat(parts)


def replicate(raw: Path, dst: Path, k: int) -> None:
    """Copy ``raw`` into ``dst`` with every source file's rows repeated ``k`` times (distinct ids)."""
    for src in sorted(p for p in raw.rglob("*") if p.is_file()):
        out = dst / src.relative_to(raw)
        out.parent.mkdir(parents=True, exist_ok=True)
        name = src.name
        if name.endswith((".json.gz", ".jsonl", ".jsonl.gz", ".json")):
            _json_lines(src, out, k)
        elif name.endswith(".parquet"):
            df = pl.read_parquet(src)
            _frame(
                df, k, {"product_id"}, {"query", "product_title"}, {"example_id", "query_id"}
            ).write_parquet(out)
        elif "hetPQA" in str(src):
            df = pl.read_csv(src, separator="\t", quote_char=None, infer_schema=False)
            _frame(df, k, CSV_IDS, CSV_TEXT).write_csv(out, separator="\t", quote_style="never")
        elif name.endswith(".csv"):
            df = pl.read_csv(src, infer_schema=False)
            _frame(df, k, CSV_IDS, CSV_TEXT, CSV_INTS).write_csv(out, quote_style="non_numeric")
        else:
            out.write_bytes(src.read_bytes())


def uncapped() -> dict[str, Any]:
    """A config with every per-split size cap of every builder lifted."""
    tasks = {}
    for abbr in builder_modules():
        defaults = load_builder(abbr).DEFAULTS
        tasks[abbr] = {
            key: dict.fromkeys(val, None)
            for key, val in defaults.items()
            if isinstance(val, dict) and set(val) <= {"train", "val", "test"}
        }
    return {"tasks": tasks}


def rows_per_second(raw: Path, cfg: dict[str, Any]) -> None:
    from ecellm.data.pipeline import load_config, task_config

    full = load_config(cfg)
    print(f"{'builder':8} {'rows':>8} {'seconds':>8} {'rows/s':>10}")
    for abbr in builder_modules():
        mod = load_builder(abbr)
        t = time.perf_counter()
        res = mod.build(raw, task_config(abbr, mod.DEFAULTS, full), 42)
        dt = time.perf_counter() - t
        n = sum(len(v) for v in res.drafts.values())
        print(f"{abbr:8} {n:>8} {dt:>8.2f} {n / dt:>10.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "raw")
    ap.add_argument("--factor", type=int, default=10)
    args = ap.parse_args()
    cfg = uncapped()
    print("== rows/s per builder (1x raw, caps lifted)")
    rows_per_second(args.raw_dir, cfg)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, args.factor):
            raw = Path(tmp) / f"raw{k}"
            replicate(args.raw_dir, raw, k)
            t = time.perf_counter()
            manifest = build_dataset(raw, Path(tmp) / f"out{k}", config=cfg)
            times[k] = time.perf_counter() - t
            print(f"== build on raw x{k}: {manifest['total']} samples in {times[k]:.1f} s")
    ratio = times[args.factor] / times[1]
    print(
        f"time ratio x{args.factor}/x1 = {ratio:.2f} (linear = {args.factor}, quadratic = {args.factor**2})"
    )


if __name__ == "__main__":
    main()
