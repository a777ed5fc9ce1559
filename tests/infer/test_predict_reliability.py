"""predict: resume repairs the tail and refuses another run; choices are checked before loading;
a failing backend leaves nothing behind (or a manifest saying "failed"); CLI errors are one line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import FIXTURES
from tests.infer.backends.test_openai import Flaky

from ecellm import cli
from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.infer.base import Completion
from ecellm.infer.predict import manifest_path, predict

FIXTURE = FIXTURES / "samples_mixed.jsonl"


class Echo:
    """A backend without a model: answers every request with 'é' + its id, optionally failing
    after ``fail_after`` completions (an interrupted run)."""

    name = "echo"
    supported_modes = frozenset({"generate", "choice", "constrained"})
    tokenizer = None

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.seen: list[str] = []

    def run(self, requests):
        for r in requests:
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise RuntimeError("backend died")
            self.seen.append(r.id)
            yield Completion(id=r.id, text="é" + r.id, mode=r.mode)

    def describe(self) -> dict:
        return {"backend": self.name}


def _samples():
    return load_samples(FIXTURE)


def _interrupted(tmp_path: Path, n: int = 3) -> tuple[Path, list]:
    samples = _samples()
    out = tmp_path / "p.jsonl"
    with pytest.raises(RuntimeError, match="backend died"):
        predict(samples, out=out, backend=Echo(fail_after=n), progress=False)
    assert out.read_text(encoding="utf-8").count("\n") == n
    return out, samples


def _ids(out: Path) -> Counter:
    return Counter(json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines())


def test_failed_run_marks_manifest_failed(tmp_path: Path) -> None:
    out, _ = _interrupted(tmp_path)
    man = json.loads(manifest_path(out).read_text())
    assert man["status"] == "failed" and man["n_written"] == 3 and "backend died" in man["error"]


def test_resume_keeps_a_complete_last_record_without_newline(tmp_path: Path) -> None:
    out, samples = _interrupted(tmp_path)
    text = out.read_text(encoding="utf-8")
    out.write_text(text.rstrip("\n"), encoding="utf-8")  # complete record, newline lost
    last = json.loads(text.splitlines()[-1])
    backend = Echo()
    predict(samples, out=out, backend=backend, resume=True, progress=False)
    assert _ids(out) == Counter(s.id for s in samples)  # every id exactly once
    assert last["id"] not in backend.seen  # the record was kept, not predicted again
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[2]) == last


def test_resume_drops_a_tail_cut_inside_a_utf8_character(tmp_path: Path) -> None:
    out, samples = _interrupted(tmp_path)
    partial = '{"id": "AVE-FIX-test-000000", "prediction": "é'.encode()[:-1]  # half of 'é'
    with out.open("ab") as fh:
        fh.write(partial)
    predict(samples, out=out, backend=Echo(), resume=True, progress=False)
    assert _ids(out) == Counter(s.id for s in samples)
    assert json.loads(manifest_path(out).read_text())["status"] == "complete"


def test_resume_names_an_unreadable_middle_line(tmp_path: Path) -> None:
    out, samples = _interrupted(tmp_path)
    lines = out.read_bytes().split(b"\n")
    lines[1] = b'{"id": "\xff"}'
    out.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match="record 2"):
        predict(samples, out=out, backend=Echo(), resume=True, progress=False)


def _change(kind: str, samples: list, kw: dict) -> None:
    if kind == "input":
        samples[5] = samples[5].model_copy(update={"input": samples[5].input + " changed"})
    elif kind == "data":
        del samples[-1]
    else:
        kw[kind] = {"model": "other-model", "adapter": "some/adapter", "mode": "generate"}.get(kind, "chat")


@pytest.mark.parametrize("kind", ["input", "data", "model", "adapter", "mode", "template"])
def test_resume_refuses_another_run(tmp_path: Path, kind: str) -> None:
    out, samples = _interrupted(tmp_path)
    before, man_before = out.read_bytes(), manifest_path(out).read_bytes()
    kw: dict = {}
    _change(kind, samples, kw)
    with pytest.raises(InputError, match="cannot resume a different run") as e:
        predict(samples, out=out, backend=Echo(), resume=True, progress=False, **kw)
    assert "\n" not in str(e.value)
    assert ("samples: was" if kind in ("input", "data") else f"{kind}: was") in str(e.value)
    assert out.read_bytes() == before and manifest_path(out).read_bytes() == man_before


def test_resume_without_manifest_is_refused(tmp_path: Path) -> None:
    out, samples = _interrupted(tmp_path)
    manifest_path(out).unlink()
    with pytest.raises(InputError, match="manifest.json is missing"):
        predict(samples, out=out, backend=Echo(), resume=True, progress=False)


def test_overwrite_keeps_old_output_until_the_first_new_record(tmp_path: Path) -> None:
    out, samples = _interrupted(tmp_path)
    before, man_before = out.read_bytes(), manifest_path(out).read_bytes()
    with pytest.raises(RuntimeError):
        predict(samples, out=out, backend=Echo(fail_after=0), overwrite=True, progress=False)
    assert out.read_bytes() == before and manifest_path(out).read_bytes() == man_before
    predict(samples, out=out, backend=Echo(), overwrite=True, progress=False)
    assert _ids(out) == Counter(s.id for s in samples)


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ecellm", "predict", "--no-progress", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


BAD_CHOICES = [("--mode", "fast"), ("--template", "llama"), ("--dtype", "int3"), ("--backend", "tpu")]


@pytest.mark.parametrize(("flag", "value"), BAD_CHOICES)
def test_invalid_choice_is_one_line_before_loading(monkeypatch, capsys, tmp_path, flag, value) -> None:
    def no_loading(*a, **k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr("ecellm.infer.api.load_model", no_loading)
    monkeypatch.setattr("ecellm.data.loaders.load_samples", no_loading)
    out = tmp_path / "p.jsonl"
    code, err = _cli(monkeypatch, capsys, "--data", str(FIXTURE), "--out", str(out), flag, value)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert f"unknown {flag[2:]} '{value}'" in err
    assert not out.exists() and not manifest_path(out).exists()


def test_out_directory_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    code, err = _cli(monkeypatch, capsys, "--data", str(FIXTURE), "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "is a directory" in err, err


@pytest.mark.parametrize("status", [401, 404])
def test_api_refusal_is_one_line_and_leaves_nothing(monkeypatch, capsys, tmp_path, status) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    out = tmp_path / "p.jsonl"
    with Flaky([(status, {})] * 50) as srv:
        code, err = _cli(
            monkeypatch,
            capsys,
            "--data",
            str(FIXTURE),
            "--out",
            str(out),
            "--backend",
            "openai",
            "--model",
            "m",
            "--base-url",
            srv.url,
            "--max-retries",
            "0",
        )
    assert code == 3 and err.count("\n") == 1 and f"HTTP {status}" in err, err
    assert not out.exists() and not manifest_path(out).exists()


def test_missing_optional_engine_is_exit_code_3(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("ecellm.infer.backends.vllm")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed")
    code, err = _cli(
        monkeypatch, capsys, "--data", str(FIXTURE), "--out", str(tmp_path / "p.jsonl"), "--backend", "vllm"
    )
    assert code == 3 and err.count("\n") == 1 and "vLLM" in err, err
