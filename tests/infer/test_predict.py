"""predict(): records, manifest, kill -9 then --resume, input errors, the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.infer.predict import manifest_path, predict
from ecellm.io import write_jsonl
from ecellm.tasks import get_task

FIXTURE = FIXTURES / "samples_mixed.jsonl"
FIELDS = {
    "id",
    "task",
    "setting",
    "prediction",
    "raw",
    "mode",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
}


def test_existing_output_needs_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_text('{"id": "x"}\n')
    with pytest.raises(InputError, match="--resume") as e:
        predict(load_samples(FIXTURE), out=out)
    assert str(out) in str(e.value)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    s = load_samples(FIXTURE)[:2]
    with pytest.raises(InputError, match="duplicate sample id") as e:
        predict([s[0], s[1], s[0]], out=tmp_path / "p.jsonl", source="d.jsonl")
    assert "record 3" in str(e.value) and "d.jsonl" in str(e.value)


def test_cli_error_is_one_line_without_output(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_text("{}\n")
    r = subprocess.run(
        [sys.executable, "-m", "ecellm", "predict", "--data", str(FIXTURE), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "--resume" in r.stderr
    assert out.read_text() == "{}\n" and not manifest_path(out).exists()


@pytest.mark.slow
def test_kill_9_then_resume_gives_every_id_once(tmp_path: Path, smollm2) -> None:
    from ecellm.infer.backends.hf import HFBackend

    samples = [s for s in load_samples(FIXTURE) if s.task != "AG"]
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [s.to_record() for s in samples])
    out = tmp_path / "preds.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ECELLM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecellm",
            "predict",
            "--data",
            str(data),
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 150
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = out.read_text().count("\n")
    assert 4 <= before < len(samples)
    with out.open("a") as fh:  # what a kill in the middle of a write leaves behind
        fh.write('{"id": "PRP-FIX-test-0000')
    predict(data, out=out, resume=True, backend=HFBackend(smollm2, batch_size=8), progress=False)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(r["id"] for r in recs) == Counter(s.id for s in samples)  # each id exactly once
    by_id = {s.id: s for s in samples}
    for r in recs:
        assert set(r) - {"choice_scores"} == FIELDS and ("choice_scores" in r) == (r["mode"] == "choice")
        assert get_task(r["task"]).parse(r["prediction"], by_id[r["id"]]), r  # 0 invalid
    man = json.loads(manifest_path(out).read_text())
    assert man["status"] == "complete" and man["resumed_done"] == before
    assert man["n_written"] == len(samples) - before
    assert man["modes"]["QPR"] == {"constrained": 2} and man["modes"]["SA"] == {"choice": 2}
    assert man["config"]["seed"] == 0 and "transformers" in man["versions"]


@pytest.mark.slow
def test_python_api_predict_in_sample_order(smollm2, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecellm.infer.api import Model
    from ecellm.infer.backends import open_backend

    monkeypatch.setenv("ECELLM_THREADS", "1")
    model = Model(backend=open_backend("hf", smollm2), spec="smollm2-135m")
    samples = [s for s in load_samples(FIXTURE) if s.task in ("SA", "PRP", "QPR")]
    recs = model.predict(samples)
    assert [r["id"] for r in recs] == [s.id for s in samples]
    gen = model.predict(samples[:1], mode="generate")
    assert gen[0]["mode"] == "generate" and gen[0]["completion_tokens"] >= 1
