"""Read predictions: ecellm JSONL (joined by id) or the reference layout (joined by position).

The reference writes ``evaluation/{Task}/{Setting}.json``, a JSON list of strings in the
order of that (task, setting)'s test samples. We accept it unchanged so published eCeLLM
prediction files can be rescored, but check the length: a silent off-by-one is exactly the
kind of error positional alignment hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.io import iter_jsonl, read_json
from ecellm.tasks import get_task


def _from_jsonl(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line, rec in iter_jsonl(path):
        for field in ("id", "prediction"):
            if field not in rec:
                raise InputError("missing field", file=str(path), record=line, field=field)
        pred = rec["prediction"]
        if pred is None:
            pred = ""
        if not isinstance(pred, str):
            raise InputError("prediction must be a string", file=str(path), record=line, field="prediction")
        key = str(rec["id"])
        if key in out:
            raise InputError(f"duplicate prediction for id {key!r}", file=str(path), record=line, field="id")
        out[key] = pred
    return out


def _reference_files(path: Path) -> list[tuple[str, str, Path]]:
    """(abbr, setting, file) for ``evaluation/`` (or its parent, or one ``{Setting}.json``)."""
    if path.is_file():
        pairs = [(path.parent, path)]
    else:
        root = path / "evaluation" if (path / "evaluation").is_dir() else path
        pairs = [(f.parent, f) for f in sorted(root.glob("*/*.json"))]
        if not pairs:
            raise InputError("no evaluation/{Task}/{Setting}.json files found", file=str(path))
    out = []
    for task_dir, f in pairs:
        try:
            abbr = get_task(task_dir.name).abbr
        except KeyError:
            raise InputError(f"unknown task folder {task_dir.name!r}", file=str(f)) from None
        out.append((abbr, f.stem, f))
    return out


def _from_reference(path: Path, samples: Sequence[Sample]) -> dict[str, str]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        if s.split == "test":
            groups.setdefault((s.task, s.setting), []).append(s)
    out: dict[str, str] = {}
    for abbr, setting, f in _reference_files(path):
        preds = read_json(f)
        if not isinstance(preds, list):
            raise InputError("expected a JSON list of prediction strings", file=str(f))
        group = groups.get((abbr, setting))
        if group is None:  # a task or setting the data (or its filters) leave out
            continue
        if len(preds) != len(group):
            raise InputError(f"{len(preds)} predictions for {len(group)} test samples", file=str(f))
        for i, (s, p) in enumerate(zip(group, preds, strict=True)):
            if p is None:
                p = ""
            if not isinstance(p, str):
                raise InputError("prediction must be a string", file=str(f), record=i)
            out[s.id] = p
    if not out:
        raise InputError("no prediction file matches a task and setting of the data", file=str(path))
    return out


def _in_task_folder(path: Path) -> bool:
    try:
        get_task(path.parent.name)
    except KeyError:
        return False
    return True


def _from_list(path: Path, samples: Sequence[Sample]) -> dict[str, str]:
    """A JSON list with one prediction per sample, in the data's order (as the KDD Cup runner
    writes them): strings, or objects with ``prediction``."""
    preds = read_json(path)
    if not isinstance(preds, list):
        raise InputError("expected a JSON list of predictions, one per sample in data order", file=str(path))
    if len(preds) != len(samples):
        raise InputError(f"{len(preds)} predictions for {len(samples)} samples", file=str(path))
    out: dict[str, str] = {}
    for i, (s, p) in enumerate(zip(samples, preds, strict=True), start=1):
        if isinstance(p, dict):
            p = p.get("prediction")
        if p is None:
            p = ""
        if not isinstance(p, str):
            raise InputError("prediction must be a string", file=str(path), record=i, field="prediction")
        out[s.id] = p
    return out


def load_predictions(path: str | Path, samples: Sequence[Sample]) -> dict[str, str]:
    """``{sample id: prediction text}`` from a ``.jsonl`` file or the reference layout.

    Positional files are aligned with ``samples``' test samples of the same task and setting,
    in the order given (the loaders keep file order). A ``.json`` list outside a task folder
    holds one prediction per sample of the whole data set, in order.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=str(p))
    if p.is_file() and p.suffix == ".jsonl":
        return _from_jsonl(p)
    if p.is_file() and p.suffix == ".json" and not _in_task_folder(p):
        return _from_list(p, samples)
    if p.is_dir() or p.suffix == ".json":
        return _from_reference(p, samples)
    raise InputError(
        "predictions must be a .jsonl file or an evaluation/{Task}/{Setting}.json layout", file=str(p)
    )
