"""The task endpoints on a real server (embedded SmolLM2-135M, loopback, free port): every task
answers its example, a batch answers in order and equals single calls and ``task_api.run``,
the token is required, oversized and invalid bodies get 413/422 with JSON error bodies, the
OpenAPI document holds one schema per task, and an app batcher is used when there is one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ecellm.infer import task_api
from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer
from ecellm.serve.tasks_router import MAX_ITEMS, backend_of, task_template
from ecellm.tasks.registry import all_tasks

TOKEN = "t0ken"
MAX_BODY_BYTES = 64_000
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def app(smollm2):
    return create_app(loaded=smollm2, token=TOKEN, served_name="smol", max_body_bytes=MAX_BODY_BYTES)


@pytest.fixture(scope="module")
def client(app):
    with (
        BackgroundServer(app, token=TOKEN) as srv,
        httpx.Client(base_url=srv.base_url[:-3], timeout=120) as c,
    ):
        yield c


def check_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= err.keys() and err["message"]
    return err


def test_every_task_endpoint_answers_its_example(client):
    listed = client.get("/v1/tasks", headers=AUTH).json()["data"]
    assert [t["task"] for t in listed] == list(task_api.methods())
    assert len(listed) == len(all_tasks(None))

    def call(t: dict) -> httpx.Response:
        fields = {f["name"]: f["example"] for f in t["fields"]}
        return client.post(t["path"], json=fields, params={"max_new_tokens": 4}, headers=AUTH)

    with ThreadPoolExecutor(8) as pool:  # concurrent calls: the server's batcher merges them
        replies = list(pool.map(call, listed))
    for t, r in zip(listed, replies, strict=True):
        assert r.status_code == 200, (t["task"], r.text)
        got = r.json()
        assert got["task"] == t["abbr"] and isinstance(got["valid"], bool) and isinstance(got["text"], str)
        assert got["mode"] in ("choice", "constrained", "generate")
        if got["mode"] == "choice":  # the answer is one of the allowed strings: always valid
            assert got["valid"] and got["answer"] is not None, t["task"]
        if not got["valid"]:
            assert got["answer"] is None and got["reason"]


def test_batch_answers_in_order_like_single_calls_and_the_python_api(client, app):
    reviews = [
        {"review": "Broke after two days, the worst purchase I ever made."},
        {"review": "Absolutely love it, works perfectly and looks great."},
        {"review": "It is fine."},
    ]
    batch = client.post("/v1/tasks/sentiment_analysis", json=reviews, headers=AUTH)
    assert batch.status_code == 200
    singles = [client.post("/v1/tasks/sentiment_analysis", json=r, headers=AUTH).json() for r in reviews]
    assert batch.json() == singles
    local = task_api.run(backend_of(app.state), "SA", reviews, template=task_template(app.state))
    assert task_template(app.state) == "alpaca"  # as `ecellm predict` prompts this model, not chat
    assert [r.model_dump() for r in local] == singles
    by_alias = client.post("/v1/tasks/SA", json=reviews[0], headers=AUTH)
    assert by_alias.json() == singles[0]


def test_token_is_required(client):
    fields = task_api.example("PSI")
    check_error(client.post("/v1/tasks/product_substitute_identification", json=fields), 401)
    wrong = {"Authorization": "Bearer nope"}
    err = check_error(client.post("/v1/tasks/PSI", json=fields, headers=wrong), 401)
    assert err["type"] == "authentication_error"
    check_error(client.get("/v1/tasks", headers=wrong), 401)
    # the token is checked before the body: an unauthenticated client learns nothing about it
    bad_json = {"Content-Type": "application/json"}
    check_error(client.post("/v1/tasks/PSI", content=b"{", headers=bad_json), 401)
    check_error(client.post("/v1/tasks/product_substitute_identification", json={}), 401)


def test_oversized_bodies_get_413(client):
    path = "/v1/tasks/sentiment_analysis"
    big = {"review": "x" * (MAX_BODY_BYTES + 10)}
    err = check_error(client.post(path, json=big, headers=AUTH), 413)
    assert err["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b" " * 1000

    check_error(
        client.post(path, content=chunks(), headers={**AUTH, "Content-Type": "application/json"}), 413
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "x"}, "product"),
        ({"query": "x", "product": "y", "instructions": "z"}, "instructions"),
        ({"query": 3, "product": "y"}, "query"),
        ([{"query": "x", "product": "y"}, {"query": "x"}], "1.product"),
        ([{"query": "x", "product": "y"}] * (MAX_ITEMS + 1), None),
        ([], None),
        ("just text", None),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(client, body, param):
    for path in ("/v1/tasks/product_substitute_identification", "/v1/tasks/psi"):
        err = check_error(client.post(path, json=body, headers=AUTH), 422)
        assert err["param"] == param and err["code"] == "invalid_body"


def test_malformed_json_and_bad_text_get_422(client):
    headers = {**AUTH, "Content-Type": "application/json"}
    for path in ("/v1/tasks/sentiment_analysis", "/v1/tasks/SA"):
        check_error(client.post(path, content=b'{"review": ', headers=headers), 422)
        err = check_error(client.post(path, content=b'{"review": "a \\ud800 b"}', headers=headers), 422)
        assert err["param"] == "review"
        check_error(client.post(path, json={"review": "ok"}, params={"max_new_tokens": 0}, headers=AUTH), 422)
    check_error(client.post("/v1/tasks/no_such_task", json={}, headers=AUTH), 404)


def test_openapi_holds_a_schema_per_task(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name, task in task_api.methods().items():
        body = spec["paths"][f"/v1/tasks/{name}"]["post"]["requestBody"]["content"]["application/json"]
        refs = [b.get("$ref") or b["items"]["$ref"] for b in body["schema"]["anyOf"]]
        model = refs[0].rsplit("/", 1)[1]
        assert set(refs) == {f"#/components/schemas/{model}"}
        assert list(schemas[model]["properties"]) == [f.name for f in task.inputs]
        assert schemas[model]["required"] == [f.name for f in task.inputs]
        assert schemas[model]["additionalProperties"] is False
        ok = spec["paths"][f"/v1/tasks/{name}"]["post"]["responses"]["200"]["content"]["application/json"]
        result = ok["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
        assert {"answer", "text", "valid"} <= schemas[result]["properties"].keys()
    assert "/v1/completions" in spec["paths"] and "/v1/chat/completions" in spec["paths"]


def test_requests_go_through_the_apps_batcher_or_its_backend(client, app):
    """The route hands its requests to ``app.state.batcher`` (which shares batches across
    clients); an app without one runs them on ``app.state.backend``."""
    seen: list[list[str]] = []
    backend = backend_of(app.state)
    batcher = app.state.batcher

    class Recorder:
        backend = batcher.backend

        async def run(self, requests):
            seen.append([r.id for r in requests])
            return await batcher.run(requests)

    fields = task_api.example("PM")
    path = "/v1/tasks/product_matching"
    try:
        app.state.batcher = Recorder()
        recorded = client.post(path, json=[fields, fields], headers=AUTH)
        app.state.batcher, app.state.backend = None, backend
        direct = client.post(path, json=[fields, fields], headers=AUTH)
    finally:
        app.state.batcher = batcher
        del app.state.backend
    assert recorded.status_code == 200 and recorded.json() == direct.json()
    assert len(recorded.json()) == 2 and recorded.json()[0] == recorded.json()[1]
    assert len(seen) == 1 and len(seen[0]) == 2 and len(set(seen[0])) == 2  # ids unique per call
