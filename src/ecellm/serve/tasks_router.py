"""``POST /v1/tasks/<task>``: a task called over HTTP with its plain fields, the parsed answer back.

One route per registered task (path: the task's method name, e.g. ``/v1/tasks/product_matching``),
so the OpenAPI document carries each task's input and result schema; any other registry name
(``/v1/tasks/PM``) is accepted too, outside the document. A body is one input object or a list
of them (a batch, answered as a list in the same order); ``?max_new_tokens=`` caps the task's
budget. ``GET /v1/tasks`` lists the tasks with their fields and examples (the try-it page reads
it).

Requests, decoding and parsing are :mod:`ecellm.infer.task_api`'s, so an answer here equals
``model.run(task, **fields)``: prompts in the template ``ecellm predict`` would use for the
served model (the one it was tuned with, or the one named with ``--template``), not the chat
template an untuned instruct model is chatted with. Requests run through
``app.state.batcher.run(requests)``, sharing batches with other clients' requests; an app
without a batcher runs them on ``app.state.backend`` in a worker thread under
``app.state.model_lock``.

:mod:`ecellm.serve.app` mounts :data:`router` behind its token check and its body-size limit
(413); the routes themselves check the token before anything else (an unauthenticated client
gets 401 even for a malformed body) and answer a body that does not fit the task's schema with
422 naming the first bad field (``param``; for a batch, ``<index>.<field>``), in the app's
error shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import inspect
import re
import threading
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from ecellm.infer import task_api
from ecellm.infer.base import Completion
from ecellm.infer.base import Request as BackendRequest
from ecellm.tasks.base import Task

MAX_ITEMS = 32  # inputs per call
_READING = re.compile(r"^(list\[)?\w+Input\]?$")  # the union branch in a validation error's path
_FALLBACK_LOCK = threading.Lock()  # when the app shares no lock with its other model users


def error_response(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An error in the app's JSON shape (what :mod:`ecellm.serve.app` answers)."""
    body = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return JSONResponse(status_code=status, content={"error": body})


def _invalid(exc: RequestValidationError | ValidationError) -> JSONResponse:
    """422 naming the first bad field. A body is one input or a list, so pydantic reports both
    readings; the one matching the body's shape is reported (the list reading when the body is
    a list), without the reading's name in the field path."""
    errors = list(exc.errors())
    as_list = [e for e in errors if any(str(p).startswith("list[") for p in e.get("loc", ()))]
    as_one = [e for e in errors if e not in as_list]
    body_is_list = as_list and not all(e.get("type") == "list_type" for e in as_list)
    errors = (as_list if body_is_list else as_one) or errors
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    path = [str(p) for p in first.get("loc", ()) if p != "body" and not _READING.match(str(p))]
    param = ".".join(path) or None
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, f"{param}: {msg}{more}" if param else msg + more, param, "invalid_body")


def _authorize(request: Request) -> None:
    """The app's token check (``app.state.authorize``), when it has one."""
    authorize = getattr(request.app.state, "authorize", None)
    if authorize is not None:
        authorize(request)


class GuardedRoute(APIRoute):
    """Token and schema checks around FastAPI's own handling (see the module docstring)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Any:
            _authorize(request)
            try:
                return await handler(request)
            except (RequestValidationError, ValidationError) as exc:
                return _invalid(exc)

        return guarded


def task_template(state: Any) -> str:
    """The prompt template of task calls: ``app.state.task_template`` when set, else the one
    ``ecellm predict`` resolves for the served model (an explicitly chosen serving template
    counts as the user's choice)."""
    chosen = getattr(state, "task_template", None)
    if chosen is None:
        from ecellm.infer.template import resolve_template

        served = getattr(state, "template", None)
        explicit = served.template if served is not None and served.source == "explicit" else None
        loaded = state.engine.loaded
        chosen = resolve_template(loaded.source.spec, loaded.adapter, explicit).template
        state.task_template = chosen
    return chosen


def backend_of(state: Any) -> Any:
    """The inference backend requests are built for (the batcher's, when there is one)."""
    backend = getattr(state, "backend", None)
    batcher = getattr(state, "batcher", None)
    return backend if backend is not None or batcher is None else batcher.backend


async def execute(request: Request, requests: list[BackendRequest]) -> list[Completion]:
    """Completions of ``requests`` in their order, through the app's batcher or backend."""
    state = request.app.state
    batcher = getattr(state, "batcher", None)
    if batcher is not None:
        return list(await batcher.run(requests))
    backend = state.backend
    lock = getattr(state, "model_lock", None) or _FALLBACK_LOCK

    def work() -> list[Completion]:
        with lock:
            got = {c.id: c for c in backend.run(requests)}
        return [got[r.id] for r in requests]

    return await run_in_threadpool(work)


async def call_task(
    request: Request, task: Task, items: list[Any], max_new_tokens: int | None
) -> list[task_api.TaskResult]:
    """Validated inputs in, results out (ids made unique: a batcher mixes many clients' calls)."""
    state = request.app.state
    try:
        reqs = task_api.to_requests(
            backend_of(state), task, items, template=task_template(state), max_new_tokens=max_new_tokens
        )
    except ValueError as exc:  # a composed prompt the template cannot render
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    tag = uuid.uuid4().hex[:12]
    reqs = [replace(r, id=f"{tag}-{r.id}") for r in reqs]
    return task_api.to_results(task, await execute(request, reqs), items)


def _answer(body: Any, results: list[task_api.TaskResult]) -> Any:
    return results if isinstance(body, list) else results[0]


def _endpoint(task: Task, max_items: int) -> Any:
    model = task_api.input_model(task)
    batch = Annotated[list[model], Field(min_length=1, max_length=max_items)]  # type: ignore[valid-type]

    async def endpoint(request: Request, body: Any, max_new_tokens: int | None = None) -> Any:
        items = body if isinstance(body, list) else [body]
        return _answer(body, await call_task(request, task, items, max_new_tokens))

    # FastAPI reads the body's schema from the signature: give this task's model its place
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model | batch),
            inspect.Parameter(
                "max_new_tokens",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=Query(None, ge=1, le=4096, description="cap on the task's new-token budget"),
                annotation=int | None,
            ),
        ]
    )
    return endpoint


def describe(task: Task) -> dict[str, Any]:
    """A task as ``GET /v1/tasks`` lists it."""
    schema = task_api.input_model(task).model_json_schema()
    return {
        "task": task_api.method_name(task),
        "abbr": task.abbr,
        "name": task.name,
        "family": task.family,
        "category": task.category,
        "answer_kind": task.answer_kind,
        "decode": task.decode,
        "max_new_tokens": task.max_new_tokens,
        "path": f"/v1/tasks/{task_api.method_name(task)}",
        "fields": [
            {
                "name": f.name,
                "description": f.description,
                "example": f.example,
                "schema": schema["properties"][f.name],
            }
            for f in task.inputs
        ],
    }


def task_router(*, max_items: int = MAX_ITEMS) -> APIRouter:
    """The task routes, for an app whose state has ``batcher`` (or ``backend``), ``engine`` and
    ``template`` (or ``task_template``) and, for authentication, ``authorize(request)``."""
    router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=GuardedRoute)

    @router.get("", summary="List the tasks, their input fields and examples")
    def list_tasks() -> dict[str, Any]:
        return {"object": "list", "data": [describe(t) for t in task_api.methods().values()]}

    for name, task in task_api.methods().items():
        result = task_api.result_model(task)
        fields = ", ".join(f.name for f in task.inputs)
        router.add_api_route(
            f"/{name}",
            _endpoint(task, max_items),
            methods=["POST"],
            name=name,
            summary=f"{task.name.replace('_', ' ')} ({task.abbr})",
            description=(
                f"Fields: {fields}. Decoding: {task.decode} by default; answer kind "
                f"{task.answer_kind!r}. Send one input object, or a list of up to {max_items}."
            ),
            response_model=result | list[result],  # type: ignore[operator]
        )

    @router.post("/{name}", include_in_schema=False)
    async def by_any_name(request: Request, name: str, max_new_tokens: int | None = None) -> Any:
        try:
            task = task_api.resolve(name)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=str(exc.args[0])) from None
        model = task_api.input_model(task)
        try:
            raw = await request.json()
        except ValueError:
            return error_response(422, "the body is not JSON", None, "invalid_body")
        if max_new_tokens is not None and not 1 <= max_new_tokens <= 4096:
            return error_response(422, "max_new_tokens: must be 1 to 4096", "max_new_tokens", "invalid_body")
        adapter = TypeAdapter(model | Annotated[list[model], Field(min_length=1, max_length=max_items)])
        body = adapter.validate_python(raw)  # a ValidationError becomes 422 in the route class
        items = body if isinstance(body, list) else [body]
        results = await call_task(request, task, items, max_new_tokens)
        return [r.model_dump() for r in results] if isinstance(body, list) else results[0].model_dump()

    return router


router = task_router()  # what ecellm.serve.app mounts
