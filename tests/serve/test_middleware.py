"""Body limit (413) and per-request metrics, on a real server over localhost."""

from __future__ import annotations

import functools

import httpx

from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer

post = functools.partial(httpx.post, timeout=120)
get = functools.partial(httpx.get, timeout=120)


def test_oversized_bodies_get_413_json_declared_or_chunked(smollm2, monkeypatch):
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    with BackgroundServer(create_app(loaded=smollm2, max_body_bytes=2000)) as srv:
        url = f"{srv.base_url}/completions"
        big = post(url, json={"prompt": "word " * 1000, "max_tokens": 1})

        def chunks():  # no Content-Length: the limit must hold while reading
            for _ in range(10):
                yield b" " * 500

        chunked = post(url, content=chunks(), headers={"Content-Type": "application/json"})
        for r in (big, chunked):
            assert r.status_code == 413 and r.headers["content-type"] == "application/json", r.text
            err = r.json()["error"]
            assert err["code"] == "request_too_large" and "2000 bytes" in err["message"]
        small = post(url, json={"prompt": "Hi", "max_tokens": 1})
        assert small.status_code == 200, small.text
        metrics = get(f"http://127.0.0.1:{srv.port}/metrics").text
    assert 'ecellm_errors_total{route="unmatched",status="413"} 2' in metrics
    assert 'ecellm_requests_total{route="/v1/completions",status="200"} 1' in metrics
