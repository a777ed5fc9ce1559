"""``data build --out``: what may be replaced, refusals before any work, staging left by killed
builds, config type errors, and ``data validate`` on the parquet and hf exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecellm.data import pipeline
from ecellm.data.pipeline import build_dataset
from ecellm.data.validate import validate_build
from ecellm.errors import InputError

TINY = {"tasks": {"QPR": {"sizes": {"train": 6, "val": 3, "test": 3}}}}


@pytest.fixture(scope="module")
def tiny_build(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "build"
    build_dataset(raw_dir, out, config=TINY, tasks=["QPR"])
    return out


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals must come before any work: building at all fails the test."""

    def boom(*_a, **_k):
        raise AssertionError("the build started although --out should have been refused")

    monkeypatch.setattr(pipeline, "_build_into", boom, raising=False)  # raising=False: old versions


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_manifest_lists_every_file_the_build_wrote(tiny_build: Path) -> None:
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    assert manifest["files"] == sorted(_tree(tiny_build))
    assert {"manifest.json", "quality_report.md", "ecinstruct.parquet", "hf/dataset_dict.json"} <= set(
        manifest["files"]
    )


def test_finished_train_output_is_never_deleted(raw_dir: Path, tmp_path: Path, no_build) -> None:
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (run / "adapter_model.safetensors").write_bytes(b"weights")
    (run / "manifest.json").write_text('{"kind": "train"}')
    before = _tree(run)
    with pytest.raises(InputError, match="holds a 'train' output, not an ecellm data build"):
        build_dataset(raw_dir, run, config=TINY, tasks=["QPR"])
    assert _tree(run) == before


def test_user_files_inside_a_build_are_refused(
    raw_dir: Path, tiny_build: Path, tmp_path: Path, no_build
) -> None:
    b = tmp_path / "b"
    shutil.copytree(tiny_build, b)
    (b / "jsonl" / "my_notes.txt").write_text("keep me")
    with pytest.raises(
        InputError, match=r"1 entry the earlier build did not write \(first: jsonl/my_notes.txt\)"
    ):
        build_dataset(raw_dir, b, config=TINY, tasks=["QPR"])
    assert (b / "jsonl" / "my_notes.txt").read_text() == "keep me"
    (b / "jsonl" / "my_notes.txt").unlink()
    (b / "extra_dir").mkdir()  # an empty folder the build did not make counts as well
    with pytest.raises(InputError, match="first: extra_dir/"):
        build_dataset(raw_dir, b, config=TINY, tasks=["QPR"])


def test_builds_without_file_list_or_manifest_are_refused(raw_dir: Path, tmp_path: Path, no_build) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text('{"kind": "data-build"}')  # an older ecellm's build
    with pytest.raises(InputError, match="without a list of the files it wrote"):
        build_dataset(raw_dir, old, config=TINY, tasks=["QPR"])
    (old / "manifest.json").unlink()
    (old / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty and is not an ecellm data build"):
        build_dataset(raw_dir, old, config=TINY, tasks=["QPR"])


def test_rebuild_replaces_its_own_build(raw_dir: Path, tiny_build: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(tiny_build, b)
    (b / "jsonl" / "QPR" / "IND_Diverse_Instruction" / "train.jsonl").write_text("stale\n")
    manifest = build_dataset(raw_dir, b, config=TINY, tasks=["QPR"], seed=7)
    assert manifest["seed"] == 7 and _tree(b).keys() == _tree(tiny_build).keys()
    assert validate_build(b) == []
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging or old folder left


def test_out_given_as_dot_stages_next_to_the_folder(raw_dir: Path, tiny_build: Path, tmp_path, monkeypatch):
    b = tmp_path / "b"
    shutil.copytree(tiny_build, b)
    monkeypatch.chdir(b)
    build_dataset(raw_dir, ".", config=TINY, tasks=["QPR"])
    assert _tree(b) == _tree(tiny_build) and [p.name for p in tmp_path.iterdir()] == ["b"]


def test_unusable_out_is_refused_before_building(raw_dir: Path, tmp_path: Path, no_build) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="--out is a file or a symlink, not a folder"):
        build_dataset(raw_dir, f, config=TINY, tasks=["QPR"])
    with pytest.raises(InputError, match="is a file, not a folder"):
        build_dataset(raw_dir, f / "sub", config=TINY, tasks=["QPR"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_parent_is_refused_before_building(raw_dir: Path, tmp_path: Path, no_build) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match="read-only"):
            build_dataset(raw_dir, ro / "out", config=TINY, tasks=["QPR"])
    finally:
        ro.chmod(0o755)


def test_staging_folder_that_cannot_be_made_is_one_line(raw_dir: Path, tmp_path: Path, monkeypatch, no_build):
    """Root passes the permission check, so the staging folder, made before building, is the probe."""

    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(InputError, match="cannot create the staging folder: Permission denied"):
        build_dataset(raw_dir, tmp_path / "out", config=TINY, tasks=["QPR"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_of_killed_builds_is_cleaned_safely(tmp_path: Path, tiny_build: Path) -> None:
    from ecellm.data import outdir

    out = tmp_path / "build"
    dead, alive = _dead_pid(), os.getppid()
    stale = outdir.stage_path(out, pid=dead)
    stale.mkdir()
    (stale / outdir.MARKER).write_text(json.dumps({"pid": dead}))
    (stale / "half.jsonl").write_text("{}\n")
    running = outdir.stage_path(out, pid=alive)  # a build still running: untouched
    running.mkdir()
    (running / outdir.MARKER).write_text(json.dumps({"pid": alive}))
    foreign = tmp_path / f".build.building-{outdir._host()}-{dead + 1}"  # no marker: not ours
    foreign.mkdir()
    (foreign / "data.txt").write_text("x")
    # a swap killed between its two renames: the previous build sits in the old folder
    old = outdir.stage_path(out, "old", pid=dead)
    shutil.copytree(tiny_build, old)
    said: list[str] = []
    outdir.clean_stale(out, said.append)
    assert not stale.exists() and running.exists() and foreign.exists()
    assert not old.exists() and _tree(out) == _tree(tiny_build)  # put back, not deleted
    assert len(said) == 2
    # with --out present, a stale old folder is removed only when it holds nothing but its files
    shutil.copytree(tiny_build, old)
    (old / "user.txt").write_text("mine")
    outdir.clean_stale(out, said.append)
    assert _tree(old) == {**_tree(tiny_build), "user.txt": b"mine"}  # untouched
    (old / "user.txt").unlink()
    outdir.clean_stale(out, said.append)
    assert not old.exists()


def test_killed_build_staging_is_removed_by_the_next_build(raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    code = (
        "import os, sys\n"
        "from ecellm.data import pipeline\n"
        "def killed(stage, *a, **k):\n"
        "    (stage / 'jsonl').mkdir(); os._exit(9)\n"
        "pipeline._build_into = killed\n"
        f"pipeline.build_dataset({str(raw_dir)!r}, {str(out)!r}, tasks=['QPR'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).parents[2])}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and ".b.building-" in leftovers[0]
    build_dataset(raw_dir, out, config=TINY, tasks=["QPR"])
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"seed": "abc"}, "seed", "seed must be an integer, got 'abc'"),
        ({"seed": True}, "seed", "seed must be an integer"),
        ({"tasks": {"QPR": {"sizes": {"train": -5}}}}, "tasks.QPR.sizes.train", "non-negative integer"),
        ({"tasks": {"QPR": {"sizes": {"tran": 5}}}}, "tasks.QPR.sizes.tran", "unknown split"),
        ({"tasks": {"QPR": {"min_products": "2"}}}, "tasks.QPR.min_products", "expected an integer"),
        ({"tasks": {"QPR": {"max_products": -1}}}, "tasks.QPR.max_products", "must not be negative"),
        ({"tasks": {"SA": {"ind_categories": "Gift_Cards"}}}, "tasks.SA.ind_categories", "expected a list"),
        ({"tasks": {"SA": {"fractions": [0.7, -0.1, 0.4]}}}, "tasks.SA.fractions", "non-negative numbers"),
        ({"tasks": {"NOPE": {}}}, "tasks.NOPE", "unknown task"),
        ({"settings": {"unseen_splits": "test"}}, "settings.unseen_splits", "expected a list of splits"),
    ],
)
def test_mistyped_build_config_is_one_line_before_building(
    raw_dir: Path, tmp_path: Path, no_build, config: dict, field: str, message: str
) -> None:
    with pytest.raises(InputError, match=message) as err:
        build_dataset(raw_dir, tmp_path / "out", config=config)
    assert err.value.field == field and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_refusal_is_one_line_exit_2(raw_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"kind": "train"}')
    proc = subprocess.run(
        [sys.executable, "-m", "ecellm", "data", "build", "--raw-dir", str(raw_dir), "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert (run / "manifest.json").exists()


def test_validate_checks_parquet_and_hf_exports(tiny_build: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    b = tmp_path / "b"
    shutil.copytree(tiny_build, b)
    path = b / "ecinstruct.parquet"
    schema = pq.read_schema(path)
    rows = pq.read_table(path).to_pylist()
    rows[1]["output"] = "Z"
    lost = rows.pop(2)["id"]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    shutil.rmtree(b / "hf" / "test")
    problems = [str(p) for p in validate_build(b)]
    assert f"{path}, record row 2, field 'output': differs from the JSONL sample at" in problems[-3]
    assert problems[-2] == f"{path}, field 'id': 1 JSONL sample(s) missing (first: {lost!r})"
    assert problems[-1].startswith(f"{b / 'hf'}: unreadable datasets folder")
    assert any("hf/test/state.json is listed but missing" in p for p in problems)


def test_fetch_only_unknown_name_is_an_error(tmp_path: Path) -> None:
    from ecellm.data.fetch import fetch

    with pytest.raises(
        InputError, match=r"'escii' matches no raw file \(known: amazon_google, .*esci.*pqa\)"
    ):
        fetch(tmp_path, mirror=tmp_path, only=["escii"])
    assert list(tmp_path.iterdir()) == []
