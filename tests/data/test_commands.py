"""``ecellm data build|stats|validate|fetch`` end to end (small builds, local mirror only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ecellm.cli import app
from ecellm.io import sha256_file

runner = CliRunner()
SMALL = (
    "tasks:\n  QPR: {sizes: {train: 30, val: 10, test: 10}}\n  MPC: {sizes: {train: 40, val: 10, test: 10}}\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecellm", *args], capture_output=True, text=True, timeout=300
    )


def test_build_stats_validate(raw_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL, encoding="utf-8")
    out = tmp_path / "build"
    res = runner.invoke(
        app,
        [
            "data",
            "build",
            "--raw-dir",
            str(raw_dir),
            "--out",
            str(out),
            "--config",
            str(cfg),
            "--tasks",
            "QPR,MPC",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["QPR"]["IND_Diverse_Instruction"] == {"train": 30, "val": 10, "test": 10}
    assert manifest["counts"]["MPC"]["IND_Unseen_Instruction"] == {"test": 10}
    res = runner.invoke(app, ["data", "stats", str(out), "--json"])
    assert res.exit_code == 0
    stats = json.loads(res.output)
    assert stats["total"] == 30 + 10 + 10 + 10 + 10 + 40 + 10 + 10 + 10 + 10
    assert sum(stats["labels"]["MPC"]["IND_Diverse_Instruction"]["train"].values()) == 40
    res = runner.invoke(app, ["data", "stats", str(out)])
    assert res.exit_code == 0 and "QPR" in res.output
    res = runner.invoke(app, ["data", "validate", str(out)])
    assert res.exit_code == 0 and "is valid" in res.output
    # plant a leak: a train input copied into the test file
    train = (out / "jsonl/QPR/IND_Diverse_Instruction/train.jsonl").read_text().splitlines()
    test_file = out / "jsonl/QPR/IND_Diverse_Instruction/test.jsonl"
    rows = test_file.read_text().splitlines()
    rec = json.loads(rows[0])
    src = json.loads(train[0])
    rec.update(input=src["input"], output=src["output"], meta=src["meta"])
    rows[0] = json.dumps(rec)
    test_file.write_text("\n".join(rows) + "\n")
    proc = _cli("data", "validate", str(out))
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"error: {test_file}, record line 1, field 'input': train/test leak")


def test_build_bad_inputs_exit_with_one_line(tmp_path: Path, raw_dir: Path) -> None:
    proc = _cli("data", "build", "--raw-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "raw data folder not found" in proc.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("tasks:\n  MPC: {colour: red}\n", encoding="utf-8")
    proc = _cli(
        "data", "build", "--raw-dir", str(raw_dir), "--out", str(tmp_path / "o"), "--config", str(cfg)
    )
    assert proc.returncode == 2 and "field 'tasks.MPC.colour'" in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_fetch_from_mirror(raw_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache"
    res = runner.invoke(
        app, ["data", "fetch", "--from", str(raw_dir), "--out", str(dest), "--only", "pqa", "--only", "esci"]
    )
    assert res.exit_code == 0, res.output
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == [
        "esci/shopping_queries_dataset_examples.parquet",
        "esci/shopping_queries_dataset_products.parquet",
        "pqa/ePQA/dev.csv",
        "pqa/hetPQA/answer_generation/dev.csv",
        "pqa/hetPQA/answer_generation/train.csv",
    ]
    assert sha256_file(dest / "pqa/ePQA/dev.csv") == sha256_file(raw_dir / "pqa/ePQA/dev.csv")
    # --dest, the flag's earlier name, still works and says to use --out
    res = runner.invoke(app, ["data", "fetch", "--from", str(raw_dir), "--dest", str(dest), "--only", "pqa"])
    assert res.output.count(": cached") == 3 and "--dest is deprecated, use --out" in res.output
    # a corrupted mirror copy fails the known checksum, with one line and no file written
    mirror = tmp_path / "mirror"
    (mirror / "pqa/ePQA").mkdir(parents=True)
    (mirror / "pqa/ePQA/dev.csv").write_text("qid,question\n1,tampered\n", encoding="utf-8")
    proc = _cli("data", "fetch", "--from", str(mirror), "--out", str(tmp_path / "c2"), "--only", "pqa/ePQA")
    assert proc.returncode == 2
    assert "field 'sha256': checksum mismatch" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "c2" / "pqa/ePQA/dev.csv").exists()


def test_fetch_catalog_urls() -> None:
    from ecellm.data.fetch import catalog

    files = {f.path: f for f in catalog()}
    assert files["esci/shopping_queries_dataset_products.parquet"].url.startswith("https://")
    assert files["mave/mave_positives.jsonl"].url is None  # generated by a script, no direct download
    assert all(f.sha256 is None or len(f.sha256) == 64 for f in files.values())


def test_build_profile_flag(tmp_path: Path) -> None:
    from tests.conftest import RAW_REFERENCE

    out = tmp_path / "ref"
    res = runner.invoke(
        app, ["data", "build", "--raw-dir", str(RAW_REFERENCE), "--out", str(out), "--tasks", "QPR",
              "--profile", "reference"],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["profile"] == "reference"
    assert manifest["config"]["tasks"]["QPR"]["list_size"] == "random"
    proc = _cli("data", "build", "--raw-dir", str(RAW_REFERENCE), "--out", str(tmp_path / "o"),
                "--profile", "paper")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown build profile 'paper'" in proc.stderr
