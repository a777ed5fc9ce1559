"""OpenAIBackend over real HTTP: against ``ecellm serve`` with SmolLM2-135M, and a flaky localhost server."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ecellm.errors import InputError
from ecellm.infer.backends.openai import OpenAIBackend, OpenAIError, RateLimiter, retry_after_seconds
from ecellm.infer.base import Request
from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
KEY = "sk-test-0123456789"


def reference_greedy(loaded, prompt: str, n: int) -> tuple[str, int]:
    """Plain transformers greedy decoding: the text and the tokens generated before end-of-sequence."""
    import torch

    tok = loaded.tokenizer
    enc = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    n_gen = new.index(tok.eos_token_id) if tok.eos_token_id in new else len(new)
    return tok.decode(new, skip_special_tokens=True), n_gen


@pytest.fixture(scope="module")
def ecellm_server(smollm2):
    # The server demands the same bearer token the backend reads from $OPENAI_API_KEY, so the
    # tests also prove the key travels in the Authorization header.
    with BackgroundServer(create_app(loaded=smollm2, served_name="smol", token=KEY, autocast="off")) as srv:
        yield srv


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.mark.slow
def test_generate_against_ecellm_server(ecellm_server, smollm2, key_env):
    prompts = {
        "a": "The capital of France is",
        "b": "Product: USB-C cable, 2 m. Category:",
        "c": "Question: Is water wet? Answer:",
    }
    reqs = [Request(id=k, prompt=p, max_new_tokens=5) for k, p in prompts.items()]
    with OpenAIBackend("smol", base_url=ecellm_server.base_url, chat=False, concurrency=2, timeout=120) as be:
        out = {c.id: c for c in be.run(reqs)}
        assert be.stats == {"http_requests": 3, "retries": 0}
    assert sorted(out) == ["a", "b", "c"]
    for k, p in prompts.items():
        text, n_gen = reference_greedy(smollm2, p, 5)
        assert (out[k].text, out[k].completion_tokens) == (text, n_gen)
        assert out[k].prompt_tokens == len(smollm2.tokenizer(p)["input_ids"])
        assert out[k].mode == "generate" and out[k].latency_s > 0


@pytest.mark.slow
def test_chat_and_choice_modes(ecellm_server, smollm2, key_env):
    import torch

    prompt = "The capital of France is"
    choices = [" London", " Paris"]
    reqs = [
        Request(id="chat", prompt="Say hello.", max_new_tokens=4),
        Request(id="pick", prompt=prompt, mode="choice", choices=choices, max_new_tokens=4),
    ]
    with OpenAIBackend("smol", base_url=ecellm_server.base_url, timeout=120) as be:
        out = {c.id: c for c in be.run(reqs)}
        assert "choice runs as generate" in be.describe()["mode_fallback"]
    assert out["chat"].text and out["chat"].mode == "generate"
    assert out["pick"].mode == "generate"  # the default backend cannot score choices

    with OpenAIBackend(
        "smol", base_url=ecellm_server.base_url, chat=False, choice_scoring="echo", timeout=120
    ) as be:
        (pick,) = be.run([reqs[1]])
    assert pick.mode == "choice" and pick.text == " Paris"
    # Each choice's score is the summed log-probability of its tokens after the prompt.
    for c in choices:
        ids = smollm2.tokenizer(prompt + c)["input_ids"]
        n_prompt = len(smollm2.tokenizer(prompt)["input_ids"])
        with torch.inference_mode():
            logp = torch.log_softmax(smollm2.model(torch.tensor([ids])).logits[0].float(), -1)
        expected = sum(logp[i - 1, ids[i]].item() for i in range(n_prompt, len(ids)))
        assert pick.choice_logprobs[c] == pytest.approx(expected, abs=1e-3)


def test_wrong_key_is_not_retried(ecellm_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with OpenAIBackend("smol", base_url=ecellm_server.base_url, backoff=0.01) as be:
        with pytest.raises(OpenAIError, match="HTTP 401"):
            list(be.run([Request(id="x", prompt="hi", max_new_tokens=1)]))
        assert be.stats == {"http_requests": 1, "retries": 0}


class Flaky:
    """A localhost OpenAI-style server that answers the first N requests with scripted failures."""

    def __init__(self, failures: list[tuple[int, dict[str, str]]]) -> None:
        self.failures = list(failures)
        self.hits: list[float] = []
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.hits.append(time.monotonic())
                    outer.bodies.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                    failure = outer.failures.pop(0) if outer.failures else None
                if failure:
                    status, headers = failure
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    payload = b'{"error": {"message": "try later"}}'
                else:
                    self.send_response(200)
                    text = body["messages"][-1]["content"].upper() + " STOP here"
                    payload = json.dumps(
                        {
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                        }
                    ).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Flaky:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_retries_500_and_429_then_succeeds(key_env):
    failures = [(500, {}), (503, {}), (429, {"Retry-After": "0"})]
    with Flaky(failures) as srv, OpenAIBackend("m", base_url=srv.url, backoff=0.01) as be:
        (c,) = be.run([Request(id="r1", prompt="hello", max_new_tokens=9, stop=("STOP",))])
        assert len(srv.hits) == 4 and be.stats == {"http_requests": 4, "retries": 3}
    assert c.text == "HELLO " and c.prompt_tokens == 7 and c.completion_tokens == 3
    body = srv.bodies[-1]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 9 and body["stop"] == ["STOP"]
    assert body["model"] == "m" and body["messages"] == [{"role": "user", "content": "hello"}]
    assert set(srv.auth) == {f"Bearer {KEY}"}


def test_gives_up_after_max_retries_and_fails_fast_on_400(key_env):
    with (
        Flaky([(503, {})] * 10) as srv,
        OpenAIBackend("m", base_url=srv.url, max_retries=2, backoff=0.01) as be,
    ):
        with pytest.raises(OpenAIError, match="gave up after 3 attempts"):
            list(be.run([Request(id="r", prompt="x")]))
        assert len(srv.hits) == 3
    with Flaky([(400, {})]) as srv, OpenAIBackend("m", base_url=srv.url, backoff=0.01) as be:
        with pytest.raises(OpenAIError, match="HTTP 400"):
            list(be.run([Request(id="r", prompt="x")]))
        assert len(srv.hits) == 1


def test_retry_after_is_honoured(key_env):
    with Flaky([(429, {"Retry-After": "1"})]) as srv, OpenAIBackend("m", base_url=srv.url, backoff=0.0) as be:
        (c,) = be.run([Request(id="r", prompt="x")])
    assert c.text == "X STOP here"
    assert srv.hits[1] - srv.hits[0] >= 0.95


def test_connection_errors_are_retried(key_env):
    with Flaky([]) as srv:
        url = srv.url
    # The port is closed now, so every attempt is a connection error.
    with OpenAIBackend("m", base_url=url, max_retries=2, backoff=0.01) as be:
        with pytest.raises(OpenAIError, match="ConnectError"):
            list(be.run([Request(id="r", prompt="x")]))
        assert be.stats == {"http_requests": 3, "retries": 2}


def test_concurrency_and_rate_limit(key_env):
    reqs = [Request(id=f"q{i}", prompt=f"p{i}") for i in range(6)]
    with Flaky([]) as srv, OpenAIBackend("m", base_url=srv.url, concurrency=3, requests_per_minute=600) as be:
        out = list(be.run(reqs))
    assert sorted(c.id for c in out) == sorted(r.id for r in reqs)
    assert {c.id: c.text for c in out} == {r.id: r.prompt.upper() + " STOP here" for r in reqs}
    starts = sorted(srv.hits)
    # 600 requests/minute = one start every 0.1 s even with three workers
    assert all(b - a >= 0.08 for a, b in zip(starts, starts[1:], strict=False))


def test_key_handling_and_describe(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InputError, match=r"\$OPENAI_API_KEY"):
        OpenAIBackend("gpt-4")
    monkeypatch.setenv("MY_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:pw@api.example.com/v1?token=abc")
    be = OpenAIBackend("gpt-4", api_key_env="MY_KEY")
    desc = json.dumps(be.describe())
    be.close()
    assert KEY not in desc and "pw" not in desc and "abc" not in desc
    assert (
        be.describe()["base_url"] == "https://api.example.com/v1" and be.describe()["api_key_env"] == "MY_KEY"
    )


def test_retry_after_parsing_and_limiter():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2.5"})) == 2.5
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None
    limiter = RateLimiter(1200)  # 0.05 s apart
    t0 = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    assert time.monotonic() - t0 >= 0.14


@pytest.mark.parametrize("field", ["guided_regex", "structured_outputs", "grammar"])
def test_constrained_requests_carry_the_spec_when_asked(field, monkeypatch) -> None:
    import re

    from ecellm.infer import gbnf
    from ecellm.tasks.constraints import Ranking

    sent = []

    def post(path, body):
        sent.append(body)
        return {"choices": [{"message": {"content": "B,A"}}]}, 0.01

    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", constraint_field=field)
    monkeypatch.setattr(backend, "post", post)
    req = Request(id="q", prompt="p", mode="constrained", constraint=Ranking(("A", "B")), stop=("###",))
    out = backend.complete(req)
    assert out.mode == "constrained" and out.text == "B,A" and "stop" not in sent[0]
    rule = sent[0]["structured_outputs"]["regex"] if field == "structured_outputs" else sent[0][field]
    if field == "grammar":
        assert gbnf.fullmatch(rule, "B,A") and not gbnf.fullmatch(rule, "A,A")
    else:
        assert re.fullmatch(rule, "B,A") and not re.fullmatch(rule, "A,A")
    # without the opt-in the same request is generated freely
    plain = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    monkeypatch.setattr(plain, "post", post)
    assert plain.complete(req).mode == "generate" and sent[-1].get("stop") == ["###"]
    with pytest.raises(InputError, match="constraint_field"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", constraint_field="json")
