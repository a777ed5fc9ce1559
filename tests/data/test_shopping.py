"""The shopping family build: ShopBench-readable splits, drops and balance reported, reruns identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecellm.cli import app
from ecellm.data.loaders import load_samples
from ecellm.data.shopping import build_shopping
from ecellm.errors import InputError
from ecellm.tasks.shopbench.records import read_rows

SMALL = {
    "families": {
        "multiple-choice": {"categories": ["Appliances"], "sizes": {"train": 40, "val": 10, "test": 20}},
        "ranking": {"sizes": {"train": 30, "val": 10, "test": 10}},
        "retrieval": {"categories": ["Gift_Cards"]},
        "generation": {"sources": ["epqa"], "sizes": {"train": 30, "val": 10, "test": 10}},
    },
    "quality": {"english_only": {"enabled": False}},  # language id costs seconds; tested in test_quality
}


@pytest.fixture(scope="module")
def two_builds(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("shopping")
    manifest = build_shopping(raw_dir, root / "a", config=SMALL)
    result = CliRunner().invoke(
        app,
        ["data", "build", "--family", "shopping", "--raw-dir", str(raw_dir), "--out", str(root / "b"),
         "--config", str(_yaml(root, SMALL))],
    )
    assert result.exit_code == 0, result.output
    return root / "a", root / "b", manifest


def _yaml(root: Path, cfg: dict) -> Path:
    path = root / "small.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
    return path


def test_two_builds_are_byte_identical(two_builds):
    a, b, _ = two_builds
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == ["manifest.json", "quality_report.md", "test.jsonl", "train.jsonl", "val.jsonl"]
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_every_record_passes_the_shopbench_loader(two_builds):
    a, _, manifest = two_builds
    types = set()
    for split in ("train", "val", "test"):
        rows = read_rows(a / f"{split}.jsonl")
        assert rows and all(r["split"] == split for r, _, _ in rows)
        types |= {r["meta"]["task_name"] for r, _, _ in rows}
        for row, _, _ in rows:
            assert row["meta"]["truth"] is not None and row["meta"]["track"]
    assert types == set(manifest["counts"])
    test = load_samples(a, splits=["test"])
    assert {s.task for s in test} == {"SB-MC", "SB-RANK", "SB-RET", "SB-GEN"}
    assert len(test) == sum(c["test"] for c in manifest["counts"].values())
    assert len({s.id for s in load_samples(a)}) == manifest["total"]


def test_manifest_reports_counts_drops_and_balance(two_builds):
    a, _, manifest = two_builds
    assert set(manifest["families"]) == {"multiple-choice", "ranking", "retrieval", "generation"}
    labels = manifest["labels"]
    rating = [t for t in manifest["families"]["multiple-choice"] if labels[t]["train"].keys() >= {"5"}]
    assert rating and len(set(labels[rating[0]]["train"].values())) == 1  # balanced 1-5
    for q in manifest["quality"].values():
        assert set(q["steps"]) == {"train", "val", "test"} and set(q["leakage"]) == {"val", "test"}
    assert all(manifest["dropped"][f] for f in manifest["families"])
    report = (a / "quality_report.md").read_text(encoding="utf-8")
    assert "## Label balance" in report and "near_duplicates" in report and "leakage" in report


def test_bad_family_config_names_the_key(raw_dir, tmp_path):
    with pytest.raises(InputError, match="families.ranking.products"):
        build_shopping(raw_dir, tmp_path / "x", config={"families": {"ranking": {"products": "five"}}})
    with pytest.raises(InputError, match="families.nope"):
        build_shopping(raw_dir, tmp_path / "x", config={"families": {"nope": {}}})
