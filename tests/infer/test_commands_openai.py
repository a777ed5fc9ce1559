"""``ecellm predict --backend openai`` end to end: the CLI's API options reach a real local server."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import FIXTURES
from typer.testing import CliRunner

from ecellm.cli import app
from ecellm.infer.predict import manifest_path
from ecellm.serve.app import create_app
from ecellm.serve.run import BackgroundServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURE = FIXTURES / "samples_mixed.jsonl"
KEY = "sk-cli-test-0123456789"


@pytest.fixture(scope="module")
def server(smollm2):
    # The server demands a bearer token, so a run that succeeds proves --api-key-env was used.
    with BackgroundServer(create_app(loaded=smollm2, served_name="smol", token=KEY)) as srv:
        yield srv


@pytest.mark.slow
def test_predict_cli_against_local_openai_server(server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ECELLM_CLI_TEST_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "preds.jsonl"
    args = [
        "predict",
        "--backend", "openai",
        "--model", "smol",
        "--base-url", server.base_url,
        "--api-key-env", "ECELLM_CLI_TEST_KEY",
        "--concurrency", "3",
        "--requests-per-minute", "6000",
        "--max-retries", "1",
        "--data", str(FIXTURE),
        "--tasks", "PSI,SA,PM",
        "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    counts = Counter(r["id"] for r in records)
    assert set(counts) == {f"{t}-FIX-test-00000{i}" for t in ("PSI", "SA", "PM") for i in (0, 1)}
    assert set(counts.values()) == {1}
    # closed-answer tasks are generated (the default openai backend cannot score choices)
    assert {r["mode"] for r in records} == {"generate"}
    assert all(r["prompt_tokens"] > 0 for r in records)
    manifest = json.loads(manifest_path(out).read_text())
    model = manifest["model"]
    assert model["base_url"] == server.base_url and model["api_key_env"] == "ECELLM_CLI_TEST_KEY"
    assert (model["concurrency"], model["requests_per_minute"], model["max_retries"]) == (3, 6000.0, 1)
    assert KEY not in manifest_path(out).read_text()


def test_openai_options_are_refused_for_other_backends(tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    args = ["predict", "--data", str(FIXTURE), "--out", str(out), "--concurrency", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--concurrency: not an option of --backend hf" in result.output
    assert not out.exists()
