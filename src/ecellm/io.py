"""Small file helpers shared by every stage: atomic writes, JSONL append and read, hashing.

Outputs are either written atomically (temp file + rename, so an interrupted run never
leaves a half-written file) or appended record by record (so a killed run resumes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ecellm.errors import InputError


def current_umask() -> int:
    """The process umask, read without changing it where Linux exposes it (threads may be writing)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """What a plain ``open(path, "w")`` would leave: the mode of the file it replaces, else
    ``0o666`` less the umask (``mkstemp`` alone would give 0600 whatever the umask says)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[Any]:
    """Open a temp file next to ``path`` and rename it over ``path`` only on success.

    The file gets the permissions a plain ``open`` would give it (umask respected, an existing
    file's mode kept), so readers in the user's group see outputs as they would any other file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _final_mode(path))
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically with sorted keys, so equal objects give byte-identical files."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False, sort_keys=True)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSON Lines atomically; returns the count."""
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True))
            fh.write("\n")
            n += 1
    return n


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, turning a decode error into an :class:`InputError` with the line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg} (column {exc.colno})", file=str(path), record=f"line {exc.lineno}"
        ) from exc


def iter_jsonl(
    path: str | os.PathLike[str], *, skip_truncated_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-empty line.

    ``skip_truncated_tail`` tolerates a last line without newline that does not parse: that
    is what a killed appender leaves behind, and resuming must drop it rather than fail.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if skip_truncated_tail and i == len(lines) and not line.endswith("\n"):
                return
            raise InputError(f"malformed JSON line: {exc.msg}", file=str(path), record=i) from exc
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object", file=str(path), record=i)
        yield i, rec


class JsonlAppender:
    """Append one JSON record per line and flush it, so a killed run loses at most one line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_partial_tail()
        self._fh = self.path.open("a", encoding="utf-8")

    def _truncate_partial_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(cut)

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
