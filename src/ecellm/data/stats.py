"""Counts, label distributions and the quality report of a build.

Used twice: by the pipeline (the manifest and ``quality_report.md`` are computed from the
samples it writes) and by ``ecellm data stats DIR``, which recomputes the tables from the JSONL
files on disk, so the printed numbers never just echo the manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ecellm.data.schema import SETTINGS, Sample
from ecellm.io import iter_jsonl, read_json
from ecellm.tasks import get_task

_SPLITS = ("train", "val", "test")


def label_of(sample: Sample) -> str | None:
    """The class of a gold output for label distributions (None for free text)."""
    kind = get_task(sample.task).answer_kind
    out = sample.output.strip()
    if kind == "yes_no" or kind == "letter":
        return out
    if kind == "option":
        return out.split(":", 1)[0].strip()
    if kind == "ranking":
        return f"{len(out.split(','))} products"
    if kind == "attribute_values":
        try:
            items = json.loads(out)
        except json.JSONDecodeError:
            return "unparsable"
        has = any(isinstance(x, dict) and x.get("value") not in (None, "None") for x in items)
        return "has value" if has else "no value"
    return None


def counts(samples: Iterable[Sample]) -> dict[str, dict[str, dict[str, int]]]:
    """``counts[task][setting][split]``."""
    c: Counter[tuple[str, str, str]] = Counter((s.task, s.setting, s.split) for s in samples)
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (task, setting, split), n in sorted(c.items()):
        out.setdefault(task, {}).setdefault(setting, {})[split] = n
    return out


def label_distributions(samples: Iterable[Sample]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """``labels[task][setting][split][label]`` for the Diverse settings (the others are copies)."""
    c: Counter[tuple[str, str, str, str]] = Counter()
    for s in samples:
        if "Diverse" in s.setting:
            lab = label_of(s)
            if lab is not None:
                c[(s.task, s.setting, s.split, lab)] += 1
    out: dict[str, Any] = {}
    for (task, setting, split, lab), n in sorted(c.items()):
        out.setdefault(task, {}).setdefault(setting, {}).setdefault(split, {})[lab] = n
    return out


def _fmt_dist(dist: dict[str, int]) -> str:
    total = sum(dist.values()) or 1
    return ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in sorted(dist.items()))


def counts_table(counts_: dict[str, dict[str, dict[str, int]]]) -> list[list[str]]:
    """Rows ``[task, setting, train, val, test]`` in registry/setting order."""
    rows = []
    for task in sorted(counts_, key=lambda t: [x.abbr for x in _tasks()].index(t)):
        for setting in sorted(counts_[task], key=SETTINGS.index):
            per = counts_[task][setting]
            rows.append([task, setting, *(str(per.get(sp, 0)) for sp in _SPLITS)])
    return rows


def _tasks() -> tuple[Any, ...]:
    from ecellm.tasks import all_tasks

    return all_tasks(None)


def quality_report(manifest: dict[str, Any]) -> str:
    """Markdown quality report (no timestamps, so rebuilds produce the same bytes)."""
    lines = [
        f"# Quality report: {manifest.get('name', 'build')}",
        "",
        f"seed {manifest.get('seed')}, ecellm {manifest.get('ecellm_version')}, "
        f"{manifest.get('total', 0)} samples.",
        "",
    ]
    if manifest.get("skipped"):
        lines += ["Skipped tasks:", ""] + [f"- {t}: {why}" for t, why in manifest["skipped"].items()] + [""]
    lines += [
        "## Samples per task, setting and split",
        "",
        "| task | setting | train | val | test |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in counts_table(manifest.get("counts", {}))]
    lines += ["", "## Rows dropped", ""]
    for task, q in manifest.get("quality", {}).items():
        lines += [f"### {task}", "", "| stage | group | dropped |", "|---|---|---|"]
        lines += [f"| builder: {reason} | all | {n} |" for reason, n in q.get("builder", {}).items()]
        for group, steps in q.get("steps", {}).items():
            lines += [f"| quality: {step} | {group} | {n} |" for step, n in steps.items()]
        lines += [f"| leakage (input seen in train) | {g} | {n} |" for g, n in q.get("leakage", {}).items()]
        lines.append("")
    lines += ["## Label distributions (Diverse settings)", ""]
    for task, per_setting in manifest.get("labels", {}).items():
        for setting, per_split in per_setting.items():
            for split in (sp for sp in _SPLITS if sp in per_split):
                lines.append(f"- {task} {setting} {split}: {_fmt_dist(per_split[split])}")
    for task, per_setting in manifest.get("labels", {}).items():
        if _answer_kind(task) != "yes_no":
            continue
        lines += ["", f"## {task} class balance", ""]
        for setting, per_split in per_setting.items():
            for split, dist in per_split.items():
                total = sum(dist.values()) or 1
                lines.append(f"- {setting} {split}: yes {100 * dist.get('yes', 0) / total:.1f}% of {total}")
    return "\n".join(lines) + "\n"


def _answer_kind(abbr: str) -> str | None:
    from ecellm.tasks import get_task

    try:
        return get_task(abbr).answer_kind
    except KeyError:
        return None


def read_build(path: str | Path) -> list[Sample]:
    """Every sample of a build folder, file by file (errors name the file and line)."""
    from ecellm.errors import InputError

    root = Path(path)
    if not (root / "jsonl").is_dir():
        raise InputError("not a build folder (no jsonl/ inside)", file=str(root))
    out = []
    for f in sorted((root / "jsonl").rglob("*.jsonl")):
        for line, rec in iter_jsonl(f):
            try:
                out.append(Sample(**rec))
            except Exception as exc:
                raise InputError(
                    f"invalid sample: {exc}".splitlines()[0], file=str(f), record=f"line {line}"
                ) from exc
    return out


def build_stats(path: str | Path) -> dict[str, Any]:
    """Counts and label distributions recomputed from the JSONL files, plus the manifest's drops."""
    root = Path(path)
    samples = read_build(root)
    manifest = read_json(root / "manifest.json") if (root / "manifest.json").exists() else {}
    return {
        "name": manifest.get("name"),
        "total": len(samples),
        "counts": counts(samples),
        "labels": label_distributions(samples),
        "quality": manifest.get("quality", {}),
    }
