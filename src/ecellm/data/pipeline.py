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
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ecellm import __version__
from ecellm.data import builders as registry
from ecellm.data import outdir
from ecellm.data.builders import BuilderMissing, load_builder
from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.schema import SETTINGS, Sample
from ecellm.data.splits import SPLIT_NAMES, rng
from ecellm.errors import InputError
from ecellm.io import atomic_open, sha256_file, write_jsonl
from ecellm.manifest import write_output_manifest
from ecellm.tasks import get_task

DEFAULT_CONFIG = "ecinstruct-lite.yaml"
DOMAINS = ("IND", "OOD")
_SUFFIX = {"Diverse": "", "Unseen": "-unseen", "Single": "-single"}


def default_raw_dir() -> Path | None:
    """``$ECELLM_RAW_DIR``, else ``../shared/raw`` when it exists (relative to the current folder).

    The default raw folder of the demo and the experiment runner, so both find the same data.
    """
    env = os.environ.get("ECELLM_RAW_DIR")
    if env:
        return Path(env)
    cand = Path.cwd().parent / "shared" / "raw"
    return cand if cand.exists() else None


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` applied key by key on ``base`` (nested dicts merged, everything else replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def profiles() -> list[str]:
    """Names of the build profiles shipped in ``ecellm/resources/profiles`` (``reference``)."""
    folder = resources.files("ecellm").joinpath("resources", "profiles")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(
    config: str | os.PathLike[str] | dict[str, Any] | None = None, *, profile: str | None = None
) -> dict[str, Any]:
    """The default ECInstruct-lite config, then the named build ``profile`` (a YAML layer of
    builder options, e.g. ``reference``), then ``config`` (YAML path or dict), key by key."""
    text = resources.files("ecellm").joinpath("resources", DEFAULT_CONFIG).read_text(encoding="utf-8")
    base = yaml.safe_load(text)
    if profile is not None:
        if profile not in profiles():
            raise InputError(f"unknown build profile {profile!r} (known: {', '.join(profiles())})",
                             field="--profile")
        layer = resources.files("ecellm").joinpath("resources", "profiles", f"{profile}.yaml")
        base = deep_merge(base, yaml.safe_load(layer.read_text(encoding="utf-8")))
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


def check_config(config: dict[str, Any]) -> int:
    """Top-level keys of a build config that every task uses; returns the seed.

    A string seed or a list of splits given as one string would otherwise surface deep inside a
    builder (or, worse, be accepted and change the result).
    """
    file = config.get("_source", DEFAULT_CONFIG)
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}", file=file, field="seed")
    settings = config.get("settings") or {}
    if not isinstance(settings, dict):
        raise InputError("expected a mapping", file=file, field="settings")
    for key, value in settings.items():
        if not isinstance(value, list) or any(v not in SPLIT_NAMES for v in value):
            raise InputError(
                f"expected a list of splits from {list(SPLIT_NAMES)}, got {value!r}",
                file=file,
                field=f"settings.{key}",
            )
    for key in ("tasks", "quality"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise InputError("expected a mapping", file=file, field=key)
    known = registry.builder_modules()
    for abbr in config.get("tasks") or {}:
        if abbr not in known:
            raise InputError(f"unknown task (known: {', '.join(known)})", file=file, field=f"tasks.{abbr}")
    return seed


def _type_error(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace a builder default of ``default``'s type (None: it can)."""
    if default is None or value is None and isinstance(default, str):
        return None  # free-form (the builder checks it) / "version: null" style switches
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(default, int | float):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (isinstance(default, int) and not isinstance(value, int)):
            return f"expected {'an integer' if isinstance(default, int) else 'a number'}"
        return "must not be negative" if value < 0 else None
    if isinstance(default, str):
        return None if isinstance(value, str) else "expected a string"
    if isinstance(default, list):
        if not isinstance(value, list):
            return "expected a list"
        kinds = {type(d) for d in default}
        if kinds <= {int, float}:
            ok = all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
            return None if ok and sum(value) > 0 else "expected non-negative numbers with a positive sum"
        return None if all(isinstance(v, str) for v in value) else "expected a list of strings"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "expected a mapping"
    return None


def _check_sizes(value: dict[str, Any], file: str, field: str) -> None:
    for split, n in value.items():
        if split not in SPLIT_NAMES:
            raise InputError(
                f"unknown split (known: {', '.join(SPLIT_NAMES)})", file=file, field=f"{field}.{split}"
            )
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise InputError(
                f"a size must be a non-negative integer or null, got {n!r}",
                file=file,
                field=f"{field}.{split}",
            )


def task_config(abbr: str, defaults: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Builder DEFAULTS overridden by ``tasks.<ABBR>``; unknown keys and wrong types are input errors.

    Values must have the type of the default they replace, counts must not be negative and
    ``sizes`` / ``ood_sizes`` map splits to non-negative integers (a negative size used to act as
    a Python slice end and silently drop samples).
    """
    file = config.get("_source", DEFAULT_CONFIG)
    section = (config.get("tasks") or {}).get(abbr) or {}
    if not isinstance(section, dict):
        raise InputError("expected a mapping", file=file, field=f"tasks.{abbr}")
    for key, value in section.items():
        field = f"tasks.{abbr}.{key}"
        if key not in defaults:
            raise InputError(f"unknown key (known: {', '.join(sorted(defaults))})", file=file, field=field)
        why = _type_error(defaults[key], value)
        if why:
            raise InputError(f"{why}, got {value!r}", file=file, field=field)
        if key in ("sizes", "ood_sizes"):
            _check_sizes(value, file, field)
    return deep_merge(defaults, section)


def run_quality(
    result: BuildResult, quality_cfg: dict[str, Any], on_step: Callable[[str], None] | None = None
) -> tuple[dict[tuple[str, str], list[Draft]], dict]:
    """Quality steps per group, then leakage removal; returns kept drafts and the drop report.

    ``on_step`` is told each step as it starts (``"IND/train: dedup"``), for progress display."""
    from ecellm.data.quality import QUALITY_STEPS, leakage_check

    report: dict[str, Any] = {"builder": dict(sorted(result.dropped.items())), "steps": {}, "leakage": {}}
    kept: dict[tuple[str, str], list[Draft]] = {}
    for key in sorted(result.drafts, key=_group_order):
        drafts = list(result.drafts[key])
        counts = {}
        for name, step in QUALITY_STEPS.items():
            if on_step:
                on_step(f"{'/'.join(key)}: {name}")
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


def build_dataset(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    tasks: Iterable[str] | None = None,
    seed: int | None = None,
    log: Callable[[str], None] | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Build ECInstruct from ``raw_dir`` into ``out_dir`` and return the manifest.

    ``config``: YAML path or dict overriding the default ECInstruct-lite config (after the build
    ``profile``, e.g. ``"reference"``, when one is named); ``tasks``: a
    subset of abbreviations/names (default all ten); ``seed`` overrides the config seed. Tasks
    whose builder module is missing are skipped and listed under ``skipped`` in the manifest.
    """
    say = log or (lambda _msg: None)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise InputError("raw data folder not found", file=str(raw_dir))
    cfg = load_config(config, profile=profile)
    cfg_seed = check_config(cfg)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError(f"seed must be an integer, got {seed!r}", field="seed")
    seed = cfg_seed if seed is None else seed
    known = list(registry.builder_modules())
    wanted = known if tasks is None else [get_task(t).abbr for t in tasks]
    modules: dict[str, tuple[Any, dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for abbr in known:  # every task's config is checked before any task is built
        if abbr not in wanted:
            continue
        try:
            module = load_builder(abbr)
        except BuilderMissing as exc:
            skipped[abbr] = str(exc)
            say(f"skip {abbr}: {exc}")
            continue
        modules[abbr] = (module, task_config(abbr, module.DEFAULTS, cfg))
    manifest = outdir.build_staged(
        out_dir, lambda stage: _build_into(stage, raw_dir, cfg, modules, skipped, seed, say), say
    )
    say(f"wrote {manifest['total']} samples to {out_dir}")
    return manifest


def _build_into(
    stage: Path,
    raw_dir: Path,
    cfg: dict[str, Any],
    modules: dict[str, tuple[Any, dict[str, Any]]],
    skipped: dict[str, str],
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the builders and write every output into ``stage``; returns the manifest."""
    from ecellm.data import stats

    samples: list[Sample] = []
    quality: dict[str, Any] = {}
    notes: dict[str, list[str]] = {}
    source_paths: list[Path] = []
    from ecellm.log import progress

    with progress() as bar:  # one bar over the tasks; its label names the task and quality step
        overall = bar.add_task("build", total=len(modules))
        for abbr, (module, task_cfg) in modules.items():
            bar.update(overall, description=f"{abbr}: reading raw files")
            result = module.build(raw_dir, task_cfg, seed)
            groups, quality[abbr] = run_quality(
                result,
                cfg.get("quality") or {},
                on_step=lambda step, a=abbr: bar.update(overall, description=f"{a}: quality {step}"),
            )
            task_samples = expand(abbr, groups, cfg.get("settings") or {}, seed)
            samples.extend(task_samples)
            source_paths.extend(result.sources)
            if result.notes:
                notes[abbr] = list(result.notes)
            say(f"{abbr}: {len(task_samples)} samples")
            bar.advance(overall)
        bar.update(overall, description="writing files")
    write_jsonl_tree(samples, stage)
    write_parquet(samples, stage / "ecinstruct.parquet")
    write_hf(samples, stage / "hf")
    public_cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    extra = {
        "name": cfg.get("name", "ECInstruct-lite"),
        "seed": seed,
        "ecellm_version": __version__,
        "tasks": sorted({s.task for s in samples}, key=list(registry.builder_modules()).index),
        "skipped": skipped,
        "counts": stats.counts(samples),
        "labels": stats.label_distributions(samples),
        "quality": quality,
        "sources": _sources(source_paths, raw_dir),
        "notes": notes,
        "total": len(samples),
        # every file this build writes: a later build may replace these and nothing else
        "files": sorted([*outdir.written_files(stage), "manifest.json", "quality_report.md"]),
        "layout": {
            "jsonl": "jsonl/{task}/{setting}/{split}.jsonl",
            "parquet": "ecinstruct.parquet",
            "hf": "hf",
            "report": "quality_report.md",
        },
    }
    manifest = write_output_manifest(
        stage, folder=True, kind="data-build", config=public_cfg, extra=extra, timestamp=False
    )
    with atomic_open(stage / "quality_report.md") as fh:
        fh.write(stats.quality_report(manifest))
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
    return list(registry.builder_modules()).index(task), SETTINGS.index(setting), SPLIT_NAMES.index(split)


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
