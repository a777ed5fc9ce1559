"""Load ECInstruct samples from any of its distributions into :class:`Sample` objects.

``load_samples(path)`` detects the distribution:

- an ecellm JSONL file (records with an ``id``) or a build folder (``manifest.json`` +
  ``jsonl/{ABBR}/{setting}/{split}.jsonl``);
- the reference folder layout ``ECInstruct/{Task}/{Setting}/{split}.json`` (+ QPR
  ``label.json``), or one of its split files;
- JSON / JSONL / parquet exports of ``NingLab/ECInstruct`` (columns instruction, input,
  options, output, task, setting, split[, few_shot_example]);
- a ``datasets.save_to_disk`` folder, or a hub id loaded through ``datasets.load_dataset``
  (offline from the HF cache when ``HF_HUB_OFFLINE=1``);
- a file in a task family's own format (ShopBench JSON / JSONL, hidden-test records included;
  generic instruction/output records as JSONL, JSON, parquet or CSV): the family's reader, found
  through :func:`ecellm.tasks.registry.format_reader`, turns its records into rows; a shopping
  build folder (``manifest.json`` + ``{train,val,test}.jsonl``) is read split file by split file.

Rows without an id get a positional one, ``{ABBR}-{setting}-{split}-{index:06d}``, counted
over the whole (task, setting, split) group *before* filtering, so an id does not depend on
which filters were used. Task names resolve through the registry (the reference's typos are
aliases); options stored as JSON or Python-repr strings become lists. Every error names the
file, the record and the field.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ecellm.data.reference_layout import SPLIT_FILES, find_root, read_labels, read_reference
from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.io import iter_jsonl, read_json
from ecellm.tasks import get_task
from ecellm.tasks.registry import format_reader

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}


def _names(values: str | Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    return [v.strip() for item in items for v in item.split(",") if v.strip()] or None


def _task_filter(tasks: str | Sequence[str] | None) -> set[str] | None:
    names = _names(tasks)
    if names is None:
        return None
    out = set()
    for name in names:
        try:
            out.add(get_task(name).abbr)
        except KeyError as exc:
            raise InputError(str(exc.args[0]), field="tasks") from None
    return out


def normalize_options(value: Any) -> list[str]:
    """Options as a list of strings from a list, a JSON list string or a Python-repr list string."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        return [str(v) for v in value.tolist()]
    text = str(value).strip()
    if not text:
        return []
    for loader in (json.loads, ast.literal_eval):
        try:
            val = loader(text)
        except Exception:
            continue
        if isinstance(val, list | tuple):
            return [str(v) for v in val]
    raise ValueError("options must be a list or a JSON / Python list string")


def _text(value: Any) -> Any:
    """Inputs/outputs that an export stored as objects become the JSON string the model sees."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("meta") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    if not isinstance(meta, dict):
        raise ValueError("meta must be an object")
    meta = dict(meta)
    labels = row.get("labels", row.get("label"))
    if labels is not None and not isinstance(labels, str):
        meta["labels"] = [str(x) for x in (labels.tolist() if hasattr(labels, "tolist") else labels)]
    shot = row.get("few_shot_example")
    if shot:
        meta["few_shot_example"] = shot
    return meta


def row_to_sample(row: dict[str, Any], *, file: str, record: int | str) -> Sample:
    """One row of any distribution (with ``task``/``setting``/``split``/``id`` set) as a Sample."""
    field = "options"
    try:
        options = normalize_options(row.get("options"))
        field = "meta"
        meta = _meta(row)
    except (ValueError, SyntaxError) as exc:
        raise InputError(str(exc), file=file, record=record, field=field) from None
    try:
        sample = Sample(
            id=str(row["id"]),
            task=row["task"],
            setting=row["setting"],
            split=row["split"],
            instruction=row.get("instruction"),
            input=_text(row.get("input")),
            options=options,
            output=_text(row.get("output")),
            meta=meta,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or None
        raise InputError(err["msg"], file=file, record=record, field=loc) from None
    return _keep_options_text(sample, row.get("options"))


def _keep_options_text(sample: Sample, raw: Any) -> Sample:
    """Keep an options string the reference templates could not re-create from the list (another
    JSON spacing, non-ASCII kept, ...) in ``meta["options_text"]``, so that ``alpaca-ref`` and
    ``mistral-ref`` paste exactly what the file holds; the usual case adds nothing."""
    from ecellm.prompts import reference_options

    if isinstance(raw, str) and raw.strip() and reference_options(sample) != raw:
        sample.meta["options_text"] = raw
    return sample


class _Selector:
    """Resolves task names, assigns positional ids and applies the filters, row by row."""

    def __init__(self, tasks: set[str] | None, settings: list[str] | None, splits: set[str] | None) -> None:
        self.tasks, self.settings, self.splits = tasks, set(settings) if settings else None, splits
        self.counters: Counter[tuple[str, str, str]] = Counter()

    def keep(self, row: dict[str, Any], *, file: str, record: int | str, split: str | None = None) -> bool:
        raw = row.get("task")
        if not isinstance(raw, str):
            raise InputError("missing task", file=file, record=record, field="task")
        try:
            abbr = get_task(raw).abbr
        except KeyError as exc:
            raise InputError(str(exc.args[0]), file=file, record=record, field="task") from None
        setting = row.get("setting") or "IND_Diverse_Instruction"
        sp = row.get("split") or split or "test"
        sp = SPLIT_FILES.get(sp, sp)
        key = (abbr, setting, sp)
        index = self.counters[key]
        self.counters[key] += 1
        row.update(task=abbr, setting=setting, split=sp)
        if not row.get("id"):
            row["id"] = f"{abbr}-{setting}-{sp}-{index:06d}"
        return not (
            (self.tasks and abbr not in self.tasks)
            or (self.settings and setting not in self.settings)
            or (self.splits and sp not in self.splits)
        )


def _convert(
    rows: Iterable[tuple[dict[str, Any], str, int | str]], sel: _Selector, split: str | None = None
) -> list:
    out = []
    for row, file, record in rows:
        if sel.keep(row, file=file, record=record, split=split):
            out.append(row_to_sample(row, file=file, record=record))
    return out


def _from_json_file(p: Path, sel: _Selector) -> list[Sample]:
    data = read_json(p)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InputError("expected a JSON list of samples", file=str(p))
    rows = []
    ref_task = p.parent.parent.name if p.stem in SPLIT_FILES else None
    for i, rec in enumerate(data, start=1):  # records count from 1, like lines
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object", file=str(p), record=i)
        if "task" not in rec and ref_task:  # one split file of the reference layout
            rec = {**rec, "task": ref_task, "setting": p.parent.name, "split": SPLIT_FILES[p.stem]}
        rows.append((rec, str(p), i))
    return _convert(rows, sel)


def _from_parquet(p: Path, sel: _Selector) -> list[Sample]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:
        raise InputError(f"unreadable parquet: {exc}", file=str(p)) from None
    return _convert(((r, str(p), i) for i, r in enumerate(table.to_pylist(), start=1)), sel)


def _from_datasets(obj: Any, source: str, sel: _Selector) -> list[Sample]:
    """A ``Dataset`` or ``DatasetDict``: the ``split`` column wins over the dict key."""
    parts = (
        sorted(obj.items(), key=lambda kv: (_SPLIT_ORDER.get(kv[0], 9), kv[0]))
        if hasattr(obj, "keys")
        else [(None, obj)]
    )
    out: list[Sample] = []
    for key, ds in parts:
        out += _convert(
            ((r, f"{source}[{key}]" if key else source, i) for i, r in enumerate(ds, start=1)), sel, split=key
        )
    return out


def _from_build(p: Path, sel: _Selector) -> list[Sample]:
    out: list[Sample] = []
    for f in sorted((p / "jsonl").glob("*/*/*.jsonl")):
        abbr, setting, split = f.parent.parent.name, f.parent.name, f.stem
        if (sel.tasks and abbr not in sel.tasks) or (sel.settings and setting not in sel.settings):
            continue
        if sel.splits and split not in sel.splits:
            continue
        out += _convert(((r, str(f), i) for i, r in iter_jsonl(f)), sel)
    return out


def _split_files(p: Path) -> list[Path]:
    """``{train,val,test}.jsonl`` of a family build folder (the shopping build) in a format a
    family reader claims."""
    files = [p / f"{s}.jsonl" for s in ("train", "val", "test")]
    return [f for f in files if f.exists() and format_reader(f) is not None]


def _from_split_files(p: Path, sel: _Selector) -> list[Sample]:
    out: list[Sample] = []
    for f in _split_files(p):
        if sel.splits and f.stem not in sel.splits:
            continue
        out += _convert(format_reader(f).read_rows(f), sel)
    return out


def _from_hub(name: str, sel: _Selector) -> list[Sample]:
    import datasets

    try:
        ds = datasets.load_dataset(name)
    except Exception as exc:
        raise InputError(
            f"cannot load dataset from the hub or the HF cache: {type(exc).__name__}: {exc}", file=name
        ) from None
    return _from_datasets(ds, name, sel)


def attach_labels(samples: list[Sample], labels_path: str | Path) -> None:
    """Give each test sample of a task that keeps its gold labels in a separate file
    (``Task.label_file``, the reference's QPR ``label.json``) its entry of that file, per setting
    in order."""
    labels = read_labels(Path(labels_path))
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        if s.split == "test" and get_task(s.task).label_file:
            groups.setdefault((s.task, s.setting), []).append(s)
    for (task, setting), group in groups.items():
        if len(group) != len(labels):
            raise InputError(
                f"{len(labels)} label lists for {len(group)} {task} test samples in {setting}",
                file=str(labels_path),
            )
        for s, labs in zip(group, labels, strict=True):
            s.meta["labels"] = list(labs)


def load_samples(
    path: str | Path,
    *,
    tasks: str | Sequence[str] | None = None,
    settings: str | Sequence[str] | None = None,
    splits: str | Sequence[str] | None = None,
    qpr_labels: str | Path | None = None,
) -> list[Sample]:
    """Load samples from any ECInstruct distribution (see the module docstring), filtered.

    ``tasks`` accepts abbreviations, names or aliases; ``splits`` accepts ``validation`` for
    ``val``; each filter may be a list or a comma-separated string. ``qpr_labels`` attaches an
    external label file to the test samples of the tasks that keep their labels apart
    (``Task.label_file``: QPR's ``label.json``).
    """
    split_names = _names(splits)
    sel = _Selector(
        _task_filter(tasks), _names(settings), {SPLIT_FILES.get(s, s) for s in split_names or ()} or None
    )
    p = Path(path)
    if not p.exists():
        if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/")):
            samples = _from_hub(str(path), sel)
        else:
            raise InputError("file not found", file=str(path))
    elif p.is_dir():
        if (p / "manifest.json").exists() and (p / "jsonl").is_dir():
            samples = _from_build(p, sel)
        elif (p / "manifest.json").exists() and _split_files(p):
            samples = _from_split_files(p, sel)
        elif (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            import datasets

            samples = _from_datasets(datasets.load_from_disk(str(p)), str(p), sel)
        elif (root := find_root(p)) is not None:
            rows = read_reference(root, sel.tasks, sel.settings, sel.splits)
            samples = _convert(((r, r.pop("_file"), r.pop("_record")) for r in rows), sel)
        else:
            raise InputError(
                "not a dataset folder (expected manifest.json + jsonl/, a datasets save_to_disk folder or "
                "ECInstruct/{Task}/{Setting}/{split}.json)",
                file=str(p),
            )
    elif p.suffix in (".json", ".jsonl", ".csv", ".parquet") and (reader := format_reader(p)) is not None:
        samples = _convert(reader.read_rows(p), sel)
    elif p.suffix == ".jsonl":
        samples = _convert(((r, str(p), i) for i, r in iter_jsonl(p)), sel)
    elif p.suffix == ".json":
        samples = _from_json_file(p, sel)
    elif p.suffix == ".parquet":
        samples = _from_parquet(p, sel)
    else:
        raise InputError(
            "unsupported file type (use .jsonl, .json, .parquet, an instruction/output .csv or a folder)",
            file=str(p),
        )
    if qpr_labels is not None:
        attach_labels(samples, qpr_labels)
    _check_unique(samples, str(path))
    return samples


def _check_unique(samples: list[Sample], source: str) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise InputError(f"duplicate sample id {s.id!r}", file=source, field="id")
        seen.add(s.id)
