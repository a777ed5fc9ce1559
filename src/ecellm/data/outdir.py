"""The output folder of ``ecellm data build``: what it may replace, staging, and the final swap.

Why this is strict: ``--out`` is typed by hand, and a build used to replace any folder holding a
``manifest.json`` (a finished training run, with its adapter and checkpoints, was deleted with
exit 0). Now a non-empty ``--out`` is replaced only when its ``manifest.json`` says it is an
ecellm data build *and* lists every file in the folder (the ``files`` key each build records);
anything else is refused with one line before any work starts, and the swap deletes only the
files the earlier build wrote.

Staging: the build is written into a sibling ``.{name}.building-{host}-{pid}`` folder holding a
marker file, then swapped in by two renames (the old folder goes through
``.{name}.old-{host}-{pid}``). A build that was killed leaves those folders behind; the next
build on the same host removes them when their process is gone (a staging folder only when it
holds the marker; an old folder only through its own file list, and it is put back in place when
the kill came between the two renames and ``--out`` is missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from ecellm.errors import InputError

MARKER = ".ecellm-staging.json"
KIND = "data-build"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def stage_path(out_dir: Path, kind: str = "building", pid: int | None = None) -> Path:
    return out_dir.parent / f".{out_dir.name}.{kind}-{_host()}-{pid or os.getpid()}"


def _present(out_dir: Path) -> set[str]:
    """Every entry below ``out_dir`` as a relative posix path (symlinks count as files)."""
    out = set()
    for p in out_dir.rglob("*"):
        out.add(p.relative_to(out_dir).as_posix() + ("/" if p.is_dir() and not p.is_symlink() else ""))
    return out


def _allowed(files: list[str]) -> set[str]:
    """The recorded files and every folder that holds one of them."""
    out = set(files)
    for f in files:
        parts = f.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return out


def owned_files(out_dir: Path) -> list[str]:
    """The files an earlier ecellm data build wrote into ``out_dir``, when it holds nothing else.

    Raises :class:`InputError` (one line) when the folder is not such a build or holds anything
    that build did not write.
    """
    mpath = out_dir / "manifest.json"
    advice = "choose another --out or empty the folder yourself"
    if not mpath.is_file():
        raise InputError(
            f"output folder is not empty and is not an ecellm data build; {advice}", file=str(out_dir)
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    if kind != KIND:
        what = f"a {kind!r} output" if isinstance(kind, str) else "a manifest.json that is not a data build's"
        raise InputError(f"output folder holds {what}, not an ecellm data build; {advice}", file=str(out_dir))
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise InputError(
            f"data build without a list of the files it wrote (made by an older ecellm); {advice}",
            file=str(out_dir),
        )
    extra = sorted(_present(out_dir) - _allowed(files))
    if extra:
        raise InputError(
            f"output folder holds {len(extra)} entr{'y' if len(extra) == 1 else 'ies'} the earlier build "
            f"did not write (first: {extra[0]}); {advice}",
            file=str(out_dir),
        )
    return files


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(out_dir: Path) -> None:
    """Refuse an unusable ``--out`` before the build starts: a file, a folder that may not be
    replaced (see :func:`owned_files`), or a place that cannot be written."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InputError("--out is a file or a symlink, not a folder", file=str(out_dir))
    if out_dir.is_dir() and any(out_dir.iterdir()):
        owned_files(out_dir)
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise InputError("output folder is not writable", file=str(out_dir))
    base = _nearest_existing(out_dir.parent)
    if not base.is_dir():
        raise InputError(f"{base} is a file, not a folder", file=str(out_dir))
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {base} (read-only)", file=str(out_dir))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_owned(folder: Path, files: list[str]) -> bool:
    """Delete ``files`` (relative to ``folder``), then the folders they leave empty; True when
    ``folder`` itself is gone."""
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            (folder / f).unlink()
    dirs = sorted({p for f in files for p in (folder / f).parents if folder in p.parents}, reverse=True)
    for d in [*dirs, folder]:
        with contextlib.suppress(OSError):
            d.rmdir()
    return not folder.exists()


def clean_stale(out_dir: Path, say: Callable[[str], None]) -> None:
    """Remove what killed builds of ``out_dir`` on this host left behind (see the module doc)."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(building|old)-{re.escape(_host())}-(\d+)$")
    if not out_dir.parent.is_dir():
        return
    for p in sorted(out_dir.parent.iterdir()):
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink() or _pid_alive(int(m.group(2))):
            continue
        if m.group(1) == "building":
            try:
                marker = json.loads((p / MARKER).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not ours: leave it
            if isinstance(marker, dict) and marker.get("pid") == int(m.group(2)):
                shutil.rmtree(p, ignore_errors=True)
                say(f"removed the staging folder of a killed build: {p}")
        elif not out_dir.exists():
            os.replace(p, out_dir)
            say(f"restored {out_dir} from a build killed while swapping folders")
        else:
            try:
                files = owned_files(p)
            except InputError:
                continue
            if _remove_owned(p, files):
                say(f"removed the previous build left by a killed swap: {p}")


def make_stage(out_dir: Path, say: Callable[[str], None]) -> Path:
    """A fresh, marked staging folder next to ``out_dir`` (stale ones of dead builds removed)."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out_dir, say)
        stage = stage_path(out_dir)
        if stage.exists():  # this pid's own leftover (a build of this process that failed)
            shutil.rmtree(stage)
        stage.mkdir()
        (stage / MARKER).write_text(json.dumps({"pid": os.getpid(), "host": _host()}), encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot create the staging folder: {exc.strerror or exc}", file=str(out_dir)
        ) from None
    return stage


def written_files(stage: Path) -> list[str]:
    """Every file in the staging folder (the marker excluded), sorted: the build's ``files`` list."""
    return sorted(
        p.relative_to(stage).as_posix()
        for p in stage.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != MARKER
    )


def swap_in(stage: Path, out_dir: Path, say: Callable[[str], None]) -> None:
    """Replace ``out_dir`` by ``stage``; the earlier build's own files are deleted, nothing else."""
    (stage / MARKER).unlink(missing_ok=True)
    old_files: list[str] = []
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old_files = owned_files(out_dir)  # again: files may have been added during the build
        old = stage_path(out_dir, "old")
        os.replace(out_dir, old)
        os.replace(stage, out_dir)
        if not _remove_owned(old, old_files):
            say(f"warning: {old} still holds files the earlier build did not write; left in place")
    else:
        os.replace(stage, out_dir)


def build_staged(out_dir: Path, fill: Callable[[Path], dict], say: Callable[[str], None]) -> dict:
    """Check ``out_dir``, let ``fill`` write a build into a staging folder beside it, then swap
    it in; any failure (or interrupt) removes the staging folder and leaves ``out_dir`` as it was.
    Returns what ``fill`` returned (the build's manifest)."""
    check_out_dir(out_dir)
    target = out_dir.resolve()  # "." or "..": staging goes next to the real folder, not inside it
    stage = make_stage(target, say)
    try:
        result = fill(stage)
        swap_in(stage, target, say)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return result
