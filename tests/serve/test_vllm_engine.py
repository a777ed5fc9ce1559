"""``ecellm serve --engine vllm``: the guard, the vLLM command, the process lifecycle (mocked) and
the front app, which is checked for real against a stand-in upstream server on localhost."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ecellm.serve import vllm_engine
from ecellm.serve.run import BackgroundServer

UPSTREAM_KEY = "upstream-secret"


def test_missing_vllm_is_one_line_and_exit_3():
    code = (
        "import sys, importlib.util as u; real = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n == 'vllm' else real(n, *a); "
        "sys.argv = ['ecellm', 'serve', '--engine', 'vllm']; from ecellm.cli import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3, proc.stderr
    assert len(lines) == 1 and "needs vLLM" in lines[0] and "pip install 'ecellm[vllm]'" in lines[0]


def test_vllm_command_binds_loopback_and_names_the_model():
    cmd = vllm_engine.vllm_command(
        "/m/merged", port=9123, served_name="ecellm-7b", extra=["--max-model-len=4096"]
    )
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    args = dict(zip(cmd[3:-1:2], cmd[4::2], strict=False))
    assert args["--model"] == "/m/merged" and args["--served-model-name"] == "ecellm-7b"
    assert args["--host"] == "127.0.0.1" and args["--port"] == "9123"
    assert cmd[-1] == "--max-model-len=4096"


class FakeProc:
    def __init__(self, cmd, env):
        self.cmd, self.env = cmd, env
        self.returncode = None
        self.terminated = False

    def poll(self):
        return self.returncode

    def terminate(self):
        self.terminated = True

    def wait(self, timeout=None):
        return 0


def test_serve_vllm_merges_the_adapter_starts_vllm_and_stops_it(monkeypatch, tmp_path):
    started, served = [], {}
    monkeypatch.setattr(vllm_engine, "require_vllm", lambda: None)
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    merged = []

    def fake_merge(adapter, out, base=None):
        merged.append((adapter, base))
        return out

    monkeypatch.setattr("ecellm.train.export.merge", fake_merge)
    monkeypatch.setattr(
        vllm_engine.subprocess, "Popen", lambda cmd, env: started.append(FakeProc(cmd, env)) or started[-1]
    )
    monkeypatch.setattr(
        vllm_engine, "wait_ready", lambda url, proc, timeout: served.setdefault("upstream", url)
    )
    monkeypatch.setattr(
        "uvicorn.run", lambda app, host, port, log_level: served.update(app=app, host=host, port=port)
    )
    vllm_engine.serve_vllm("org/base-7b", adapter=str(tmp_path / "lora"), port=8123, served_name="tuned")
    (proc,) = started
    assert merged == [(str(tmp_path / "lora"), "org/base-7b")]
    assert proc.cmd[proc.cmd.index("--model") + 1].endswith("merged")
    key = proc.env["VLLM_API_KEY"]
    assert key and key not in " ".join(proc.cmd)  # the upstream key never shows in argv
    assert served["upstream"].endswith(proc.cmd[proc.cmd.index("--port") + 1])
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123) and proc.terminated
    routes = {getattr(r, "path", None) for r in served["app"].routes}
    assert {"/v1/completions", "/v1/chat/completions", "/v1/models", "/metrics", "/health"} <= routes


def test_serve_vllm_refuses_a_public_bind_without_token(monkeypatch):
    monkeypatch.setattr(vllm_engine, "require_vllm", lambda: None)
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    with pytest.raises(vllm_engine.InputError, match="without a token"):
        vllm_engine.serve_vllm("smollm2-135m", host="0.0.0.0")


def fake_vllm() -> FastAPI:
    """A stand-in for vLLM's OpenAI server: checks the upstream key, echoes what it received."""
    app = FastAPI()

    @app.middleware("http")
    async def key_check(request: Request, call_next):
        if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        return await call_next(request)

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "tuned", "object": "model"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        if body.get("stream"):

            async def events():
                for piece in ("a", "b", "c"):
                    chunk = {
                        "id": "x",
                        "object": "text_completion",
                        "created": 0,
                        "model": "tuned",
                        "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": "x",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "text": f"echo:{body['prompt']}", "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    return app


def test_front_forwards_openai_calls_and_streams(monkeypatch):
    openai = pytest.importorskip("openai")
    monkeypatch.delenv("ECELLM_SERVER_TOKEN", raising=False)
    with BackgroundServer(fake_vllm()) as upstream:
        front = vllm_engine.create_front_app(
            f"http://127.0.0.1:{upstream.port}",
            "tuned",
            upstream_key=UPSTREAM_KEY,
            token="front",
            max_body_bytes=5000,
        )
        with BackgroundServer(front, token="front") as srv:
            client = openai.OpenAI(base_url=srv.base_url, api_key="front", max_retries=0)
            assert client.completions.create(model="tuned", prompt="hi").choices[0].text == "echo:hi"
            stream = client.completions.create(model="tuned", prompt="hi", stream=True)
            assert "".join(c.choices[0].text for c in stream) == "abc"
            assert [m.id for m in client.models.list()] == ["tuned"]
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0).models.list()
            big = httpx.post(
                f"{srv.base_url}/completions",
                json={"prompt": "x" * 6000},
                headers={"Authorization": "Bearer front"},
            )
            assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
            metrics = httpx.get(
                f"http://127.0.0.1:{srv.port}/metrics", headers={"Authorization": "Bearer front"}
            )
    assert 'ecellm_requests_total{route="/v1/completions",status="200"} 2' in metrics.text
