"""The cross-request batcher, on a recording backend (no model: milliseconds per test)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ecellm.infer.base import Completion, Request
from ecellm.serve import batching
from ecellm.serve.batching import Batcher, ServerClosing
from ecellm.serve.metrics import Metrics


class Recorder:
    """A backend that answers each prompt upper-cased and records every ``run`` call."""

    name = "recorder"

    def __init__(self, delay: float = 0.05, fail_on: str | None = None) -> None:
        self.calls: list[list[Request]] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on
        self.step_listener = None
        self.listened: list[bool] = []

    def run(self, requests):
        reqs = list(requests)
        self.calls.append(reqs)
        self.listened.append(self.step_listener is not None)
        self.threads.add(threading.current_thread().name)
        if self.fail_on and any(r.prompt == self.fail_on for r in reqs):
            raise ValueError("bad prompt")
        time.sleep(self.delay)
        for r in reversed(reqs):  # any order, as backends may yield
            if self.step_listener is not None:
                self.step_listener([r.id], [len(r.prompt)])
            yield Completion(id=r.id, text=r.prompt.upper(), raw=r.prompt.upper(), completion_tokens=1)


def req(prompt: str, **kw) -> Request:
    return Request(id=f"id-{prompt}", prompt=prompt, max_new_tokens=4, **kw)


async def gather_callers(batcher: Batcher, callers: list[list[Request]]):
    return await asyncio.gather(*(batcher.run(c) for c in callers))


def test_concurrent_callers_share_one_call_and_keep_their_order():
    backend, metrics = Recorder(), Metrics()
    batcher = Batcher(backend, metrics=metrics)
    callers = [[req(f"a{i}"), req(f"b{i}")] for i in range(10)]
    results = asyncio.run(gather_callers(batcher, callers))
    for caller, out in zip(callers, results, strict=True):
        assert [c.id for c in out] == [r.id for r in caller]  # caller's ids and order come back
        assert [c.text for c in out] == [r.prompt.upper() for r in caller]
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 20
    assert backend.threads == {"ecellm-model_0"}  # the model runs on its own thread
    assert metrics.batch_rows.sum == 20 and metrics.batch_requests.sum == 10 and metrics.batch_rows.count == 1


def test_batching_off_runs_one_caller_per_call():
    backend = Recorder(delay=0.0)
    batcher = Batcher(backend, enabled=False)
    asyncio.run(gather_callers(batcher, [[req(f"p{i}")] for i in range(5)]))
    assert [len(c) for c in backend.calls] == [1] * 5


def test_callers_arriving_while_the_model_is_busy_form_the_next_batch():
    backend = Recorder(delay=0.2)
    batcher = Batcher(backend, window_s=0.0)

    async def main():
        first = asyncio.ensure_future(batcher.run([req("first")]))
        await asyncio.sleep(0.05)  # the first call is running now
        later = [asyncio.ensure_future(batcher.run([req(f"later{i}")])) for i in range(6)]
        await asyncio.gather(first, *later)

    asyncio.run(main())
    assert [len(c) for c in backend.calls] == [1, 6]


def test_max_rows_bounds_a_call_but_never_splits_a_caller():
    backend = Recorder(delay=0.0)
    batcher = Batcher(backend, max_rows=5)
    asyncio.run(gather_callers(batcher, [[req(f"{c}{i}") for i in range(3)] for c in "abcd"]))
    assert [len(c) for c in backend.calls] == [3, 3, 3, 3]  # 3 + 3 > 5
    asyncio.run(gather_callers(batcher, [[req(f"big{i}") for i in range(8)]]))
    assert len(backend.calls[-1]) == 8  # a caller larger than max_rows still runs whole


def test_only_requests_that_decode_alike_share_a_backend_call():
    backend = Recorder(delay=0.0)
    batcher = Batcher(backend)
    callers = [
        [req("x1", stop=("\n",))],
        [req("x2", stop=("\n",))],
        [req("y1", stop=(".",))],  # other stop strings: the hf backend would stop it at "\n"
        [req("s1", temperature=0.7)],  # sampled: alone, so its seed reproduces its text
        [req("s2", temperature=0.7)],
        [req("c1", mode="choice", choices=["a", "b"])],
    ]
    asyncio.run(gather_callers(batcher, callers))
    groups = sorted(sorted(r.prompt for r in call) for call in backend.calls)
    assert groups == [["c1"], ["s1"], ["s2"], ["x1", "x2"], ["y1"]]


def test_a_failing_caller_does_not_fail_the_others_it_was_batched_with():
    backend = Recorder(delay=0.0, fail_on="bad")
    batcher = Batcher(backend)

    async def main():
        return await asyncio.gather(
            batcher.run([req("good1")]),
            batcher.run([req("bad")]),
            batcher.run([req("good2")]),
            return_exceptions=True,
        )

    good1, bad, good2 = asyncio.run(main())
    assert isinstance(bad, ValueError)
    assert good1[0].text == "GOOD1" and good2[0].text == "GOOD2"


def test_tokens_reach_the_caller_before_its_result():
    backend = Recorder(delay=0.0)
    batcher = Batcher(backend)
    seen: list[tuple[int, int]] = []

    async def main():
        out = await batcher.run([req("ab"), req("abcd")], on_token=lambda i, t: seen.append((i, t)))
        at_result = list(seen)
        await batcher.run([req("plain")])
        return out, at_result

    out, at_result = asyncio.run(main())
    assert sorted(at_result) == [(0, 2), (1, 4)] and len(out) == 2
    assert backend.listened == [True, False]  # no per-step calls for a caller that did not ask


def test_cancelled_callers_are_not_run():
    backend = Recorder(delay=0.2)
    batcher = Batcher(backend, window_s=0.0)

    async def main():
        first = asyncio.ensure_future(batcher.run([req("first")]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.run([req("gone")]))
        kept = asyncio.ensure_future(batcher.run([req("kept")]))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.gather(first, kept)

    asyncio.run(main())
    assert [[r.prompt for r in c] for c in backend.calls] == [["first"], ["kept"]]


@pytest.mark.parametrize("enabled", [True, False])
def test_call_runs_on_the_model_thread(enabled):
    batcher = Batcher(Recorder(), enabled=enabled)
    assert asyncio.run(batcher.call(lambda: threading.current_thread().name)) == "ecellm-model_0"


class Gate(Recorder):
    """A recorder whose calls wait until the test opens the gate (no sleeps, no timing)."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.started, self.release = threading.Event(), threading.Event()

    def run(self, requests):
        self.started.set()
        assert self.release.wait(60), "the test never opened the gate"
        yield from super().run(requests)


def test_closing_the_queue_fails_queued_callers_at_once_and_lets_the_running_call_finish():
    backend = Gate()
    batcher = Batcher(backend, enabled=False, window_s=0.0)

    async def main():
        running = asyncio.ensure_future(batcher.run([req("running")]))
        queued = [asyncio.ensure_future(batcher.run([req(f"queued{i}")])) for i in range(3)]
        while not backend.started.is_set():
            await asyncio.sleep(0.01)
        assert batcher.close_queue() == 3
        # the queued callers are answered while the model call is still held at the gate
        for q in queued:
            with pytest.raises(ServerClosing):
                await q
        assert not running.done() and not backend.release.is_set()
        with pytest.raises(ServerClosing):  # and nobody new gets in
            await batcher.run([req("late")])
        backend.release.set()
        return await running

    (done,) = asyncio.run(main())
    assert done.text == "RUNNING"
    assert [[r.prompt for r in c] for c in backend.calls] == [["running"]]  # the queue never ran


def test_the_window_is_extended_while_callers_keep_arriving(monkeypatch):
    backend = Recorder(delay=0.0)
    batcher = Batcher(backend, window_s=0.05, max_wait_s=30.0)
    callers: list[asyncio.Future] = []
    windows: list[int] = []

    async def window(seconds: float) -> None:  # one more caller arrives in each of 4 windows
        windows.append(len(batcher._pending))
        if len(windows) <= 4:
            callers.append(asyncio.ensure_future(batcher.run([req(f"late{len(windows)}")])))
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    monkeypatch.setattr(batching, "_sleep", window)

    async def main():
        callers.append(asyncio.ensure_future(batcher.run([req("first")])))
        await asyncio.sleep(0)
        while len(callers) < 5 or not all(c.done() for c in callers):
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert windows == [1, 2, 3, 4, 5]  # waited until a window passed without a newcomer
    assert [len(c) for c in backend.calls] == [5]


def test_a_call_holds_no_more_rows_than_the_backend_decodes_at_once():
    class SixRows(Recorder):
        def rows_per_batch(self, mode):
            return 6

    backend = SixRows(delay=0.0)
    batcher = Batcher(backend, max_rows=64)
    assert batcher.max_rows == 6
    asyncio.run(gather_callers(batcher, [[req(f"a{i}"), req(f"b{i}")] for i in range(5)]))
    assert [len(c) for c in backend.calls] == [6, 4]
