"""The predict loop: samples in, one JSONL record per sample out, appended as it goes.

Why append instead of writing at the end (as the reference does): a run killed after an hour
keeps its hour of work. ``resume=True`` reads the existing file, skips the ids already there
and appends the rest, so every id ends up exactly once. A last line without its newline is kept
when it is a whole record (the newline is added) and dropped when it is half-written (what
``kill -9`` leaves, possibly inside a multi-byte character). Resuming is refused unless the
earlier run's manifest shows the same samples (a hash of every sample), model, adapter,
backend, mode, template, decoding preset, seed and dtype: appending another run's answers to a
file would mix two runs under one manifest. Without ``resume`` an existing output is an error unless
``overwrite=True``: silently appending would duplicate ids and silently truncating would throw
away finished work.

Every choice (mode, template, backend, dtype, decoding, the ``out`` path) is checked before the model
loads, and nothing on disk changes until the first record arrives: a run that fails before it
(a model that will not load, an API answering 401) leaves the old output and manifest as they
were; one that fails later marks its manifest ``failed`` with the error.

Record: ``{"id", "task", "setting", "prediction", "raw", "mode", "prompt_tokens",
"completion_tokens", "latency_s"}``; ``<out>.manifest.json`` records model, adapter, backend,
template, decoding, the mode used per task, seed and library versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.infer.base import Completion, Request
from ecellm.infer.requests import build_request
from ecellm.io import JsonlAppender, read_json
from ecellm.manifest import manifest_path, write_output_manifest

SEED = 0
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Settings that must match the earlier manifest for --resume to continue a run.
RESUME_KEYS = (
    "calibrate",
    "offsets",
    "data_sha256",
    "model",
    "adapter",
    "backend",
    "mode",
    "template",
    "decoding",
    "seed",
    "dtype",
)


def fit_mode(req: Request, supported: frozenset[str]) -> Request:
    """Downgrade a request to ``generate`` when the backend cannot run its mode (an API without
    log-probabilities cannot score choices), keeping its budget and stop strings."""
    if req.mode in supported:
        return req
    return Request(
        req.id,
        req.prompt,
        mode="generate",
        max_new_tokens=max(req.max_new_tokens, 8),
        stop=req.stop,
        task=req.task,
    )


def make_requests(
    backend: Any, samples: Sequence[Sample], *, mode: str = "auto", template: str = "alpaca"
) -> list[Request]:
    """One request per sample, fitted to what ``backend`` supports."""
    tokenizer = getattr(backend, "tokenizer", None)
    supported = getattr(backend, "supported_modes", frozenset({"generate"}))
    return [
        fit_mode(build_request(s, mode=mode, template=template, tokenizer=tokenizer), supported)
        for s in samples
    ]


def to_record(sample: Sample, c: Completion) -> dict[str, Any]:
    rec = {
        "id": sample.id,
        "task": sample.task,
        "setting": sample.setting,
        "prediction": c.text,
        "raw": c.raw if c.raw is not None else c.text,
        "mode": c.mode,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "latency_s": c.latency_s,
    }
    if c.choice_logprobs:  # kept so that answer offsets can be fitted and applied later
        rec["choice_scores"] = c.choice_logprobs
    return rec


def run_records(
    backend: Any, samples: Sequence[Sample], requests: Sequence[Request]
) -> Iterator[dict[str, Any]]:
    """Records as the backend finishes them (not in input order)."""
    by_id = {s.id: s for s in samples}
    for c in backend.run(requests):
        yield to_record(by_id[c.id], c)


def modes_by_task(requests: Iterable[Request]) -> dict[str, dict[str, int]]:
    """``{task: {mode: count}}`` for the manifest (a task falls back per sample when its input
    lacks what the constraint needs)."""
    out: dict[str, dict[str, int]] = {}
    for r in requests:
        per = out.setdefault(r.task or "?", {})
        per[r.mode] = per.get(r.mode, 0) + 1
    return {t: dict(sorted(m.items())) for t, m in sorted(out.items())}


def _check_unique(samples: Sequence[Sample], source: str) -> None:
    seen: set[str] = set()
    for i, s in enumerate(samples, start=1):
        if s.id in seen:
            raise InputError(f"duplicate sample id {s.id!r}", file=source, record=i, field="id")
        seen.add(s.id)


def validate_options(
    *, mode: str, template: str | None, backend: Any, dtype: str = "auto", decoding: str = "greedy"
) -> None:
    """Refuse an unknown mode, template, backend, dtype or decoding before anything is loaded
    (``template=None`` means the model's own)."""
    from ecellm.infer.backends import BACKENDS
    from ecellm.infer.decoding import PRESETS
    from ecellm.infer.requests import MODES
    from ecellm.prompts import TEMPLATES

    for name, value, allowed in (
        ("mode", mode, MODES),
        ("template", template, (*TEMPLATES, None)),
        ("dtype", dtype, DTYPES),
        ("decoding", decoding, tuple(PRESETS)),
        ("backend", backend if isinstance(backend, str) else None, (*BACKENDS, None)),
    ):
        if value not in allowed:
            choices = ", ".join(a for a in allowed if a is not None)
            raise InputError(f"unknown {name} {value!r}; choose one of {choices}", field=name)


def check_out_path(out: Path) -> None:
    """``out`` must be a file path whose folder is (or can become) a folder."""
    if out.is_dir():
        raise InputError("is a directory; --out names the predictions JSONL file", file=str(out))
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{parent} is a file, not a folder", file=str(out))


def samples_sha256(samples: Sequence[Sample]) -> str:
    """A hash of every sample (ids, inputs, options, gold), in order: what resume compares."""
    h = hashlib.sha256()
    for s in samples:
        line = json.dumps(s.to_record(), sort_keys=True, ensure_ascii=False, default=str)
        h.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def _spec(value: str | None) -> str | None:
    """A model or adapter as given, or its absolute path when it is a local path."""
    if value and Path(value).exists():
        return str(Path(value).resolve())
    return value


_LABEL = {"data_sha256": "samples"}


def _show(key: str, value: Any) -> str:
    text = repr(value)
    return text[:12] + "..." if key == "data_sha256" and isinstance(value, str) else text[:80]


def check_resume(out: Path, config: dict[str, Any]) -> None:
    """Refuse to resume unless the earlier manifest shows the same run (see module docstring)."""
    mpath = manifest_path(out)
    if not mpath.exists():
        raise InputError(
            f"cannot resume: {mpath.name} is missing, so nothing shows this file comes from the same run; "
            "use --overwrite or another --out",
            file=str(out),
        )
    earlier = read_json(mpath)
    old = earlier.get("config") if isinstance(earlier, dict) else None
    old = old if isinstance(old, dict) else {}
    diffs = [k for k in RESUME_KEYS if old.get(k) != config.get(k)]
    if diffs:
        said = "; ".join(
            f"{_LABEL.get(k, k)}: was {_show(k, old.get(k))}, now {_show(k, config.get(k))}" for k in diffs
        )
        raise InputError(
            f"cannot resume a different run ({said}); use --overwrite or another --out", file=str(out)
        )


class _Output:
    """The predictions file and its manifest, touched only once the run has something to show.

    Resume: the ids already in the file, and how to repair a last line without newline (a whole
    record gets its newline; a half-written one, even cut inside a UTF-8 character, is cut off).
    Overwrite: the old file is replaced when the first new record arrives, not before.
    """

    def __init__(self, out: Path, *, resume: bool, replace: bool) -> None:
        self.out, self.replace = out, replace
        self.done: set[str] = set()
        self._cut: int | None = None  # truncate to this size
        self._newline = False  # the last record lacks its newline
        self._sink: JsonlAppender | None = None
        self.started = False
        if resume:
            self._scan()

    def _scan(self) -> None:
        data = self.out.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        for i, raw in enumerate(lines, start=1):
            if raw.strip():
                self._add(self._parse(raw, i), i)
        if tail.strip():
            try:
                rec = self._parse(tail, len(lines) + 1)
            except InputError:
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                self._add(rec, len(lines) + 1)
                self._newline = True
            else:
                self._cut = len(data) - len(tail)

    def _parse(self, raw: bytes, line: int) -> Any:
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"unreadable line ({type(exc).__name__})", file=str(self.out), record=line
            ) from None
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object", file=str(self.out), record=line)
        return rec

    def _add(self, rec: dict[str, Any], line: int) -> None:
        rid = rec.get("id")
        if not isinstance(rid, str):
            raise InputError(
                "prediction record without a string id", file=str(self.out), record=line, field="id"
            )
        self.done.add(rid)

    def start(self) -> None:
        """Apply the replace or the tail repair, then open the file for appending."""
        self.started = True
        if self.replace and self.out.exists():
            self.out.unlink()
        elif self._cut is not None:
            with self.out.open("r+b") as fh:
                fh.truncate(self._cut)
        elif self._newline:
            with self.out.open("ab") as fh:
                fh.write(b"\n")
        self._sink = JsonlAppender(self.out)

    def write(self, record: dict[str, Any]) -> None:
        if self._sink is None:
            self.start()
        assert self._sink is not None
        self._sink.write(record)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


def predict(
    samples: Sequence[Sample] | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    model: str = "smollm2-135m",
    adapter: str | None = None,
    backend: str | Any = "hf",
    mode: str = "auto",
    template: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    backend_kw: dict[str, Any] | None = None,
    source: str | None = None,
    template_source: str | None = None,
    decoding: str = "greedy",
    seed: int = SEED,
    calibrate: bool = False,
    offsets: bool | str | os.PathLike[str] | None = None,
) -> Path:
    """Predict every sample into ``out`` (JSONL); returns ``out``.

    ``samples`` is a list of samples or a path :func:`ecellm.data.loaders.load_samples` reads.
    ``backend`` is a registry name (see :mod:`ecellm.infer.backends`; ``backend_kw`` are its
    options, ``dtype`` included) or an already opened backend object (reused, e.g. by
    :class:`ecellm.infer.api.Model`); ``batch_size`` None is the backend's default.
    ``source`` names the data in the manifest when ``samples`` is a list. ``template=None``
    uses the model's own template (see :mod:`ecellm.infer.template`; ``template_source``
    says where a given one came from);
    ``decoding`` is a preset of :mod:`ecellm.infer.decoding` (``greedy`` or ``reference``).
    ``calibrate`` corrects choice scores by their scores on a content-free input
    (:mod:`ecellm.infer.calibration`; recorded as ``config.calibrate`` when on).
    ``offsets``: per-task answer offsets for choice scoring (:mod:`ecellm.offsets`): None (the
    default) applies the adapter's ``offsets.json`` when it ships one, False never, a path that
    file; recorded as ``config.offsets`` (the file's hash) when applied.
    """
    from ecellm.infer import decoding as presets
    from ecellm.infer.template import resolve_template

    kw = dict(backend_kw or {})
    dtype = str(kw.pop("dtype", "auto"))
    validate_options(mode=mode, template=template, backend=backend, dtype=dtype, decoding=decoding)
    if isinstance(backend, str):
        from ecellm.infer.backends import capabilities, check_options

        check_options(backend, kw)
    preset = presets.get_preset(decoding)
    try:
        mode = presets.check_mode(preset, mode)
    except ValueError as exc:
        raise InputError(str(exc), field="mode") from None
    if template_source is None:
        choice = resolve_template(model, adapter, template)
        template, template_source = choice.template, choice.source
    if preset.temperature > 0 and isinstance(backend, str) and not capabilities(backend).supports_sampling:
        raise InputError(f"decoding {decoding!r} samples; backend {backend!r} cannot", field="decoding")
    out = Path(out)
    check_out_path(out)
    source = source or (str(samples) if isinstance(samples, str | os.PathLike) else "<samples>")
    if isinstance(samples, str | os.PathLike):
        from ecellm.data.loaders import load_samples

        samples = load_samples(samples)
    samples = list(samples)[:limit] if limit is not None else list(samples)
    _check_unique(samples, source)
    config = {
        "model": _spec(model),
        "adapter": _spec(adapter),
        "backend": backend if isinstance(backend, str) else getattr(backend, "name", type(backend).__name__),
        "template": template,
        "template_source": template_source,
        "mode": mode,
        "dtype": dtype,
        "batch_size": batch_size,
        "limit": limit,
        "seed": seed,
        "decoding": preset.describe(seed),
        "data": source,
        "data_sha256": samples_sha256(samples),
    }
    if calibrate:
        config["calibrate"] = True
    offsets_file = _offsets_file(offsets, adapter)
    if offsets_file is not None:
        from ecellm.io import sha256_file
        from ecellm.offsets import read_offsets

        task_offsets = read_offsets(offsets_file)  # a malformed file fails before the model loads
        config["offsets"] = {"path": _spec(str(offsets_file)), "sha256": sha256_file(offsets_file)}
    existing = out.exists() and out.stat().st_size > 0
    if existing and resume:
        check_resume(out, config)
    elif existing and not overwrite:
        raise InputError(
            "output exists; pass resume=True (--resume) to continue it or overwrite=True", file=str(out)
        )
    output = _Output(out, resume=existing and resume, replace=existing and overwrite and not resume)
    done = output.done
    todo = [s for s in samples if s.id not in done]
    if isinstance(backend, str):
        from ecellm.infer.backends import open_backend

        engine = open_backend(backend, model, adapter=adapter, dtype=dtype, batch_size=batch_size, **kw)
    else:
        engine = backend
    if preset.temperature > 0 and not getattr(engine, "supports_sampling", False):
        name = getattr(engine, "name", backend)
        raise InputError(f"decoding {decoding!r} samples; backend {name!r} cannot", field="decoding")
    import torch

    torch.manual_seed(seed)
    # requests for every sample (cheap), so the manifest's per-task modes cover resumed runs too
    all_requests = make_requests(engine, samples, mode=mode, template=template)
    all_requests = presets.apply_preset(all_requests, preset, template)
    requests = [r for r in all_requests if r.id not in done]
    if calibrate:
        from ecellm.infer.calibration import calibrate as calibrated

        engine = calibrated(engine, samples, all_requests, template)
    if offsets_file is not None:
        from ecellm.offsets import OffsetBackend

        engine = OffsetBackend(engine, task_offsets)
    info = {"modes": modes_by_task(all_requests), "n_samples": len(samples), "resumed_done": len(done)}

    def manifest(**extra: Any) -> None:
        write_output_manifest(
            out,
            kind="predict",
            config=config,
            model=engine.describe(),
            extra={**info, **extra},
        )

    t0 = time.perf_counter()
    written = 0
    try:
        with _progress(len(todo), progress) as advance:
            for rec in run_records(engine, todo, requests):
                if not output.started:
                    output.start()
                    manifest(status="running")  # what a kill -9 leaves behind
                output.write(rec)
                written += 1
                advance()
        if not output.started:
            output.start()  # nothing to add: still apply the repair and create the file
    except BaseException as exc:
        output.close()
        if output.started:  # before the first record nothing on disk has changed
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            manifest(
                status=status, n_written=written, error=" ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            )
        raise
    output.close()
    elapsed = time.perf_counter() - t0
    manifest(
        status="complete",
        n_written=written,
        elapsed_s=round(elapsed, 3),
        samples_per_s=round(written / elapsed, 4) if elapsed > 0 else None,
    )
    return out


def _offsets_file(offsets: bool | str | os.PathLike[str] | None, adapter: str | None) -> Path | None:
    """The offsets file to apply (see :func:`predict`), or None."""
    if offsets is None or offsets is True:
        from ecellm.offsets import find_offsets

        found = find_offsets(adapter)
        if found is None and offsets is True:
            raise InputError("the adapter ships no offsets.json", file=str(adapter), field="offsets")
        return found
    if offsets is False:
        return None
    path = Path(offsets)
    if not path.is_file():
        raise InputError("offsets file not found", file=str(path), field="offsets")
    return path


class _progress:
    """A rich progress bar on stderr (samples/s and ETA); a no-op when disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self._bar = total, enabled, None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("predict"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        task = self._bar.add_task("predict", total=self.total, rate="")
        start = time.perf_counter()

        def advance() -> None:
            done = self._bar.tasks[0].completed + 1
            rate = done / max(time.perf_counter() - start, 1e-9)
            self._bar.update(task, advance=1, rate=f"{rate:.2f} samples/s")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
