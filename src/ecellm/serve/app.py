"""An OpenAI-compatible HTTP API over an ecellm model (``ecellm serve``).

Why a server at all: the paper's API baselines (GPT-4, Gemini, Claude) run through
:class:`ecellm.infer.backends.openai.OpenAIBackend`; serving our own tuned models behind the
same protocol lets one client, one prompt format and one scorer cover both, and lets other
tools (lm-eval-harness, chat UIs) talk to an ecellm model without code.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` (prompt string or
list, ``max_tokens``, ``temperature``, ``stop``, ``logprobs`` and ``echo`` for scoring) and
``POST /v1/chat/completions`` (messages rendered with the tokenizer's chat template). Every
error, including an unexpected one (500) and an unknown route (404), is JSON in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``: a client parsing errors never meets
plain text.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecellm.models.loading import LoadedModel
from ecellm.serve.engine import Engine, Generation
from ecellm.serve.schemas import ChatRequest, CompletionRequest
from ecellm.serve.security import resolve_token, token_matches

# HTTP status -> OpenAI error type and code
_KINDS = {
    401: ("authentication_error", "invalid_api_key"),
    404: ("not_found_error", None),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    500: ("server_error", "internal_error"),
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


def _usage(gens: list[Generation]) -> dict[str, int]:
    prompt = sum(g.prompt_tokens for g in gens)
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(
    model_spec: str = "smollm2-135m",
    *,
    adapter: str | None = None,
    token: str | None = None,
    loaded: LoadedModel | None = None,
    served_name: str | None = None,
    max_tokens_limit: int = 2048,
    max_prompts: int = 64,
    max_batch: int = 8,
    trust_remote_code: bool = False,
    template: str | None = None,
) -> FastAPI:
    """Build the app. Pass ``loaded`` to serve a model already in memory (tests, notebooks).

    ``token`` (or ``$ECELLM_SERVER_TOKEN``) turns on bearer authentication for ``/v1``;
    ``/health`` stays open so load balancers can probe it. Requests naming another model than
    ``served_name`` (default: the model spec) get 404, as from OpenAI, instead of an answer
    from the wrong model. ``template=None`` serves chat in the model's own template (see
    :func:`serving_template`).
    """
    if loaded is None:
        from ecellm.models.loading import load_model_and_tokenizer

        loaded = load_model_and_tokenizer(model_spec, adapter=adapter, trust_remote_code=trust_remote_code)
    choice = serving_template(loaded, template)
    engine = Engine(loaded, max_batch=max_batch, template=choice.template)
    name = served_name or model_spec
    secret = resolve_token(token)
    created = int(time.time())

    app = FastAPI(title="ecellm", description="OpenAI-compatible API over an ecellm model")
    app.state.engine = engine
    app.state.served_name = name
    app.state.template = choice
    about = {"template": choice.template, "template_source": choice.source}

    def authorize(request: Request) -> None:
        if secret and not token_matches(request.headers.get("authorization"), secret):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

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
        return _error(400, f"{param}: {msg}" if param else msg, "invalid_request_error", param)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, **about}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "ecellm", **about}],
        }

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    def completions(body: CompletionRequest) -> dict[str, Any]:
        check_model(body.model)
        prompts = body.prompts()
        check_budget(body.max_tokens, len(prompts))
        try:
            gens = engine.generate(
                prompts,
                max_tokens=body.max_tokens,
                stop=body.stop_list(),
                temperature=body.temperature,
                top_p=body.top_p,
                seed=body.seed,
            )
            choices = []
            for i, (prompt, gen) in enumerate(zip(prompts, gens, strict=True)):
                logprobs = None
                if body.logprobs is not None:
                    scores = engine.score(prompt + gen.text, top_k=body.logprobs)
                    logprobs = (scores if body.echo else scores.after(len(prompt))).as_dict()
                text = prompt + gen.text if body.echo else gen.text
                choices.append(
                    {"index": i, "text": text, "logprobs": logprobs, "finish_reason": gen.finish_reason}
                )
        except ValueError as exc:  # context overflow, unsupported scoring
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": _usage(gens),
        }

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    def chat(body: ChatRequest) -> dict[str, Any]:
        check_model(body.model)
        max_tokens = body.token_budget(default=min(512, max_tokens_limit))
        check_budget(max_tokens, 1)
        try:
            prompt = engine.chat_prompt([{"role": m.role, "content": m.text()} for m in body.messages])
            (gen,) = engine.generate(
                [prompt],
                max_tokens=max_tokens,
                stop=body.stop_list() or engine.chat_stop(),
                temperature=body.temperature,
                top_p=body.top_p,
                seed=body.seed,
                add_special_tokens=engine.template != "chat",
            )
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "usage": _usage([gen]),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "finish_reason": gen.finish_reason,
                }
            ],
        }

    return app


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
