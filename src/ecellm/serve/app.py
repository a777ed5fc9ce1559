"""An OpenAI-compatible HTTP API over an ecellm model (``ecellm serve``).

Why a server at all: the paper's API baselines (GPT-4, Gemini, Claude) run through
:class:`ecellm.infer.backends.openai.OpenAIBackend`; serving our own tuned models behind the
same protocol lets one client, one prompt format and one scorer cover both, and lets other
tools (lm-eval-harness, chat UIs) talk to an ecellm model without code.

Endpoints: ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /v1/models``,
``POST /v1/completions`` (prompt string or list, ``max_tokens``, ``temperature``, ``stop``,
``stream``, ``logprobs`` and ``echo`` for scoring), ``POST /v1/chat/completions`` (messages
rendered in the model's template; ``stream``) and, where :mod:`ecellm.serve.tasks_router` is
installed, the typed task endpoints. Generation runs on the ``hf`` inference backend with
concurrent requests sharing batches (:mod:`ecellm.serve.batching`).

Every error, including an unexpected one (500), an unknown route (404), an invalid body (422)
and an oversized one (413), is JSON in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``: a client parsing errors never meets plain text.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecellm.models.loading import LoadedModel
from ecellm.serve.batching import Batcher, ServerClosing
from ecellm.serve.engine import Engine
from ecellm.serve.metrics import Metrics
from ecellm.serve.middleware import BodyLimit, RecordMetrics
from ecellm.serve.openai_routes import build_router
from ecellm.serve.security import resolve_token, token_matches

# HTTP status -> OpenAI error type and code
_KINDS = {
    401: ("authentication_error", "invalid_api_key"),
    404: ("not_found_error", None),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "server_shutting_down"),
}


class APIError(HTTPException):
    """An HTTP error with OpenAI's machine-readable ``code`` (e.g. ``model_not_found``)."""

    def __init__(self, status_code: int, detail: str, code: str) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.code = code


def _error(
    status: int, message: str, kind: str | None = None, param: str | None = None, code: str | None = None
) -> JSONResponse:
    default_kind, default_code = _KINDS.get(status, ("invalid_request_error", None))
    code = code or default_code
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind or default_kind, "param": param, "code": code}},
    )


def create_app(
    model_spec: str = "smollm2-135m",
    *,
    adapter: str | None = None,
    token: str | None = None,
    loaded: LoadedModel | None = None,
    served_name: str | None = None,
    max_tokens_limit: int = 2048,
    max_prompts: int = 64,
    max_batch: int = 64,
    batch_size: int = 20,
    batching: bool = True,
    window_ms: float = 20.0,
    max_body_bytes: int = 1_000_000,
    threads: int | None = None,
    trust_remote_code: bool = False,
    template: str | None = None,
    autocast: str | None = "auto",
) -> FastAPI:
    """Build the app. Pass ``loaded`` to serve a model already in memory (tests, notebooks).

    ``token`` (or ``$ECELLM_SERVER_TOKEN``) turns on bearer authentication for ``/v1`` and
    ``/metrics``; ``/health`` stays open so load balancers can probe it. Requests naming another
    model than ``served_name`` (default: the model spec) get 404, as from OpenAI, instead of an
    answer from the wrong model. ``template=None`` serves chat in the model's own template (see
    :func:`serving_template`).

    Generation runs on the ``hf`` backend (``batch_size`` as in ``ecellm predict``; 20, so that
    60 concurrent short completions decode as one batch, see docs/performance.md) behind a
    :class:`~ecellm.serve.batching.Batcher` gathering up to ``max_batch`` prompts of concurrent
    requests per model call after a ``window_ms`` wait; ``batching=False`` serves one request
    per model call. Bodies over ``max_body_bytes`` get 413. ``autocast`` is the hf backend's
    (``auto``: bf16 autocast on CPUs with native bf16; ``off``: the weights' own dtype, so that
    answers equal a plain fp32 ``generate``).
    """
    from ecellm.infer.backends import open_backend

    if loaded is None:
        from ecellm.models.loading import load_model_and_tokenizer

        loaded = load_model_and_tokenizer(model_spec, adapter=adapter, trust_remote_code=trust_remote_code)
    choice = serving_template(loaded, template)
    engine = Engine(loaded, template=choice.template)
    metrics = Metrics()
    backend = open_backend("hf", loaded, batch_size=batch_size, threads=threads, autocast=autocast)
    batcher = Batcher(
        backend, enabled=batching, max_rows=max_batch, window_s=window_ms / 1000, metrics=metrics
    )
    name = served_name or model_spec
    secret = resolve_token(token)
    created = int(time.time())
    about = {"template": choice.template, "template_source": choice.source}

    app, authorize = base_app(
        name,
        secret,
        metrics,
        max_body_bytes,
        about={**about, "batching": batcher.enabled, "threads": getattr(backend, "threads", None)},
    )
    app.state.engine = engine
    app.state.batcher = batcher
    app.state.backend = backend
    app.state.template = choice  # the task router derives its prompts' template from it

    @app.exception_handler(ServerClosing)
    async def _closing(_: Request, exc: ServerClosing) -> JSONResponse:  # queued at shutdown
        response = _error(503, str(exc))
        response.headers["Retry-After"] = "1"
        return response

    def check_model(requested: str | None) -> None:
        if requested is not None and requested != name:
            raise APIError(
                404, f"model {requested!r} is not served here (serving {name!r})", "model_not_found"
            )

    def check_budget(max_tokens: int, n_prompts: int) -> None:
        if max_tokens > max_tokens_limit:
            raise HTTPException(
                status_code=400, detail=f"max_tokens {max_tokens} exceeds the limit {max_tokens_limit}"
            )
        if n_prompts == 0 or n_prompts > max_prompts:
            raise HTTPException(
                status_code=400, detail=f"send between 1 and {max_prompts} prompts per request"
            )

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "ecellm", **about}],
        }

    app.include_router(
        build_router(
            engine=engine,
            batcher=batcher,
            metrics=metrics,
            name=name,
            check_model=check_model,
            check_budget=check_budget,
            chat_default_tokens=min(512, max_tokens_limit),
        ),
        dependencies=[Depends(authorize)],
    )
    mount_task_routes(app, authorize)
    return app


def base_app(
    name: str, secret: str | None, metrics: Metrics, max_body_bytes: int, about: dict[str, Any]
) -> tuple[FastAPI, Any]:
    """The parts every ``ecellm serve`` front shares (the hf app and the vLLM front): JSON errors
    in OpenAI's shape, ``/health``, ``/metrics``, the body limit and request metrics; returns the
    app and its token check (a FastAPI dependency)."""
    app = FastAPI(title="ecellm", description="OpenAI-compatible and task API over an ecellm model")
    app.state.metrics = metrics
    app.state.served_name = name
    app.state.token = secret

    def authorize(request: Request) -> None:
        if secret and not token_matches(request.headers.get("authorization"), secret):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    app.state.authorize = authorize  # for routers that check the token before reading the body

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), code=getattr(exc, "code", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # a bug: still JSON, no details
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        msg = str(first.get("msg")).removeprefix("Value error, ")
        return _error(422, f"{param}: {msg}" if param else msg, "invalid_request_error", param)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, **about}

    @app.get("/metrics", dependencies=[Depends(authorize)])
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(RecordMetrics, metrics=metrics)  # outermost: counts 413s too
    return app, authorize


def mount_task_routes(app: FastAPI, authorize: Any) -> bool:
    """Mount the typed task endpoints (behind the token) and the try-it page (open: it holds no
    secret) when their modules are installed.

    Hook for :mod:`ecellm.serve.tasks_router` (its ``router``) and :mod:`ecellm.serve.page`
    (``page_router()``). Their handlers find on ``app.state``: ``batcher`` (``await
    batcher.run(requests)`` queues requests into the shared batches), ``backend``,
    ``authorize`` and, where set, ``task_template``.
    """
    if importlib.util.find_spec("ecellm.serve.tasks_router") is None:
        return False
    module = importlib.import_module("ecellm.serve.tasks_router")
    app.include_router(module.router, dependencies=[Depends(authorize)])
    if importlib.util.find_spec("ecellm.serve.page") is not None:
        app.include_router(importlib.import_module("ecellm.serve.page").page_router())
    return True


def serving_template(loaded: LoadedModel, explicit: str | None = None) -> Any:
    """The template chat requests are rendered in, as a ``TemplateChoice``: the explicit one, the
    one the model was tuned with (training record, NingLab checkpoint); a model that records none
    is chatted with through its tokenizer's chat template when it has one (the format an untuned
    instruct model knows), else ecellm's default."""
    from ecellm.infer.template import TemplateChoice, checkpoint_template, resolve_template

    spec, adapter = loaded.source.spec, loaded.adapter
    choice = resolve_template(spec, adapter, explicit)
    named = checkpoint_template(spec) or checkpoint_template(adapter)
    if choice.source == "model default" and not named and getattr(loaded.tokenizer, "chat_template", None):
        return TemplateChoice("chat", "model default")
    return choice
