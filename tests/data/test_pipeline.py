"""The build pipeline: the full ECInstruct-lite build, determinism, settings, validation, gold scores."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest

from ecellm.data.builders import qpr
from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.loaders import load_samples
from ecellm.data.pipeline import build_dataset, load_config, run_quality, task_config
from ecellm.data.stats import read_build
from ecellm.data.validate import validate_build
from ecellm.errors import InputError
from ecellm.tasks import get_task

ALL = ("AVE", "PRP", "PM", "SA", "SR", "MPC", "PSI", "QPR", "AP", "AG")
WITH_OOD = {"AVE", "PRP", "SA", "SR", "AP", "AG"}


@pytest.fixture(scope="module")
def samples(ecinstruct_build):
    return read_build(ecinstruct_build[0])


def test_all_tasks_and_ood(ecinstruct_build, samples) -> None:
    out, manifest = ecinstruct_build
    assert manifest["skipped"] == {}, manifest["skipped"]
    assert manifest["tasks"] == list(ALL)
    for abbr in ALL:
        settings = set(manifest["counts"][abbr])
        assert {"IND_Diverse_Instruction", "IND_Unseen_Instruction", "IND_Single_Instruction"} <= settings
        assert ("OOD_Diverse_Instruction" in settings) == (abbr in WITH_OOD), abbr
        assert manifest["counts"][abbr]["IND_Diverse_Instruction"].get("train", 0) > 0
    for name in ("manifest.json", "quality_report.md", "ecinstruct.parquet", "hf/dataset_dict.json"):
        assert (out / name).exists()
    assert (
        sum(
            manifest["counts"][t][s][sp]
            for t in manifest["counts"]
            for s in manifest["counts"][t]
            for sp in manifest["counts"][t][s]
        )
        == len(samples)
        == manifest["total"]
    )
    assert all(len(h) == 64 and not k.startswith("/") for k, h in manifest["sources"].items())
    assert manifest["seed"] == 42 and manifest["ecellm_version"]


def test_settings_and_ids(samples) -> None:
    by_id = {s.id: s for s in samples}
    assert len(by_id) == len(samples)
    for s in samples:
        task = get_task(s.task)
        domain, kind, _ = s.setting.split("_")
        base = s.id.removesuffix("-unseen").removesuffix("-single")
        assert base.startswith(f"{s.task}-{domain}-{s.split}-") and len(base.rsplit("-", 1)[1]) == 6
        if kind == "Diverse":
            assert s.instruction in task.instructions and base == s.id
        else:
            original = by_id[base]  # same sample, same input, only the instruction differs
            assert (original.input, original.output) == (s.input, s.output)
            expected = task.unseen_instruction if kind == "Unseen" else task.instructions[0]
            assert s.instruction == expected
            assert s.id == base + ("-unseen" if kind == "Unseen" else "-single")
    # Diverse draws use the whole pool
    mpc_train = {s.instruction for s in samples if s.task == "MPC" and s.split == "train"}
    assert mpc_train == set(get_task("MPC").instructions)


def test_rebuild_is_byte_identical(ecinstruct_build, raw_dir: Path, tmp_path: Path) -> None:
    first, manifest = ecinstruct_build
    second = tmp_path / "again"
    manifest2 = build_dataset(raw_dir, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    differ = [str(f) for f in files if not filecmp.cmp(first / f, second / f, shallow=False)]
    assert differ == []  # manifest.json included: it carries no timestamp
    assert "created" not in manifest and manifest == manifest2


def test_loaders_read_every_output(ecinstruct_build, samples) -> None:
    out, _ = ecinstruct_build
    for path in (out, out / "ecinstruct.parquet", out / "hf"):
        loaded = load_samples(path)
        assert sorted(s.id for s in loaded) == sorted(s.id for s in samples)
    qpr_test = load_samples(out / "hf", tasks=["QPR"], splits=["test"])
    assert qpr_test and all(len(s.meta["labels"]) >= 2 for s in qpr_test)


def test_validate_passes_on_build(ecinstruct_build) -> None:
    assert [str(p) for p in validate_build(ecinstruct_build[0])] == []


def _copy(build: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(build, dst)
    return dst


def _edit_line(path: Path, index: int, fn) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[index])
    fn(rec)
    lines[index] = json.dumps(rec, ensure_ascii=False, sort_keys=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_validate_catches_planted_leak(ecinstruct_build, tmp_path: Path) -> None:
    b = _copy(ecinstruct_build[0], tmp_path)
    train = b / "jsonl/MPC/IND_Diverse_Instruction/train.jsonl"
    test = b / "jsonl/MPC/IND_Diverse_Instruction/test.jsonl"
    leaked = json.loads(train.read_text(encoding="utf-8").splitlines()[4])["input"]
    _edit_line(test, 2, lambda r: r.update(input=leaked))
    problems = [str(p) for p in validate_build(b)]
    assert len(problems) == 3  # the leak, then the parquet and hf exports that no longer agree
    assert "ecinstruct.parquet, record row " in problems[1] and f"{test}:3" in problems[1]
    assert problems[2].startswith(f"{b / 'hf'}[test], record row ")
    assert problems[0].startswith(f"{test}, record line 3, field 'input': train/test leak")
    assert f"{train}:5" in problems[0]


def test_validate_catches_qpr_label_mismatch(ecinstruct_build, tmp_path: Path) -> None:
    b = _copy(ecinstruct_build[0], tmp_path)
    f = b / "jsonl/QPR/IND_Diverse_Instruction/val.jsonl"
    _edit_line(f, 0, lambda r: r["meta"].update(labels=list(reversed(r["meta"]["labels"]))))
    problems = [str(p) for p in validate_build(b)]
    assert len(problems) == 3 and problems[0].startswith(f"{f}, record line 1, field 'output': ranking")
    assert all("field 'meta': differs from the JSONL sample" in p for p in problems[1:])


def test_validate_catches_malformed_rows(ecinstruct_build, tmp_path: Path) -> None:
    b = _copy(ecinstruct_build[0], tmp_path)
    f = b / "jsonl/PSI/IND_Diverse_Instruction/test.jsonl"
    _edit_line(f, 0, lambda r: r.pop("output"))
    _edit_line(f, 1, lambda r: r.update(output="maybe"))
    with f.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "PSI-IND-test-999999", "task": \n')
    problems = [str(p) for p in validate_build(b)]
    assert problems[0] == f"{f}, record line 1, field 'output': Field required"
    assert problems[1] == f"{f}, record line 2, field 'output': gold output is not a valid PSI answer"
    assert problems[2].startswith(f"{f}, record line ") and "malformed JSON" in problems[2]
    assert any("counts.PSI.IND_Diverse_Instruction.test" in p for p in problems)  # manifest disagrees


@pytest.mark.slow
def test_gold_copy_scores_one(ecinstruct_build, samples, tmp_path: Path) -> None:
    from ecellm.evaluate import evaluate, load_predictions

    # every test sample of every task; AG (BERTScore, a model run) on its first 150 Diverse ones per domain
    test = [s for s in samples if s.split == "test" and s.task != "AG"]
    for domain in ("IND", "OOD"):
        test += [
            s
            for s in samples
            if s.task == "AG" and s.setting == f"{domain}_Diverse_Instruction" and s.split == "test"
        ][:150]
    pred_file = tmp_path / "gold.jsonl"
    pred_file.write_text("".join(json.dumps({"id": s.id, "prediction": s.output}) + "\n" for s in test))
    preds = load_predictions(pred_file, test)
    for mode in ("paper", "strict"):
        res = evaluate(test, preds, mode=mode)
        assert {r["task"] for r in res["results"]} == set(ALL)
        for row in res["results"]:
            assert row["invalid"] == 0, row
            assert row["score"] == pytest.approx(1.0, abs=1e-4), (
                mode,
                row["task"],
                row["setting"],
                row["score"],
            )


def test_run_quality_removes_leaks_and_counts() -> None:
    def d(text, out="yes"):
        return Draft(input=json.dumps({"query": text, "product": "Blue widget lamp"}), output=out)

    result = BuildResult(
        task="PSI",
        drafts={
            ("IND", "train"): [d("red lamp"), d("red lamp"), d("green lamp")],
            ("IND", "test"): [d("RED  lamp!"), d("desk lamp")],
        },
    )
    kept, report = run_quality(result, {})
    assert [json.loads(x.input)["query"] for x in kept[("IND", "train")]] == ["red lamp", "green lamp"]
    assert [json.loads(x.input)["query"] for x in kept[("IND", "test")]] == ["desk lamp"]
    assert report["steps"]["IND/train"]["near_duplicates"] == 1
    assert report["leakage"] == {"IND/test": 1}


def test_config_errors_and_skips(raw_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = load_config({"tasks": {"QPR": {"bogus": 1}}})
    with pytest.raises(InputError, match=r"field 'tasks.QPR.bogus'"):
        task_config("QPR", qpr.DEFAULTS, cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match="malformed YAML"):
        load_config(bad)
    from ecellm.data import builders

    known = builders.builder_modules()
    missing = {**known, "PSI": "ecellm.data.builders.not_there"}
    monkeypatch.setattr(builders, "builder_modules", lambda: missing)
    small = {"tasks": {"QPR": {"sizes": {"train": 20, "val": 5, "test": 5}}}}
    m = build_dataset(raw_dir, tmp_path / "out", config=small, tasks=["QPR", "PSI"], seed=3)
    assert m["tasks"] == ["QPR"] and "not available" in m["skipped"]["PSI"]
    assert m["counts"]["QPR"]["IND_Diverse_Instruction"] == {"train": 20, "val": 5, "test": 5}
    with pytest.raises(InputError, match="not an ecellm data build"):
        (tmp_path / "junk").mkdir()
        (tmp_path / "junk" / "x.txt").write_text("keep me")
        build_dataset(raw_dir, tmp_path / "junk", config=small, tasks=["QPR"])
    assert (tmp_path / "junk" / "x.txt").read_text() == "keep me"


REFERENCE_TASKS = ["AVE", "SA", "SR", "MPC", "PSI", "QPR", "AP", "AG"]  # those the fixture feeds
ON_FIXTURE = {"tasks": {t: {"ind_categories": ["Ref_Cat"], "ood_categories": []} for t in ("SA", "SR")}}


def test_reference_profile_builds_are_byte_identical(tmp_path: Path) -> None:
    from tests.conftest import RAW_REFERENCE

    first, second = tmp_path / "a", tmp_path / "b"
    kw = {"config": ON_FIXTURE, "tasks": REFERENCE_TASKS, "profile": "reference"}
    manifest = build_dataset(RAW_REFERENCE, first, **kw)
    again = build_dataset(RAW_REFERENCE, second, **kw)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert [str(f) for f in files if not filecmp.cmp(first / f, second / f, shallow=False)] == []
    assert manifest == again and manifest["tasks"] == REFERENCE_TASKS
    assert manifest["config"]["profile"] == "reference"  # the manifest says which rules built it
    assert manifest["config"]["tasks"]["QPR"]["list_size"] == "random"
    assert [str(p) for p in validate_build(first)] == []


def test_profile_layers_between_lite_and_user_config() -> None:
    ref = load_config(profile="reference")
    assert ref["tasks"]["QPR"]["list_size"] == "random" and ref["tasks"]["QPR"]["sizes"]["train"] == 2000
    user = load_config({"tasks": {"QPR": {"list_size": "all"}}}, profile="reference")
    assert user["tasks"]["QPR"]["list_size"] == "all" and user["tasks"]["AVE"]["sample_unit"] == "attribute"
    assert "profile" not in load_config()
    with pytest.raises(InputError, match="unknown build profile 'paper'.*known: reference"):
        load_config(profile="paper")
    from ecellm.data.builders import load_builder

    for abbr in ref["tasks"]:  # every profile key is a real, well-typed builder option
        task_config(abbr, load_builder(abbr).DEFAULTS, ref)
