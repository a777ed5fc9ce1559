"""ecellm's OpenAI-compatible server, over real HTTP on localhost with the embedded SmolLM2-135M."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import httpx
import pytest

from ecellm.errors import InputError
from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer
from ecellm.serve.security import check_bind, is_loopback, token_matches

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PROMPT = "The capital of France is"
# Generous timeouts: the 2 CPU cores are shared, and a slow answer is not what these tests check.
post = functools.partial(httpx.post, timeout=120)
get = functools.partial(httpx.get, timeout=120)


def reference_greedy(loaded, prompt: str, n: int) -> str:
    """Plain transformers greedy decoding, the yardstick for the server's text."""
    import torch

    enc = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(
            **enc, max_new_tokens=n, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id
        )
    return loaded.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.fixture(scope="module")
def server(smollm2, monkeypatch_module):
    monkeypatch_module.delenv("ECELLM_SERVER_TOKEN", raising=False)
    with BackgroundServer(create_app(loaded=smollm2, served_name="smol", autocast="off")) as srv:
        yield srv


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_security_rules():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    with pytest.raises(InputError, match="refusing to bind to 0.0.0.0"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "tok")  # a token makes a public bind acceptable
    check_bind("127.0.0.1", None)
    assert token_matches("Bearer abc", "abc") and token_matches("bearer abc", "abc")
    assert (
        not token_matches("Bearer abd", "abc")
        and not token_matches("abc", "abc")
        and not token_matches(None, "abc")
    )


def test_cli_refuses_public_bind_without_token():
    env = {k: v for k, v in os.environ.items() if k != "ECELLM_SERVER_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "ecellm", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to bind to 0.0.0.0" in lines[0]


@pytest.mark.slow
def test_completions_match_plain_greedy_decoding(server, smollm2):
    tok = smollm2.tokenizer
    prompts = [PROMPT, "Customer review: The strap broke after two days. Sentiment:"]
    r = post(f"{server.base_url}/completions", json={"model": "smol", "prompt": prompts, "max_tokens": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "smol"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    for prompt, choice in zip(prompts, body["choices"], strict=True):
        assert choice["text"] == reference_greedy(smollm2, prompt, 6)
    prompt_tokens = sum(len(tok(p)["input_ids"]) for p in prompts)
    assert body["usage"]["prompt_tokens"] == prompt_tokens
    # A choice that ran to the limit produced exactly max_tokens tokens.
    lengths = [c for c in body["choices"] if c["finish_reason"] == "length"]
    assert body["usage"]["completion_tokens"] >= 6 * len(lengths)
    assert body["usage"]["total_tokens"] == prompt_tokens + body["usage"]["completion_tokens"]


@pytest.mark.slow
def test_stop_logprobs_and_echo(server, smollm2):
    import torch

    full = reference_greedy(smollm2, PROMPT, 8)
    r = post(f"{server.base_url}/completions", json={"prompt": PROMPT, "max_tokens": 8, "stop": ["."]})
    choice = r.json()["choices"][0]
    assert "." not in choice["text"] and full.startswith(choice["text"])
    assert choice["finish_reason"] == ("stop" if "." in full else "length")

    # echo + logprobs with max_tokens=0 scores the prompt itself (how clients rank choices).
    text = PROMPT + " Paris"
    r = post(
        f"{server.base_url}/completions", json={"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1}
    )
    lp = r.json()["choices"][0]["logprobs"]
    assert r.json()["choices"][0]["text"] == text
    assert "".join(lp["tokens"]) == text and lp["token_logprobs"][0] is None
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][0] == 0
    ids = smollm2.tokenizer(text)["input_ids"]
    with torch.inference_mode():
        logits = smollm2.model(torch.tensor([ids])).logits[0]
    expected = torch.log_softmax(logits[-2].float(), -1)[ids[-1]].item()
    assert lp["tokens"][-1] == " Paris"
    assert lp["token_logprobs"][-1] == pytest.approx(expected, abs=1e-4)
    # top-1 entry is the argmax, so it is at least as likely as the actual token
    assert max(lp["top_logprobs"][-1].values()) >= lp["token_logprobs"][-1] - 1e-6


@pytest.mark.slow
def test_chat_completion_uses_chat_template(server, smollm2):
    messages = [{"role": "user", "content": "Say hello."}]
    r = post(f"{server.base_url}/chat/completions", json={"messages": messages, "max_tokens": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str) and msg["content"]
    ids = smollm2.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert body["usage"]["prompt_tokens"] == len(ids)
    assert 1 <= body["usage"]["completion_tokens"] <= 5


def test_models_health_and_request_errors(server):
    assert get(f"http://127.0.0.1:{server.port}/health").json()["status"] == "ok"
    models = get(f"{server.base_url}/models").json()
    assert [m["id"] for m in models["data"]] == ["smol"]
    url = f"{server.base_url}/completions"
    cases = [
        ({"prompt": "x", "n": 2}, 422),
        ({"prompt": "x", "stream": True, "logprobs": 1}, 400),
        ({"prompt": "x", "max_tokens": 100000}, 400),
        ({"prompt": []}, 400),
        ({"max_tokens": 3}, 422),
        ({"prompt": "x", "model": "gpt-4"}, 404),
    ]
    for body, status in cases:
        r = post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["message"]
    r = post(
        f"{server.base_url}/chat/completions",
        json={"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    )
    assert r.status_code == 400


def test_token_required_when_set(smollm2):
    with BackgroundServer(create_app(loaded=smollm2, token="s3cret")) as srv:
        url = f"{srv.base_url}/models"
        assert get(url).status_code == 401
        wrong = get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        assert get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert post(f"{srv.base_url}/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 401
        assert get(f"http://127.0.0.1:{srv.port}/health").status_code == 200


def test_token_from_environment(smollm2, monkeypatch):
    monkeypatch.setenv("ECELLM_SERVER_TOKEN", "from-env")
    with BackgroundServer(create_app(loaded=smollm2)) as srv:
        url = f"{srv.base_url}/models"
        assert get(url).status_code == 401
        assert get(url, headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_background_server_refuses_public_bind(smollm2, monkeypatch):
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    with pytest.raises(InputError, match="without a token"):
        BackgroundServer(create_app(loaded=smollm2), host="0.0.0.0")


def test_stop_is_bounded_and_bad_text_is_a_json_400(server):
    """500 stop strings took 12.5 s of model time before; now OpenAI's limit of 4 is enforced."""
    url = f"{server.base_url}/completions"
    lone = '{"prompt": "a \\ud800 b", "max_tokens": 1}'  # JSON's escape carries a lone surrogate
    cases = [
        ({"prompt": "x", "stop": [f"s{i}" for i in range(500)]}, "stop", "at most 4 stop sequences"),
        ({"prompt": "x", "stop": ["x" * 10_000]}, "stop", "at most 256 characters"),
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": ["ok", ""]}, "prompt", "must not be empty"),
        (lone, "prompt", "lone surrogate"),
        ('{"prompt": "x", "stop": ["\\udfff"]}', "stop", "lone surrogate"),
    ]
    for body, param, words in cases:
        start = time.monotonic()
        if isinstance(body, str):
            r = post(url, content=body.encode(), headers={"Content-Type": "application/json"})
        else:
            r = post(url, json=body)
        assert time.monotonic() - start < 5
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
        assert err["param"] == param and words in err["message"], err
    chat = post(
        f"{server.base_url}/chat/completions",
        content=b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert chat.status_code == 422 and "lone surrogate" in chat.json()["error"]["message"]
    ok = post(url, json={"prompt": PROMPT, "max_tokens": 2, "stop": ["a", "b", "c", "d"]})
    assert ok.status_code == 200


def test_every_error_is_json_in_openai_shape(server, smollm2, monkeypatch):
    for r, status, code in [
        (get(f"{server.base_url}/nowhere"), 404, None),
        (post(f"{server.base_url}/completions", content=b"{not json"), 422, None),
        (get(f"{server.base_url}/completions"), 405, "method_not_allowed"),
        (
            post(f"{server.base_url}/completions", json={"prompt": "x", "model": "other"}),
            404,
            "model_not_found",
        ),
    ]:
        assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
        assert (
            set(r.json()["error"]) == {"message", "type", "param", "code"}
            and r.json()["error"]["code"] == code
        )

    def broken(*a, **k):
        raise RuntimeError("boom")

    app = create_app(loaded=smollm2, served_name="smol")
    monkeypatch.setattr(app.state.batcher.backend, "run", broken)
    with BackgroundServer(app) as srv:
        r = post(f"{srv.base_url}/completions", json={"prompt": "x", "max_tokens": 1})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error" and "boom" not in r.text


def test_metrics_need_the_token_and_count_requests(smollm2):
    with BackgroundServer(create_app(loaded=smollm2, token="s3cret")) as srv:
        url = f"http://127.0.0.1:{srv.port}/metrics"
        assert get(url).status_code == 401
        assert get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = get(url, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    # the two refused scrapes are counted, by route template and status
    assert 'ecellm_errors_total{route="/metrics",status="401"} 2' in text
    for family, kind in [
        ("ecellm_requests_total", "counter"),
        ("ecellm_request_seconds", "histogram"),
        ("ecellm_batch_rows", "histogram"),
        ("ecellm_tokens_total", "counter"),
    ]:
        assert f"# TYPE {family} {kind}" in text
    assert 'ecellm_request_seconds_bucket{route="/metrics",le="+Inf"} 2' in text
