"""Run the server: in the foreground for ``ecellm serve``, or in a background thread.

The background form exists so that a test, a notebook or a benchmark can start a real HTTP
server on a free localhost port, point an OpenAI client at it and shut it down again, without
a subprocess and without loading the model twice.

Both run :class:`DrainingServer`: uvicorn's graceful shutdown waits for every request in flight,
and with a queue of requests waiting for the model that meant decoding all of them first (minutes
under load). Here the queue is failed with a JSON 503 as soon as shutdown starts, and only the
model call already running is waited for.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from ecellm.serve.security import check_bind, resolve_token


def serve(
    model_spec: str = "smollm2-135m",
    *,
    adapter: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    served_name: str | None = None,
    log_level: str = "info",
    **app_kw: Any,
) -> None:
    """Load the model and serve it until interrupted; refuses public binds without a token."""
    from ecellm.serve.app import create_app

    secret = resolve_token(token)
    check_bind(host, secret)  # before loading the model: fail fast on a bad command line
    app = create_app(model_spec, adapter=adapter, token=secret, served_name=served_name, **app_kw)
    DrainingServer(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()


class DrainingServer(uvicorn.Server):
    """uvicorn's server that, when shutdown starts, fails the requests still queued for the
    model (503) before waiting for the ones in flight (see the module docstring)."""

    async def shutdown(self, sockets: Any = None) -> None:
        batcher = getattr(getattr(self.config.app, "state", None), "batcher", None)
        if batcher is not None and hasattr(batcher, "close_queue"):
            batcher.close_queue()
        await super().shutdown(sockets)


class BackgroundServer:
    """A uvicorn server on ``host`` in a daemon thread; use as a context manager.

    ``port=0`` picks a free port; the chosen one is in :attr:`port` / :attr:`base_url` once
    the context is entered. The same bind rule as :func:`serve` applies.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        check_bind(host, resolve_token(token))
        self.host = host
        self._timeout = startup_timeout
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = DrainingServer(config)
        self._thread = threading.Thread(target=self._server.run, name="ecellm-serve", daemon=True)
        self.port: int = port

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
