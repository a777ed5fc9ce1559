"""The reference's folder distribution: ``ECInstruct/{Task}/{Setting}/{split}.json``.

Each split file is a JSON list of ``{instruction, input, options, output}``; the task and
setting come from the folder names (the reference's spellings, typos included) and ids are
positional: ``{ABBR}-{setting}-{split}-{index:06d}``, stable as long as the file is. QPR's
``label.json`` (per test sample, the ESCI labels of products A, B, ...) is attached to the
test samples as ``meta["labels"]``; a setting without its own ``label.json`` uses the one of
``IND_Diverse_Instruction``, as the reference evaluator does (the Unseen/Single settings hold
the same test items in the same order).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.io import read_json
from ecellm.tasks import get_task

SPLIT_FILES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def find_root(path: Path) -> Path | None:
    """The folder whose children are task folders (``path`` itself or ``path/ECInstruct``)."""
    for cand in (path / "ECInstruct", path):
        if cand.is_dir() and any(_task_of(d) and d.is_dir() for d in cand.iterdir()):
            return cand
    return None


def _task_of(folder: Path) -> str | None:
    try:
        return get_task(folder.name).abbr
    except KeyError:
        return None


def read_labels(path: Path) -> list[list[str]]:
    """A ``label.json``: a list (one entry per test sample) of lists of ESCI letters."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of label lists", file=str(path))
    for i, labs in enumerate(data, start=1):
        if not isinstance(labs, list) or not all(isinstance(x, str) for x in labs):
            raise InputError("expected a list of ESCI label strings", file=str(path), record=i)
    return data


def iter_reference_files(
    root: Path, tasks: set[str] | None, settings: set[str] | None, splits: set[str] | None
) -> Iterable[tuple[str, str, str, Path]]:
    """(abbr, setting, split, file) for every split file that passes the filters, sorted."""
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        abbr = _task_of(task_dir)
        if abbr is None:
            raise InputError("unknown task folder", file=str(task_dir))
        if tasks and abbr not in tasks:
            continue
        for setting_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            if settings and setting_dir.name not in settings:
                continue
            for f in sorted(setting_dir.glob("*.json")):
                split = SPLIT_FILES.get(f.stem)
                if split is None or (splits and split not in splits):
                    continue
                yield abbr, setting_dir.name, split, f


def labels_for(setting_dir: Path, n: int, name: str) -> list[list[str]] | None:
    """The label list ``name`` of a setting folder (own file, else IND_Diverse_Instruction's)."""
    own = setting_dir / name
    if own.exists():
        labels = read_labels(own)
        if len(labels) != n:
            raise InputError(f"{len(labels)} label lists for {n} test samples", file=str(own))
        return labels
    shared = setting_dir.parent / "IND_Diverse_Instruction" / name
    if shared.exists():
        labels = read_labels(shared)
        return labels if len(labels) == n else None
    return None


def read_reference(
    root: Path, tasks: set[str] | None, settings: set[str] | None, splits: set[str] | None
) -> list[dict[str, Any]]:
    """Rows (dicts ready for :func:`ecellm.data.loaders.row_to_sample`) with ``_file``/``_record``."""
    rows: list[dict[str, Any]] = []
    for abbr, setting, split, f in iter_reference_files(root, tasks, settings, splits):
        data = read_json(f)
        if not isinstance(data, list):
            raise InputError("expected a JSON list of samples", file=str(f))
        label_file = get_task(abbr).label_file if split == "test" else None
        labels = labels_for(f.parent, len(data), label_file) if label_file else None
        for i, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise InputError("expected a JSON object", file=str(f), record=i + 1)
            # _record counts from 1 (error messages); the positional id keeps its 0-based index
            row = {**rec, "task": abbr, "setting": setting, "split": split, "_file": str(f), "_record": i + 1}
            row.setdefault("id", f"{abbr}-{setting}-{split}-{i:06d}")
            if labels is not None:
                row["labels"] = labels[i]
            rows.append(row)
    return rows
