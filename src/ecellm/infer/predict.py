"""The predict loop: samples in, one JSONL record per sample out, appended as it goes.

Why append instead of writing at the end (as the reference does): a run killed after an hour
keeps its hour of work. ``resume=True`` reads the existing file (a half-written last line left
by ``kill -9`` is dropped by :class:`~ecellm.io.JsonlAppender`), skips the ids already there
and appends the rest, so every id ends up exactly once. Without ``resume`` an existing output is
an error unless ``overwrite=True``: silently appending would duplicate ids and silently
truncating would throw away finished work.

Record: ``{"id", "task", "setting", "prediction", "raw", "mode", "prompt_tokens",
"completion_tokens", "latency_s"}``; ``<out>.manifest.json`` records model, adapter, backend,
template, decoding, the mode used per task, seed and library versions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.infer.base import Completion, Request
from ecellm.infer.requests import build_request
from ecellm.io import JsonlAppender, iter_jsonl
from ecellm.manifest import write_manifest

SEED = 0


def manifest_path(out: str | os.PathLike[str]) -> Path:
    return Path(str(out) + ".manifest.json")


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
    return {
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


def _done_ids(out: Path) -> set[str]:
    done = set()
    for line, rec in iter_jsonl(out, skip_truncated_tail=True):
        rid = rec.get("id")
        if not isinstance(rid, str):
            raise InputError("prediction record without a string id", file=str(out), record=line, field="id")
        done.add(rid)
    return done


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
    batch_size: int = 8,
    limit: int | None = None,
    progress: bool = True,
    backend_kw: dict[str, Any] | None = None,
    source: str | None = None,
    template_source: str | None = None,
    decoding: str = "greedy",
    seed: int = SEED,
) -> Path:
    """Predict every sample into ``out`` (JSONL); returns ``out``.

    ``samples`` is a list of samples or a path :func:`ecellm.data.loaders.load_samples` reads.
    ``backend`` is a registry name (see :mod:`ecellm.infer.backends`) or an already built
    backend object (reused, e.g. by :class:`ecellm.infer.api.Model`). ``source`` names the data
    in the manifest when ``samples`` is a list. ``template=None`` uses the model's own template
    (see :mod:`ecellm.infer.template`; ``template_source`` says where a given one came from);
    ``decoding`` is a preset of :mod:`ecellm.infer.decoding` (``greedy`` or ``reference``).
    """
    from ecellm.infer import decoding as presets
    from ecellm.infer.template import resolve_template

    preset = presets.get_preset(decoding)
    mode = presets.check_mode(preset, mode)
    if template_source is None:
        choice = resolve_template(model, adapter, template)
        template, template_source = choice.template, choice.source
    source = source or (str(samples) if isinstance(samples, str | os.PathLike) else "<samples>")
    if isinstance(samples, str | os.PathLike):
        from ecellm.data.loaders import load_samples

        samples = load_samples(samples)
    samples = list(samples)[:limit] if limit is not None else list(samples)
    _check_unique(samples, source)
    out = Path(out)
    done: set[str] = set()
    if out.exists() and out.stat().st_size > 0:
        if resume:
            done = _done_ids(out)
        elif overwrite:
            out.unlink()
        else:
            raise InputError(
                "output exists; pass resume=True (--resume) to continue it or overwrite=True", file=str(out)
            )
    todo = [s for s in samples if s.id not in done]
    if isinstance(backend, str):
        from ecellm.infer.api import load_model

        kw = dict(backend_kw or {})
        if backend == "hf":
            kw.setdefault("batch_size", batch_size)
        engine = load_model(model, adapter=adapter, backend=backend, **kw).backend
    else:
        engine = backend
    if preset.temperature > 0 and not getattr(engine, "supports_sampling", False):
        name = getattr(engine, "name", backend)
        raise ValueError(f"decoding {decoding!r} samples; backend {name!r} cannot")
    import torch

    torch.manual_seed(seed)
    # requests for every sample (cheap), so the manifest's per-task modes cover resumed runs too
    all_requests = make_requests(engine, samples, mode=mode, template=template)
    all_requests = presets.apply_preset(all_requests, preset, template)
    requests = [r for r in all_requests if r.id not in done]
    config = {
        "model": model,
        "adapter": adapter,
        "backend": getattr(engine, "name", str(backend)),
        "template": template,
        "template_source": template_source,
        "mode": mode,
        "batch_size": batch_size,
        "limit": limit,
        "seed": seed,
        "decoding": preset.describe(seed),
        "data": source,
    }
    info = {"modes": modes_by_task(all_requests), "n_samples": len(samples), "resumed_done": len(done)}
    write_manifest(
        manifest_path(out),
        kind="predict",
        config=config,
        model=engine.describe(),
        extra={**info, "status": "running"},
    )
    t0 = time.perf_counter()
    written = 0
    with JsonlAppender(out) as sink, _progress(len(todo), progress) as advance:
        for rec in run_records(engine, todo, requests):
            sink.write(rec)
            written += 1
            advance()
    elapsed = time.perf_counter() - t0
    write_manifest(
        manifest_path(out),
        kind="predict",
        config=config,
        model=engine.describe(),
        extra={
            **info,
            "status": "complete",
            "n_written": written,
            "elapsed_s": round(elapsed, 3),
            "samples_per_s": round(written / elapsed, 4) if elapsed > 0 else None,
        },
    )
    return out


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
