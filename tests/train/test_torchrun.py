"""The same `ecellm train` command under torchrun (2 processes, DDP over gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "train_samples.jsonl"


@pytest.mark.slow
def test_torchrun_two_processes_write_one_adapter_like_a_single_run(tmp_path, smollm2):
    from ecellm.train.run import train

    cfg = {
        "data": {"train": str(FIXTURE), "tasks": ["PRP", "PM", "PSI", "SA", "AP"]},
        "cutoff_len": 512,
        "micro_batch_size": 2,
        "max_steps": 2,
        "logging_steps": 1,
        "lora": {"lm_head": False},
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump({**cfg, "output_dir": str(tmp_path / "ddp")}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "ecellm.train",
            "--config",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = tmp_path / "ddp"
    info = json.loads((ddp / "ecellm_train.json").read_text())
    assert info["stats"]["world_size"] == 2 and info["stats"]["global_step"] == 2
    single = train({**cfg, "output_dir": str(tmp_path / "single")})
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
    a = json.loads((ddp / "adapter_config.json").read_text())
    b = json.loads((single / "adapter_config.json").read_text())
    assert sorted(a["target_modules"]) == sorted(b["target_modules"]) and a["r"] == b["r"]
    # 2 processes x micro-batch 2 consume twice the samples per step of the single run
    assert (
        info["stats"]["train"]["kept"]
        == json.loads((single / "ecellm_train.json").read_text())["stats"]["train"]["kept"]
    )
    state = json.loads((ddp / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    single_state = json.loads((single / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(2 * single_state["epoch"])
