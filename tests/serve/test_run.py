"""Running the server: shutting down with requests queued for the model answers them with 503."""

from __future__ import annotations

import os
import threading

import httpx

from ecellm.infer.base import Completion
from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class GateBackend:
    """Answers each prompt with 'ok' once the test opens the gate (the model call is held)."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.step_listener = None
        self.prompts: list[str] = []

    def run(self, requests):
        self.started.set()
        assert self.release.wait(120), "the test never opened the gate"
        for r in requests:
            self.prompts.append(r.prompt)
            yield Completion(id=r.id, text="ok", raw="ok", completion_tokens=1)


def test_shutdown_answers_queued_requests_with_json_503_and_finishes_the_running_one(smollm2, monkeypatch):
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    app = create_app(loaded=smollm2, served_name="smol", batching=False, window_ms=0)
    gate = GateBackend()
    batcher = app.state.batcher
    batcher.backend = gate
    srv = BackgroundServer(app)
    srv.__enter__()
    results: dict[str, httpx.Response] = {}

    def call(name: str) -> None:
        body = {"prompt": name, "max_tokens": 1}
        results[name] = httpx.post(f"{srv.base_url}/completions", json=body, timeout=120)

    try:
        first = threading.Thread(target=call, args=("first",))
        first.start()
        assert gate.started.wait(60)
        queued = [threading.Thread(target=call, args=(f"queued{i}",)) for i in range(3)]
        for t in queued:
            t.start()
        pause = threading.Event()  # never set: wait() is a sleep
        for _ in range(3000):  # until the three are queued (bounded)
            if len(batcher._pending) >= 3:
                break
            pause.wait(0.02)
        assert len(batcher._pending) == 3
        srv._server.should_exit = True  # what SIGINT/SIGTERM do
        for t in queued:  # answered while the running model call is still held at the gate
            t.join(60)
            assert not t.is_alive()
        assert not gate.release.is_set() and first.is_alive()
        for i in range(3):
            r = results[f"queued{i}"]
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "server_shutting_down"
        gate.release.set()
        first.join(60)
        assert results["first"].status_code == 200
        assert results["first"].json()["choices"][0]["text"] == "ok"
        assert gate.prompts == ["first"]  # the queue never reached the model
    finally:
        gate.release.set()
        srv.__exit__(None, None, None)
    assert not srv._thread.is_alive()
