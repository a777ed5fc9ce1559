"""The one manifest rule: where each output's manifest goes, and that every writer follows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ecellm.manifest import manifest_path, write_output_manifest

SRC = Path(__file__).resolve().parents[1] / "src" / "ecellm"


def test_file_outputs_get_their_full_name_plus_manifest_folders_hold_one(tmp_path):
    assert manifest_path(tmp_path / "preds.jsonl") == tmp_path / "preds.jsonl.manifest.json"
    assert manifest_path(tmp_path / "metrics.json") == tmp_path / "metrics.json.manifest.json"
    # two outputs that differ only by extension never share a manifest
    assert manifest_path(tmp_path / "run.json") != manifest_path(tmp_path / "run.jsonl")
    assert manifest_path(tmp_path / "build", folder=True) == tmp_path / "build" / "manifest.json"
    # declared, not guessed: an existing folder passed as a file output is still a file's rule
    assert manifest_path(tmp_path) == tmp_path.with_name(tmp_path.name + ".manifest.json")


def test_write_output_manifest_records_kind_config_and_input_hashes(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("{}\n", encoding="utf-8")
    written = write_output_manifest(tmp_path / "out.json", kind="evaluate", config={"mode": "strict"},
                                    data=[data], timestamp=False)
    on_disk = json.loads((tmp_path / "out.json.manifest.json").read_text())
    assert on_disk == written and on_disk["kind"] == "evaluate" and "created" not in on_disk
    assert list(on_disk["data_sha256"]) == [str(data)] and on_disk["versions"]["ecellm"]


def test_every_writer_goes_through_the_one_rule():
    """Only ecellm.manifest writes manifests by path; every command's module calls
    write_output_manifest, so no output names its manifest its own way."""
    direct = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "manifest.py" and path.parent == SRC:
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"\bwrite_manifest\(", text) or re.search(r"\.manifest\.json\"", text):
            direct.append(str(path.relative_to(SRC)))
    assert not direct, f"manifests written outside ecellm.manifest's rule: {direct}"
