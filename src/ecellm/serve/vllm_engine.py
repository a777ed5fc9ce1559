"""``ecellm serve --engine vllm``: vLLM's own OpenAI server behind ecellm's front (GPU hosts).

Why: on a GPU, vLLM's continuous batching and paged attention serve far more requests per
second than the ``hf`` backend; its OpenAI server is mature, so ecellm starts it rather than
re-implementing it. What ecellm adds in front, on the public port: the same token check,
body limit, JSON errors, ``/metrics`` and the typed task endpoints (their requests reach vLLM
through :class:`~ecellm.infer.backends.openai.OpenAIBackend`: choices scored by ``echo`` +
``logprobs``, constrained answers through vLLM's ``structured_outputs``).

The vLLM server listens on a free loopback port only, with a random API key in its
environment (``VLLM_API_KEY``, not argv), so nothing reaches it except through the front. A
LoRA adapter is merged into its base first (:func:`ecellm.train.export.merge`): vLLM then
serves one plain model at full speed.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends
from fastapi import Request as HTTPRequest
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from ecellm.errors import InputError

INSTALL_HINT = "pip install 'ecellm[vllm]' (needs a CUDA GPU)"
KEY_ENV = "ECELLM_VLLM_KEY"  # the upstream key, for the in-process OpenAI backend of the tasks
PROXIED = ("/v1/models", "/v1/completions", "/v1/chat/completions")


def require_vllm() -> None:
    """One-line error where vLLM is not installed (checked before any model work)."""
    from ecellm.infer.backends import MissingDependency

    if importlib.util.find_spec("vllm") is None:
        raise MissingDependency(
            f"--engine vllm needs vLLM, which is not installed: {INSTALL_HINT}", field="engine"
        )


def vllm_command(
    model_dir: str, *, port: int, served_name: str, dtype: str = "auto", extra: Sequence[str] = ()
) -> list[str]:
    """The command line of vLLM's OpenAI server on ``127.0.0.1:port``."""
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        dtype,
        *extra,
    ]


def model_folder(model_spec: str, adapter: str | None, workdir: Path) -> str:
    """What vLLM loads: the base folder or hub id as it is; a LoRA adapter merged into its base,
    or a GGUF model (the embedded ones) dequantised, saved as a safetensors folder in ``workdir``."""
    from ecellm.models.registry import resolve_model

    if adapter:
        from ecellm.train.export import merge

        return str(merge(adapter, workdir / "merged", base=model_spec))
    source = resolve_model(model_spec)
    if not source.gguf_file:
        return source.path
    from ecellm.models.loading import load_model_and_tokenizer

    loaded = load_model_and_tokenizer(model_spec, dtype="float32", device="cpu")
    out = workdir / "model"
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: Any, timeout_s: float) -> None:
    """Poll vLLM's ``/health`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InputError(
                f"the vLLM server exited with code {proc.returncode}; see its log above", field="engine"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise InputError(f"the vLLM server did not become ready within {timeout_s:.0f} s", field="engine")


def create_front_app(
    upstream: str,
    served_name: str,
    *,
    upstream_key: str | None = None,
    token: str | None = None,
    max_body_bytes: int = 1_000_000,
    task_template: str = "alpaca",
    max_batch: int = 64,
) -> Any:
    """The public app: the OpenAI endpoints forwarded to ``upstream`` (streams included), the
    task endpoints on an OpenAI backend pointing at it, and the shared front parts."""
    from ecellm.infer.backends.openai import OpenAIBackend
    from ecellm.serve.app import base_app, mount_task_routes
    from ecellm.serve.batching import Batcher
    from ecellm.serve.metrics import Metrics
    from ecellm.serve.security import resolve_token

    metrics = Metrics()
    app, authorize = base_app(
        served_name, resolve_token(token), metrics, max_body_bytes, about={"engine": "vllm"}
    )
    headers = {"Authorization": f"Bearer {upstream_key}"} if upstream_key else {}
    client = httpx.AsyncClient(base_url=upstream, headers=headers, timeout=httpx.Timeout(600, connect=10))
    if upstream_key:
        os.environ[KEY_ENV] = upstream_key
    backend = OpenAIBackend(
        served_name,
        base_url=f"{upstream}/v1",
        api_key_env=KEY_ENV,
        concurrency=max_batch,
        chat=False,
        choice_scoring="echo",
        constraint_field="structured_outputs",
    )
    app.state.backend = backend
    app.state.batcher = Batcher(backend, max_rows=max_batch, metrics=metrics)
    app.state.task_template = task_template
    app.state.engine = None  # prompts are rendered by vLLM's tokenizer; no local model

    async def forward(request: HTTPRequest) -> StreamingResponse:
        body = await request.body()
        kind = {"content-type": request.headers.get("content-type", "application/json")}
        sent = client.build_request(request.method, request.url.path, content=body, headers=kind)
        reply = await client.send(sent, stream=True)
        return StreamingResponse(
            reply.aiter_raw(),
            status_code=reply.status_code,
            media_type=reply.headers.get("content-type"),
            background=BackgroundTask(reply.aclose),
        )

    for path in PROXIED:
        methods = ["GET"] if path == "/v1/models" else ["POST"]
        app.add_api_route(path, forward, methods=methods, dependencies=[Depends(authorize)])
    mount_task_routes(app, authorize)
    return app


def serve_vllm(
    model_spec: str,
    *,
    adapter: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    served_name: str | None = None,
    template: str | None = None,
    vllm_args: Sequence[str] = (),
    startup_timeout_s: float = 900.0,
    log_level: str = "info",
    max_body_bytes: int = 1_000_000,
) -> None:
    """Start vLLM's server on a loopback port and serve the front on ``host:port`` until
    interrupted; the vLLM process is stopped on the way out."""
    import uvicorn

    from ecellm.infer.template import resolve_template
    from ecellm.serve.security import check_bind, resolve_token

    require_vllm()
    secret = resolve_token(token)
    check_bind(host, secret)
    name = served_name or model_spec
    with tempfile.TemporaryDirectory(prefix="ecellm-vllm-") as work:
        folder = model_folder(model_spec, adapter, Path(work))
        upstream_port = free_port()
        key = secrets.token_urlsafe(24)
        cmd = vllm_command(folder, port=upstream_port, served_name=name, extra=vllm_args)
        proc = subprocess.Popen(cmd, env={**os.environ, "VLLM_API_KEY": key})
        try:
            upstream = f"http://127.0.0.1:{upstream_port}"
            wait_ready(upstream, proc, startup_timeout_s)
            app = create_front_app(
                upstream,
                name,
                upstream_key=key,
                token=secret,
                max_body_bytes=max_body_bytes,
                task_template=resolve_template(model_spec, adapter, template).template,
            )
            uvicorn.run(app, host=host, port=port, log_level=log_level)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
