"""The build pipeline: raw sources -> a validated, deterministic ECInstruct build folder.

Order of work for every task: run its builder (drafts per domain and split), run the named
quality steps of :data:`ecellm.data.quality.QUALITY_STEPS` on every (domain, split) group,
remove val/test drafts whose normalized input occurs in train (leakage), then expand settings
(Diverse / Unseen / Single) and assign stable ids. Everything is written into a staging folder
that replaces ``out_dir`` only when complete, so a failed build never leaves a half-written one.

Determinism: builders and instruction draws use string-seeded ``random.Random`` streams, groups
are processed in sorted order and every file is written with sorted keys; two builds from the
same raw data, config and package versions are byte-identical, ``manifest.json`` included (it
carries no timestamp; its version block differs only when run with other package versions).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ecellm import __version__
from ecellm.data.builders import BUILDERS, BuilderMissing, load_builder
from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.schema import SETTINGS, Sample
from ecellm.data.splits import SPLIT_NAMES, rng
from ecellm.errors import InputError
from ecellm.io import atomic_open, sha256_file, write_jsonl
from ecellm.manifest import write_manifest
from ecellm.tasks import get_task

DEFAULT_CONFIG = "ecinstruct-lite.yaml"
DOMAINS = ("IND", "OOD")
_SUFFIX = {"Diverse": "", "Unseen": "-unseen", "Single": "-single"}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` applied key by key on ``base`` (nested dicts merged, everything else replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(config: str | os.PathLike[str] | dict[str, Any] | None = None) -> dict[str, Any]:
    """The default ECInstruct-lite config, overridden key by key by ``config`` (YAML path or dict)."""
    text = resources.files("ecellm").joinpath("resources", DEFAULT_CONFIG).read_text(encoding="utf-8")
    base = yaml.safe_load(text)
    if config is None:
        return base
    if isinstance(config, dict):
        return deep_merge(base, config)
    path = Path(config)
    if not path.exists():
        raise InputError("config file not found", file=str(path))
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"malformed YAML: {exc}", file=str(path), record=f"line {mark.line + 1}" if mark else None
        ) from exc
    if not isinstance(user, dict):
        raise InputError("config must be a mapping", file=str(path))
    merged = deep_merge(base, user)
    merged["_source"] = str(path)
    return merged


def task_config(abbr: str, defaults: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Builder DEFAULTS overridden by ``tasks.<ABBR>``; unknown keys are an input error."""
    section = (config.get("tasks") or {}).get(abbr) or {}
    for key in section:
        if key not in defaults:
            raise InputError(
                f"unknown key (known: {', '.join(sorted(defaults))})",
                file=config.get("_source", DEFAULT_CONFIG),
                field=f"tasks.{abbr}.{key}",
            )
    return deep_merge(defaults, section)


def run_quality(
    result: BuildResult, quality_cfg: dict[str, Any]
) -> tuple[dict[tuple[str, str], list[Draft]], dict]:
    """Quality steps per group, then leakage removal; returns kept drafts and the drop report."""
    from ecellm.data.quality import QUALITY_STEPS, leakage_check

    report: dict[str, Any] = {"builder": dict(sorted(result.dropped.items())), "steps": {}, "leakage": {}}
    kept: dict[tuple[str, str], list[Draft]] = {}
    for key in sorted(result.drafts, key=_group_order):
        drafts = list(result.drafts[key])
        counts = {}
        for name, step in QUALITY_STEPS.items():
            drafts, n = step(drafts, result.task, quality_cfg)
            counts[name] = n
        report["steps"]["/".join(key)] = counts
        kept[key] = drafts
    train = [d for (_, split), ds in kept.items() if split == "train" for d in ds]
    for key in sorted(kept, key=_group_order):
        if key[1] != "train":
            before = len(kept[key])
            kept[key] = leakage_check(train, kept[key])
            report["leakage"]["/".join(key)] = before - len(kept[key])
    return kept, report


def _group_order(key: tuple[str, str]) -> tuple[int, int]:
    return DOMAINS.index(key[0]), SPLIT_NAMES.index(key[1])


def expand(
    abbr: str, groups: dict[tuple[str, str], list[Draft]], settings: dict[str, Any], seed: int
) -> list[Sample]:
    """Samples of every setting: Diverse (seeded draw from the pool), Unseen and Single copies."""
    task = get_task(abbr)
    wanted = {
        "Diverse": settings.get("diverse_splits", list(SPLIT_NAMES)),
        "Unseen": settings.get("unseen_splits", ["test"]),
        "Single": settings.get("single_splits", ["test"]),
    }
    out: list[Sample] = []
    for kind in ("Diverse", "Unseen", "Single"):
        for domain, split in sorted(groups, key=_group_order):
            if split not in wanted[kind]:
                continue
            r = rng(seed, "instructions", abbr, domain, split)
            for i, d in enumerate(groups[(domain, split)]):
                if kind == "Diverse":
                    instruction = r.choice(task.instructions)
                else:
                    instruction = task.unseen_instruction if kind == "Unseen" else task.instructions[0]
                out.append(
                    Sample(
                        id=f"{abbr}-{domain}-{split}-{i:06d}{_SUFFIX[kind]}",
                        task=abbr,
                        setting=f"{domain}_{kind}_Instruction",
                        split=split,
                        instruction=instruction,
                        input=d.input,
                        options=list(d.options),
                        output=d.output,
                        meta=d.meta,
                    )
                )
    return out


def _sources(paths: Iterable[Path], raw_dir: Path) -> dict[str, str]:
    out = {}
    for p in sorted({Path(p) for p in paths}):
        try:
            name = p.resolve().relative_to(raw_dir.resolve()).as_posix()
        except ValueError:
            name = p.name
        out[name] = sha256_file(p)
    return out


def _stage(out_dir: Path) -> Path:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise InputError("output folder exists, is not empty and is not an ecellm build", file=str(out_dir))
    stage = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def _swap(stage: Path, out_dir: Path) -> None:
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(stage, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def build_dataset(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    tasks: Iterable[str] | None = None,
    seed: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build ECInstruct from ``raw_dir`` into ``out_dir`` and return the manifest.

    ``config``: YAML path or dict overriding the default ECInstruct-lite config; ``tasks``: a
    subset of abbreviations/names (default all ten); ``seed`` overrides the config seed. Tasks
    whose builder module is missing are skipped and listed under ``skipped`` in the manifest.
    """
    from ecellm.data import stats

    say = log or (lambda _msg: None)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise InputError("raw data folder not found", file=str(raw_dir))
    cfg = load_config(config)
    seed = int(cfg.get("seed", 0) if seed is None else seed)
    wanted = list(BUILDERS) if tasks is None else [get_task(t).abbr for t in tasks]
    samples: list[Sample] = []
    quality: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    source_paths: list[Path] = []
    for abbr in BUILDERS:
        if abbr not in wanted:
            continue
        try:
            module = load_builder(abbr)
        except BuilderMissing as exc:
            skipped[abbr] = str(exc)
            say(f"skip {abbr}: {exc}")
            continue
        result = module.build(raw_dir, task_config(abbr, module.DEFAULTS, cfg), seed)
        groups, quality[abbr] = run_quality(result, cfg.get("quality") or {})
        task_samples = expand(abbr, groups, cfg.get("settings") or {}, seed)
        samples.extend(task_samples)
        source_paths.extend(result.sources)
        if result.notes:
            notes[abbr] = list(result.notes)
        say(f"{abbr}: {len(task_samples)} samples")
    stage = _stage(out_dir)
    try:
        write_jsonl_tree(samples, stage)
        write_parquet(samples, stage / "ecinstruct.parquet")
        write_hf(samples, stage / "hf")
        public_cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
        extra = {
            "name": cfg.get("name", "ECInstruct-lite"),
            "seed": seed,
            "ecellm_version": __version__,
            "tasks": sorted({s.task for s in samples}, key=list(BUILDERS).index),
            "skipped": skipped,
            "counts": stats.counts(samples),
            "labels": stats.label_distributions(samples),
            "quality": quality,
            "sources": _sources(source_paths, raw_dir),
            "notes": notes,
            "total": len(samples),
            "layout": {
                "jsonl": "jsonl/{task}/{setting}/{split}.jsonl",
                "parquet": "ecinstruct.parquet",
                "hf": "hf",
                "report": "quality_report.md",
            },
        }
        manifest = write_manifest(
            stage / "manifest.json", kind="data-build", config=public_cfg, extra=extra, timestamp=False
        )
        with atomic_open(stage / "quality_report.md") as fh:
            fh.write(stats.quality_report(manifest))
        _swap(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    say(f"wrote {len(samples)} samples to {out_dir}")
    return manifest


def write_jsonl_tree(samples: list[Sample], root: Path) -> dict[str, int]:
    """``root/jsonl/{ABBR}/{setting}/{split}.jsonl`` per group, in sample order; returns counts."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault((s.task, s.setting, s.split), []).append(s.to_record())
    out = {}
    for (task, setting, split), recs in sorted(groups.items(), key=lambda kv: _file_order(kv[0])):
        rel = f"jsonl/{task}/{setting}/{split}.jsonl"
        out[rel] = write_jsonl(root / rel, recs)
    return out


def _file_order(key: tuple[str, str, str]) -> tuple[int, int, int]:
    task, setting, split = key
    return list(BUILDERS).index(task), SETTINGS.index(setting), SPLIT_NAMES.index(split)


def meta_json(meta: dict[str, Any]) -> str:
    """Meta as the JSON string stored in the parquet and HF columns."""
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)


COLUMNS = ("id", "task", "setting", "split", "instruction", "input", "options", "output", "meta")


def _table(samples: list[Sample]) -> Any:
    import pyarrow as pa

    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for s in samples:
        for c in COLUMNS:
            cols[c].append(meta_json(s.meta) if c == "meta" else getattr(s, c))
    schema = pa.schema([(c, pa.list_(pa.string()) if c == "options" else pa.string()) for c in COLUMNS])
    return pa.Table.from_pydict(cols, schema=schema)


def write_parquet(samples: list[Sample], path: Path) -> None:
    """All rows in one parquet file (options a list column, meta a JSON string column)."""
    import pyarrow.parquet as pq

    with atomic_open(path, "wb") as fh:
        pq.write_table(_table(samples), fh, compression="zstd")


def write_hf(samples: list[Sample], path: Path) -> None:
    """A ``datasets.DatasetDict`` with splits train/val/test, for ``datasets.load_from_disk``."""
    import datasets

    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        dd = datasets.DatasetDict(
            {
                split: datasets.Dataset(_table([s for s in samples if s.split == split]))
                for split in SPLIT_NAMES
            }
        )
        dd.save_to_disk(str(path))
    finally:
        if bars:
            datasets.enable_progress_bars()
