"""Step bookkeeping: a step's key is the hash of its inputs, its folder remembers the key.

Key = config slice + the content hashes of the artefacts it reads + the version of the code that
runs it (a hash of the source files of the areas involved, so editing the trainer retrains and
editing the report only rewrites the report). A step folder holds ``key.json`` from the moment
it starts and ``done.json`` (artefact hash, duration, work units) once it finished:

- ``done.json`` with the same key: cached, nothing runs;
- ``key.json`` with the same key but no ``done.json``: interrupted, the step resumes inside the
  folder (training from its last checkpoint, prediction from its last written record);
- a different key: the folder is stale and is emptied before the step runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ecellm import __version__
from ecellm.io import read_json, sha256_file, write_json

# Source areas whose code decides each step kind's output.
CODE_AREAS: dict[str, tuple[str, ...]] = {
    "data": ("data", "tasks", "prompts.py"),
    "testset": ("experiment/steps.py",),
    "train": ("train", "models", "tasks", "prompts.py", "data/loaders.py"),
    "predict": ("infer", "models", "tasks", "prompts.py", "offsets.py"),
    "evaluate": ("evaluate", "tasks"),
    "offsets": ("offsets.py", "infer", "models", "tasks", "prompts.py", "evaluate", "experiment/steps.py"),
    "report": ("report", "experiment/report.py", "experiment/html.py", "evaluate/bootstrap.py"),
}


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(key).encode()).hexdigest()


@cache
def code_version(kind: str) -> str:
    """ecellm's version plus a hash of the source files the step kind runs."""
    root = resources.files("ecellm")
    h = hashlib.sha256(__version__.encode())
    for area in CODE_AREAS[kind]:
        node = Path(str(root.joinpath(area)))
        files = sorted(node.rglob("*.py")) if node.is_dir() else [node]
        for f in files:
            if f.exists():
                h.update(f.relative_to(Path(str(root))).as_posix().encode())
                h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"


def tree_hash(paths: list[Path], root: Path) -> str:
    """Hash of files (names relative to ``root`` and contents), in sorted order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


class StepDir:
    """One step's folder and its key/done markers."""

    def __init__(self, folder: Path, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = key
        self.hash = key_hash(key)

    @property
    def done_file(self) -> Path:
        return self.folder / "done.json"

    def done(self) -> dict[str, Any] | None:
        """The finished record when this exact key has completed, else None."""
        if not self.done_file.exists():
            return None
        rec = read_json(self.done_file)
        return rec if rec.get("key_hash") == self.hash else None

    def start(self) -> bool:
        """Prepare the folder; returns True when an interrupted run of the same key is resumed."""
        kf = self.folder / "key.json"
        if kf.exists() and read_json(kf).get("key_hash") == self.hash:
            self.done_file.unlink(missing_ok=True)
            return True
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        write_json(kf, {"key_hash": self.hash, "key": self.key})
        return False

    def finish(self, artefact_hash: str, seconds: float, units: float) -> dict[str, Any]:
        rec = {"key_hash": self.hash, "artefact": artefact_hash, "seconds": seconds, "units": units}
        write_json(self.done_file, rec)
        return rec
