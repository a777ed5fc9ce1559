"""``ecellm train`` never overwrites a run silently: refused unless overwrite=true or resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.conftest import FIXTURES

from ecellm.errors import InputError
from ecellm.train import run

FIXTURE = FIXTURES / "train_samples.jsonl"


class Reached(Exception):
    """Raised in place of loading the tokenizer: the output_dir check has passed."""


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def reached(_cfg):
        raise Reached

    monkeypatch.setattr(run, "_tokenizer_for", reached)


def _finished(out: Path) -> dict[str, bytes]:
    (out / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (out / "adapter_model.safetensors").write_bytes(b"weights")
    (out / "adapter_config.json").write_text("{}")
    (out / "ecellm_train.json").write_text("{}")
    (out / "manifest.json").write_text(json.dumps({"kind": "train"}))
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _cfg(out: Path, **kw) -> dict:
    return {"data": {"train": str(FIXTURE)}, "output_dir": str(out), "cutoff_len": 512, **kw}


def test_finished_output_is_refused_before_anything_loads(tmp_path: Path, no_model) -> None:
    out = tmp_path / "run"
    out.mkdir()
    before = _finished(out)
    with pytest.raises(InputError, match="holds a finished training run; overwrite=true replaces it") as err:
        run.prepare(_cfg(out))
    assert err.value.field == "output_dir"
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_checkpoints_only_suggest_resume(tmp_path: Path, no_model) -> None:
    out = tmp_path / "run"
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(InputError, match="unfinished run; resume_from=latest continues it"):
        run.prepare(_cfg(out))


def test_resume_and_overwrite_are_allowed(tmp_path: Path, no_model) -> None:
    out = tmp_path / "run"
    out.mkdir()
    _finished(out)
    with pytest.raises(Reached):
        run.prepare(_cfg(out), [f"resume_from={out / 'checkpoints' / 'checkpoint-4'}"])
    assert (out / "adapter_model.safetensors").exists()  # resuming removes nothing
    (out / "notes.txt").write_text("mine")
    (out / "model_notes.txt").write_text("mine too")
    (out / "tokenizer.json").write_text("{}")
    with pytest.raises(Reached):
        run.prepare(_cfg(out), ["overwrite=true"])
    assert sorted(p.name for p in out.iterdir()) == ["model_notes.txt", "notes.txt"]  # the old run's only


def test_foreign_folders_are_refused_even_with_overwrite(tmp_path: Path) -> None:
    from ecellm.train.outdir import check_output_dir

    (tmp_path / "README.md").write_text("a project")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="holds no ecellm training output"):
            check_output_dir(str(tmp_path), overwrite=overwrite, resume=False)
    assert (tmp_path / "README.md").read_text() == "a project"
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="output_dir is a file"):
        check_output_dir(str(tmp_path / "f"), overwrite=True, resume=False)
    check_output_dir(str(tmp_path / "new"), overwrite=False, resume=False)  # absent: fine


def test_cli_refuses_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    _finished(out)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(out)), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "ecellm", "train", "-c", str(cfg)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "field 'output_dir'" in proc.stderr and (out / "adapter_model.safetensors").exists()
