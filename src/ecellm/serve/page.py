"""The try-it page: pick a task, edit its example fields, see the parsed answer and raw output.

Why a page: a product owner deciding whether the tuned model is useful for "extract these
attributes" wants to try it without writing a client. The page is one static file shipped in
the package (``static/try.html``): no external scripts, styles or fonts, so it works offline
and leaks nothing. It reads the task list and examples from ``GET /v1/tasks`` and posts to the
task endpoints (:mod:`ecellm.serve.tasks_router`); the token, when the server has one, is typed
into the page and sent as a bearer header, never stored. The page itself holds no secret and
is served without authentication at ``/`` and ``/try`` (``/try?task=<method name>`` preselects
a task).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

ASSET = "try.html"


@cache
def page_html() -> str:
    """The page's HTML, read from the package."""
    return resources.files("ecellm.serve").joinpath("static", ASSET).read_text(encoding="utf-8")


def page_router() -> APIRouter:
    """``GET /`` and ``GET /try``: the page (left out of the OpenAPI document)."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    @router.get("/try", include_in_schema=False)
    def page() -> HTMLResponse:
        # no-store: a page from an older server version must not outlive an upgrade in a cache
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-store"})

    return router
