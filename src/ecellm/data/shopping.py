"""The shopping family build: raw sources -> ShopBench-format train/val/test files beside ECInstruct.

``ecellm data build --family shopping --raw-dir RAW --out build/shopping`` runs the four family
builders (``ecellm.data.builders.shopping_*``: multiple choice, ranking, retrieval, generation),
then per task and split the ECInstruct quality steps that apply to whole-prompt records
(``min_information``, ``length_limits``, ``english_only`` on prose only, ``near_duplicates``;
the text was cleaned field by field by the builders, so ``normalize_text``, which would fold the
prompts' line breaks, is not run), then drops val/test records whose query, question or review
occurs in train. Every record is read back through the ShopBench loader before the folder is
swapped in, so a build never holds a record the benchmark reader refuses.

Output (a data-build folder, replaced only under the rules of :mod:`ecellm.data.outdir`):
``{train,val,test}.jsonl`` (ShopBench records with ``id``), ``manifest.json`` (counts, drops and
label balance per task) and ``quality_report.md``. Deterministic: seeded string streams, sorted
inputs, sorted keys, no timestamps; two builds are byte-identical.
"""

from __future__ import annotations

import importlib
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ecellm import __version__
from ecellm.data import outdir
from ecellm.data.builders.base import Draft
from ecellm.data.builders.shopping_common import balanced_take
from ecellm.data.splits import SPLIT_NAMES, rng
from ecellm.errors import InputError
from ecellm.io import atomic_open, write_jsonl
from ecellm.manifest import write_output_manifest

#: Family (the ShopBench task type) -> builder module.
FAMILY_BUILDERS: dict[str, str] = {
    "multiple-choice": "ecellm.data.builders.shopping_mc",
    "ranking": "ecellm.data.builders.shopping_ranking",
    "retrieval": "ecellm.data.builders.shopping_retrieval",
    "generation": "ecellm.data.builders.shopping_generation",
}
STEPS = ("min_information", "length_limits", "english_only", "near_duplicates")
DEFAULTS: dict[str, Any] = {"name": "shopping", "seed": 0, "fractions": [0.8, 0.1, 0.1], "families": {}}


def load_config(config: str | os.PathLike[str] | dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS overridden by a YAML file or dict (``families.<family>.<key>``, ``quality``)."""
    from ecellm.data.pipeline import deep_merge

    if config is None:
        return dict(DEFAULTS)
    if isinstance(config, dict):
        return deep_merge(DEFAULTS, config)
    path = Path(config)
    if not path.exists():
        raise InputError("config file not found", file=str(path))
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML: {exc}", file=str(path)) from exc
    if not isinstance(user, dict):
        raise InputError("config must be a mapping", file=str(path))
    return {**deep_merge(DEFAULTS, user), "_source": str(path)}


def family_configs(cfg: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each family's builder module and its checked config (unknown keys and types refused)."""
    from ecellm.data.pipeline import task_config

    file = cfg.get("_source", "<config>")
    families = cfg.get("families") or {}
    if not isinstance(families, dict):
        raise InputError("expected a mapping", file=file, field="families")
    for name in families:
        if name not in FAMILY_BUILDERS:
            known = ", ".join(FAMILY_BUILDERS)
            raise InputError(f"unknown family (known: {known})", file=file, field=f"families.{name}")
    out = {}
    for name, module_name in FAMILY_BUILDERS.items():
        module = importlib.import_module(module_name)
        try:
            checked = task_config(name, module.DEFAULTS, {"tasks": families, "_source": file})
        except InputError as exc:  # the shared checker says tasks.<name>; here it is families.<name>
            where = (exc.field or "").replace("tasks.", "families.", 1)
            raise InputError(exc.detail, file=exc.file, record=exc.record, field=where) from None
        out[name] = (module, {**checked, "fractions": cfg.get("fractions") or DEFAULTS["fractions"]})
    return out


def _quality(
    items: list[Any], task: str, cfg: dict[str, Any], prose: bool
) -> tuple[list[Any], dict[str, int]]:
    """The ECInstruct quality steps on one (task, split) group; language id on prose tasks only."""
    from ecellm.data.quality import QUALITY_STEPS

    drafts = [
        Draft(input=json.dumps(it.fields, ensure_ascii=False), output=it.gold, meta={"i": i})
        for i, it in enumerate(items)
    ]
    counts = {}
    for name in STEPS:
        if name == "english_only" and not prose:
            counts[name] = 0
            continue
        drafts, counts[name] = QUALITY_STEPS[name](drafts, task, cfg)
    return [items[d.meta["i"]] for d in drafts], counts


def _controlled(
    task: str, by_split: dict[str, list[Any]], cfg: dict[str, Any], prose: bool
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Quality steps on each split, then the leakage check on val and test; kept items and drops."""
    report: dict[str, Any] = {"steps": {}, "leakage": {}}
    kept = {}
    for split in SPLIT_NAMES:
        kept[split], report["steps"][split] = _quality(by_split.get(split, []), task, cfg, prose)
    for split in ("val", "test"):
        before = len(kept[split])
        kept[split] = _leakage(kept["train"], kept[split])
        report["leakage"][split] = before - len(kept[split])
    return kept, report


def _leakage(train: list[Any], other: list[Any]) -> list[Any]:
    from ecellm.data.quality import normalize_key

    keys = {normalize_key(it.leak_key) for it in train}
    return [it for it in other if normalize_key(it.leak_key) not in keys]


def build_shopping(
    raw_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    seed: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the four families into ``out_dir`` and return the manifest (see the module docstring)."""
    say = log or (lambda _msg: None)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise InputError("raw data folder not found", file=str(raw_dir))
    cfg = load_config(config)
    seed = cfg.get("seed", 0) if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}", field="seed")
    modules = family_configs(cfg)
    manifest = outdir.build_staged(
        out_dir, lambda stage: _build_into(stage, raw_dir, cfg, modules, seed, say), say
    )
    say(f"wrote {manifest['total']} shopping records to {out_dir}")
    return manifest


def _build_into(
    stage: Path,
    raw_dir: Path,
    cfg: dict[str, Any],
    modules: dict[str, Any],
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from ecellm.data.pipeline import _sources

    quality_cfg = cfg.get("quality") or {}
    per_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLIT_NAMES}
    counts: dict[str, dict[str, int]] = {}
    labels: dict[str, dict[str, dict[str, int]]] = {}
    quality: dict[str, Any] = {}
    dropped: dict[str, dict[str, int]] = {}
    families: dict[str, list[str]] = {}
    sources: list[Path] = []
    notes: dict[str, list[str]] = {}
    for family, (module, fam_cfg) in modules.items():
        say(f"{family}: reading raw files")
        result = module.build(raw_dir, fam_cfg, seed)
        sources.extend(result.sources)
        if result.notes:
            notes[family] = list(result.notes)
        prose = set(getattr(module, "PROSE_TASKS", ()))
        families[family] = list(result.items)
        dropped[family] = dict(sorted(result.dropped.items()))
        for task, by_split in result.items.items():
            kept, quality[task] = _controlled(task, by_split, quality_cfg, task in prose)
            limit = result.limits.get(task) or {}
            for split in SPLIT_NAMES:
                size = (limit.get("sizes") or {}).get(split)
                r = rng(seed, "shopping", task, "cap", split)
                kept[split] = balanced_take(kept[split], size, r, bool(limit.get("balance")))
            counts[task] = {s: len(kept[s]) for s in SPLIT_NAMES}
            labels[task] = {s: dict(sorted(Counter(it.label for it in kept[s]).items())) for s in SPLIT_NAMES}
            for split in SPLIT_NAMES:
                for i, it in enumerate(kept[split]):
                    per_split[split].append({"id": f"{task}-{split}-{i:06d}", **it.record})
            say(f"{task}: {counts[task]}")
    for split, recs in per_split.items():
        write_jsonl(stage / f"{split}.jsonl", recs)
        _check_readable(stage / f"{split}.jsonl")
    public_cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    extra = {
        "name": cfg.get("name", "shopping"),
        "family": "shopping",
        "seed": seed,
        "ecellm_version": __version__,
        "families": families,
        "counts": counts,
        "labels": labels,
        "dropped": dropped,
        "quality": quality,
        "sources": _sources(sources, raw_dir),
        "notes": notes,
        "total": sum(len(v) for v in per_split.values()),
        "files": sorted([*outdir.written_files(stage), "manifest.json", "quality_report.md"]),
        "layout": {"records": "{split}.jsonl", "report": "quality_report.md"},
    }
    manifest = write_output_manifest(
        stage, folder=True, kind="data-build", config=public_cfg, extra=extra, timestamp=False
    )
    with atomic_open(stage / "quality_report.md") as fh:
        fh.write(quality_report(manifest))
    return manifest


def _check_readable(path: Path) -> None:
    """Every record must pass the ShopBench loader (a builder bug fails the build, not a later run)."""
    from ecellm.tasks.shopbench.records import read_rows

    read_rows(path)


def quality_report(manifest: dict[str, Any]) -> str:
    """Markdown: records per task and split, drops by stage, label balance (no timestamps)."""
    lines = [
        f"# Quality report: {manifest.get('name', 'shopping')}",
        "",
        f"seed {manifest.get('seed')}, ecellm {manifest.get('ecellm_version')}, "
        f"{manifest.get('total', 0)} records.",
        "",
        "## Records per family, task and split",
        "",
        "| family | task | train | val | test |",
        "|---|---|---|---|---|",
    ]
    for family, tasks in manifest.get("families", {}).items():
        for task in tasks:
            c = manifest["counts"][task]
            lines.append(f"| {family} | {task} | {c['train']} | {c['val']} | {c['test']} |")
    lines += ["", "## Rows dropped by the builders", ""]
    for family, reasons in manifest.get("dropped", {}).items():
        lines += [f"- {family}: {reason}: {n}" for reason, n in reasons.items()]
    lines += ["", "## Rows dropped by quality control and the leakage check", ""]
    for task, q in manifest.get("quality", {}).items():
        lines += [f"### {task}", "", "| stage | split | dropped |", "|---|---|---|"]
        for split, steps in q.get("steps", {}).items():
            lines += [f"| quality: {step} | {split} | {n} |" for step, n in steps.items()]
        lines += [f"| leakage (key seen in train) | {s} | {n} |" for s, n in q.get("leakage", {}).items()]
        lines.append("")
    lines += ["## Label balance", ""]
    for task, per_split in manifest.get("labels", {}).items():
        for split in SPLIT_NAMES:
            dist = per_split.get(split) or {}
            lines.append(f"- {task} {split}: " + (", ".join(f"{k}={v}" for k, v in dist.items()) or "none"))
    lines.append("")
    return "\n".join(lines)
