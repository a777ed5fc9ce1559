"""The OpenAI endpoints through the official ``openai`` client, over real HTTP on localhost."""

from __future__ import annotations

import asyncio
import os
import re

import httpx
import pytest

from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer

openai = pytest.importorskip("openai", reason="the official openai client is a dev dependency")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
KEY = "route-test-key"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def server(smollm2):
    # a long window so that the concurrent requests below surely meet in one batch
    with BackgroundServer(create_app(loaded=smollm2, served_name="smol", token=KEY, window_ms=200)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, timeout=120, max_retries=0)


def metric(server, name: str) -> float:
    text = httpx.get(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {KEY}"}
    ).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, (name, text)
    return float(match.group(1))


def test_completion_and_its_stream_agree(client):
    full = client.completions.create(model="smol", prompt=PROMPT, max_tokens=6)
    assert full.object == "text_completion" and full.model == "smol"
    assert full.choices[0].text.strip() and full.usage.completion_tokens <= 6
    chunks = list(client.completions.create(model="smol", prompt=PROMPT, max_tokens=6, stream=True))
    assert len(chunks) >= 3  # several events, not one block at the end
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_stream_holds_back_a_stop_string_and_ends_with_done(server, client):
    full = client.completions.create(model="smol", prompt=PROMPT, max_tokens=8).choices[0].text
    stop = full[len(full) // 2 :][:3]  # a stop string that the reply reaches mid-way
    cut = full[: full.index(stop)]
    streamed = client.completions.create(model="smol", prompt=PROMPT, max_tokens=8, stop=[stop], stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == cut and chunks[-1].choices[0].finish_reason == "stop"
    raw = httpx.post(
        f"{server.base_url}/completions",
        json={"prompt": PROMPT, "max_tokens": 2, "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_chat_stream_with_usage(client):
    messages = [{"role": "user", "content": "Say hello."}]
    full = client.chat.completions.create(model="smol", messages=messages, max_tokens=5)
    assert full.object == "chat.completion" and full.choices[0].message.role == "assistant"
    chunks = list(
        client.chat.completions.create(
            model="smol", messages=messages, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_wrong_or_missing_key_is_401_for_the_client(server):
    for key in ("wrong", ""):
        bad = openai.OpenAI(base_url=server.base_url, api_key=key or "none", max_retries=0)
        if not key:
            bad = bad.with_options(default_headers={"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as err:
            bad.completions.create(model="smol", prompt="x", max_tokens=1)
        assert err.value.status_code == 401 and err.value.body["type"] == "authentication_error"


def test_invalid_body_is_422_for_the_client(client):
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client.completions.create(model="smol", prompt="x", max_tokens=1, stop=[f"s{i}" for i in range(9)])
    assert err.value.body["param"] == "stop"


def test_concurrent_requests_share_batches(server, smollm2):
    """Twelve concurrent single-prompt requests: fewer model calls than requests, and each
    answer equals the answer the same prompt gets alone."""
    aclient = openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, timeout=120, max_retries=0)
    prompts = [f"Product {i}: a blue cotton shirt, size {i}. Category:" for i in range(12)]
    calls_before = metric(server, "ecellm_batch_rows_count")
    rows_before = metric(server, "ecellm_batch_rows_sum")

    async def main():
        return await asyncio.gather(
            *(aclient.completions.create(model="smol", prompt=p, max_tokens=3) for p in prompts)
        )

    replies = asyncio.run(main())
    calls = metric(server, "ecellm_batch_rows_count") - calls_before
    assert metric(server, "ecellm_batch_rows_sum") - rows_before == 12
    assert calls < 12 and 12 / calls > 1  # mean batch size above one
    assert metric(server, 'ecellm_batch_requests_bucket{le="1"}') < metric(
        server, "ecellm_batch_requests_count"
    )
    alone = client_for(server).completions.create(model="smol", prompt=prompts[5], max_tokens=3)
    assert replies[5].choices[0].text == alone.choices[0].text


def client_for(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, timeout=120, max_retries=0)
