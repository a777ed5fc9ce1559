"""Cross-request batching: concurrent HTTP requests share the inference backend's batches.

Why: on a CPU (or a GPU) one decoding step for 24 rows costs little more than for one row,
because reading the weights dominates; a server that runs requests one at a time leaves that
throughput unused, and under load every request waits for all the ones queued before it.

How (micro-batching): :meth:`Batcher.run` queues the caller's requests and waits. One
dispatcher per event loop takes everything that is queued (whole callers, up to ``max_rows``
prompts), hands it to the backend in one ``run`` call on the single model thread, and hands
each caller its completions as soon as its own rows are done. While the model is busy, new
callers pile up and form the next batch; when it is idle, the first caller waits ``window_s``
so that callers arriving together share a batch, and the wait is extended window by window
while callers keep arriving (a burst of 60 clients can take longer than one window to reach
the server on a busy machine, and a burst split in two costs a second set of decode steps), up
to ``max_wait_s`` or until a call's rows are full. A call never holds more rows than the
backend decodes in one ``generate`` (its ``rows_per_batch``): 64 rows against a 60-row
backend batch ran as 60 rows plus a 4-row batch that cost nearly as much as the 60.
``enabled=False`` runs one caller per model call (the serialised baseline the benchmark
compares against).

Only requests that decode alike share a backend call: the same mode, sampling parameters and
(for free generation) stop strings, because the ``hf`` backend applies the first row's sampling
and the union of stop strings to a whole batch. Sampled requests (temperature > 0) never share
a call with another caller, so a seed reproduces their text. Greedy rows may differ from a
single-row run in the last bits of their logits (padding changes the shapes), which can flip a
near-tie token; ``ecellm predict`` batches the same way.

A caller's failure stays its own: when a merged call raises, each caller is re-run alone.
Scoring and any other model work go through :meth:`Batcher.call` on the same thread, so no
two forward passes ever overlap.

Shutting down (:meth:`Batcher.close_queue`, called when the server starts to stop): every caller
still queued, and every later one, gets :class:`ServerClosing` (the server answers 503) at once,
instead of the server waiting for the whole queue to be decoded one batch after another; only
the model call already running finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ecellm.infer.base import Completion, Request
from ecellm.serve.metrics import Metrics

log = logging.getLogger(__name__)

# (index of the request in its caller's list, new token id), called on the event loop
TokenCallback = Callable[[int, int], None]


_sleep = asyncio.sleep  # the batching window's wait (tests drive it without a clock)


class ServerClosing(RuntimeError):
    """The server is shutting down: the request was not (and will not be) run."""


@dataclass
class _Job:
    """One caller's requests, waiting for or inside a model call."""

    requests: list[Request]
    future: asyncio.Future[list[Completion]]
    loop: asyncio.AbstractEventLoop
    seed: int | None = None
    on_token: TokenCallback | None = None
    done: dict[int, Completion] = field(default_factory=dict)
    settled: bool = False  # set on the model thread once a result or error is on its way


class Batcher:
    """Gathers concurrent callers' requests into shared backend calls (see the module doc).

    ``backend`` is anything with the :class:`ecellm.infer.base.Backend` ``run`` method; a
    ``step_listener`` attribute (the ``hf`` backend's) enables per-token streaming.
    """

    def __init__(
        self,
        backend: Any,
        *,
        enabled: bool = True,
        max_rows: int = 64,
        window_s: float = 0.02,
        max_wait_s: float = 0.25,
        metrics: Metrics | None = None,
    ) -> None:
        self.backend = backend
        self.enabled = enabled
        per_generate = getattr(backend, "rows_per_batch", None)
        limit = int(per_generate("generate")) if callable(per_generate) else int(max_rows)
        self.max_rows = max(1, min(int(max_rows), limit))
        self.window_s = max(0.0, float(window_s))
        self.max_wait_s = max(self.window_s, float(max_wait_s))
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecellm-model")
        self._pending: list[_Job] = []
        self._dispatcher: asyncio.Task[None] | None = None
        self._listeners: dict[str, tuple[_Job, int]] = {}  # model thread only
        self.closing = False

    # -- public API ---------------------------------------------------------------------------
    async def run(
        self, requests: list[Request], *, seed: int | None = None, on_token: TokenCallback | None = None
    ) -> list[Completion]:
        """Completions of ``requests`` in the same order, decoded in shared batches.

        ``seed`` seeds sampling (temperature > 0; default 0); ``on_token(i, token_id)`` receives
        each new token of ``requests[i]`` (free generation only) on the event loop.
        """
        if not requests:
            return []
        if self.closing:
            raise ServerClosing("the server is shutting down; retry later")
        loop = asyncio.get_running_loop()
        job = _Job(list(requests), loop.create_future(), loop, seed, on_token)
        self._pending.append(job)
        if self._dispatcher is None or self._dispatcher.done() or self._dispatcher.get_loop() is not loop:
            self._dispatcher = loop.create_task(self._dispatch())
        return await job.future

    async def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run ``fn`` on the model thread (between batches, never during one)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kw))

    def close_queue(self) -> int:
        """Refuse new callers and fail the queued ones with :class:`ServerClosing` (the model
        call already running finishes); returns how many callers were failed. Event loop only."""
        self.closing = True
        jobs, self._pending = self._pending, []
        exc = ServerClosing("the server is shutting down; the request was not run")
        for job in jobs:
            _fail(job, exc)
        return len(jobs)

    def close(self) -> None:
        self.close_queue()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- dispatching (event loop) -----------------------------------------------------------
    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        if self.window_s and self.enabled:
            await self._gather_window(loop)
        while self._pending:
            jobs = self._take()
            if not jobs:
                continue
            if self.metrics is not None:
                self.metrics.record_batch(sum(len(j.requests) for j in jobs), len(jobs))
            try:
                await loop.run_in_executor(self._executor, self._execute, jobs)
            except Exception as exc:  # the executor itself failed (shut down): fail the callers
                for job in jobs:
                    _fail(job, exc)

    async def _gather_window(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait ``window_s``, and again while callers keep arriving (see the module doc)."""
        start = loop.time()
        while True:
            seen = len(self._pending)
            await _sleep(self.window_s)
            rows = sum(len(j.requests) for j in self._pending)
            if (
                len(self._pending) == seen
                or rows >= self.max_rows
                or loop.time() - start + self.window_s > self.max_wait_s
            ):
                return

    def _take(self) -> list[_Job]:
        """The next model call's callers: the first one, then more while rows fit."""
        first = self._pending.pop(0)
        jobs = [first] if not first.future.done() else []  # a cancelled caller is dropped
        rows = len(first.requests)
        while self.enabled and self._pending and rows + len(self._pending[0].requests) <= self.max_rows:
            job = self._pending.pop(0)
            if not job.future.done():
                jobs.append(job)
                rows += len(job.requests)
        return jobs

    # -- the model thread -----------------------------------------------------------------
    def _execute(self, jobs: list[_Job]) -> None:
        try:
            self._run_jobs(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                log.exception("model call failed")
                _fail(jobs[0], exc)
                return
            log.warning("a shared model call failed (%s); re-running its %d callers alone", exc, len(jobs))
            for job in jobs:
                if not job.settled:
                    job.done.clear()
                    self._execute([job])

    def _run_jobs(self, jobs: list[_Job]) -> None:
        groups: dict[tuple[Any, ...], list[Request]] = defaultdict(list)
        owner: dict[str, tuple[_Job, int]] = {}
        for j, job in enumerate(jobs):
            for i, r in enumerate(job.requests):
                rid = f"{j}.{i}"
                owner[rid] = (job, i)
                sampled = r.temperature > 0 and r.mode == "generate"
                key = (
                    r.mode,
                    r.temperature if sampled else 0.0,
                    r.top_p if sampled else 1.0,
                    tuple(r.stop) if r.mode == "generate" else (),
                    j if sampled else -1,
                )
                groups[key].append(replace(r, id=rid))
        streaming = {rid: o for rid, o in owner.items() if o[0].on_token is not None}
        listener_set = bool(streaming) and hasattr(self.backend, "step_listener")
        if listener_set:
            self._listeners = streaming
            self.backend.step_listener = self._on_step
        try:
            for key, reqs in sorted(groups.items(), key=lambda kv: str(kv[0])):
                if key[-1] >= 0:  # sampled: seed the generator as a lone request would
                    import torch

                    torch.manual_seed(jobs[key[-1]].seed or 0)
                for c in self.backend.run(reqs):
                    job, i = owner[c.id]
                    job.done[i] = replace(c, id=job.requests[i].id)
                    if len(job.done) == len(job.requests):
                        _resolve(job)
        finally:
            if listener_set:
                self.backend.step_listener = None
                self._listeners = {}
        for job in jobs:
            if not job.settled:
                _fail(
                    job, RuntimeError(f"backend returned {len(job.done)} of {len(job.requests)} completions")
                )

    def _on_step(self, rows: list[str], tokens: list[int]) -> None:
        for rid, tok in zip(rows, tokens, strict=False):
            target = self._listeners.get(rid)
            if target is not None:
                job, i = target
                job.loop.call_soon_threadsafe(_deliver, job, i, tok)


def _deliver(job: _Job, index: int, token: int) -> None:
    if job.on_token is not None and not job.future.done():
        job.on_token(index, token)


def _resolve(job: _Job) -> None:
    job.settled = True
    out = [job.done[i] for i in range(len(job.requests))]

    def settle() -> None:
        if not job.future.done():
            job.future.set_result(out)

    job.loop.call_soon_threadsafe(settle)


def _fail(job: _Job, exc: BaseException) -> None:
    job.settled = True

    def settle() -> None:
        if not job.future.done():
            job.future.set_exception(exc)

    job.loop.call_soon_threadsafe(settle)
