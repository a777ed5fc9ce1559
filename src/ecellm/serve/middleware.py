"""ASGI middleware of ``ecellm serve``: request-size limit and per-request metrics.

Why plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: the latter buffers streamed
responses awkwardly and cannot see when a stream really ends; here the latency of a streamed
reply is measured to its last byte, and an oversized body is refused (413) before any of it
reaches JSON parsing, even when the client sends no ``Content-Length`` (chunked upload).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ecellm.serve.metrics import Metrics

Scope = dict[str, Any]


def _json_error(status: int, message: str, kind: str, code: str | None) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, body


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 and an OpenAI-shaped JSON error."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks, size = [], 0
        while True:  # read the (bounded) body now, replay it to the app below
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        msg = f"request body exceeds the limit of {self.max_bytes} bytes"
        start, body = _json_error(413, msg, "invalid_request_error", "request_too_large")
        await send(start)
        await send({"type": "http.response.body", "body": body})


class RecordMetrics:
    """Count every HTTP request by route template and status, and time it to its last byte."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        recorded = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body") and not recorded:
                recorded = True
                self.metrics.record_request(_route(scope), status, time.perf_counter() - start)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not recorded:  # failed or disconnected before the last byte
                self.metrics.record_request(_route(scope), status, time.perf_counter() - start)


def _route(scope: Scope) -> str:
    """The matched route's template (``/v1/tasks/{task}``), not the raw path: bounded labels."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
