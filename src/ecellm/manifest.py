"""Run manifests: every run records versions, model, data hash and config next to its outputs.

One rule for where a manifest goes, applied by :func:`write_output_manifest` for every command
that writes an output:

- a folder output (a build, an export, a report, a training run) holds ``manifest.json``;
- a file output (predictions, metrics, a comparison) gets ``<its full name>.manifest.json``
  beside it: ``preds.jsonl`` -> ``preds.jsonl.manifest.json``, ``metrics.json`` ->
  ``metrics.json.manifest.json``. The full name, not the stem, so two outputs in one folder that
  differ only by extension never share a manifest.

A manifest is written after its output is complete (atomically), so a manifest beside an output
means the output is whole; a run that appends record by record (predict) also writes one while
running, marked ``status: running``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ecellm import __version__
from ecellm.io import sha256_file, write_json

_TRACKED = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "bert-score",
    "gguf",
    "trl",
    "vllm",
    "llama-cpp-python",
)


def package_versions() -> dict[str, str]:
    """Versions of the libraries that change results, for the manifest."""
    out = {"python": sys.version.split()[0], "ecellm": __version__, "platform": platform.platform()}
    for name in _TRACKED:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


def data_fingerprint(paths: list[str | os.PathLike[str]]) -> dict[str, str]:
    """SHA-256 per input file (folders: every file below, sorted)."""
    out: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.exists():
                out[str(f)] = sha256_file(f)
    return out


def manifest_path(out: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """Where the manifest of the output ``out`` goes (see the module docstring).

    ``folder`` says whether ``out`` is a folder output; it is declared by the writer, never
    guessed from the disk (the output may not exist yet).
    """
    out = Path(out)
    return out / "manifest.json" if folder else out.with_name(out.name + ".manifest.json")


def write_output_manifest(
    out: str | os.PathLike[str],
    *,
    folder: bool = False,
    kind: str,
    config: dict[str, Any],
    data: list[str | os.PathLike[str]] | None = None,
    model: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    timestamp: bool = True,
) -> dict[str, Any]:
    """Write the manifest of the output ``out`` where :func:`manifest_path` puts it; returns it."""
    return write_manifest(
        manifest_path(out, folder=folder),
        kind=kind,
        config=config,
        data=data,
        model=model,
        extra=extra,
        timestamp=timestamp,
    )


def write_manifest(
    path: str | os.PathLike[str],
    *,
    kind: str,
    config: dict[str, Any],
    data: list[str | os.PathLike[str]] | None = None,
    model: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    timestamp: bool = True,
) -> dict[str, Any]:
    """Write manifest metadata to ``path`` atomically and return it (commands call
    :func:`write_output_manifest`, which picks ``path`` by the one rule).

    ``timestamp=False`` leaves out the ``created`` time, for outputs that must be byte-identical
    across runs (a data build is reproducible, so its manifest is too).
    """
    manifest: dict[str, Any] = {"kind": kind}
    if timestamp:
        manifest["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    manifest["versions"] = package_versions()
    manifest["config"] = config
    if data:
        manifest["data_sha256"] = data_fingerprint(data)
    if model is not None:
        manifest["model"] = model
    if extra:
        manifest.update(extra)
    write_json(path, manifest)
    return manifest
