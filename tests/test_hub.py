"""`ecellm push` against a mocked Hub API: what is uploaded, and the card's front matter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ecellm.errors import InputError
from ecellm.hub import push
from ecellm.train.card import model_card
from ecellm.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MIXED = ROOT / "tests" / "fixtures" / "samples_mixed.jsonl"


class FakeHub:
    """Records the calls ecellm makes and keeps a copy of every uploaded folder."""

    def __init__(self, tmp: Path, known_models: tuple[str, ...]) -> None:
        self.tmp, self.known, self.calls, self.uploads = tmp, known_models, [], []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import huggingface_hub
        from huggingface_hub.errors import RepositoryNotFoundError

        hub = self

        def model_info(api, repo_id, *a, **k):
            hub.calls.append(("model_info", repo_id))
            if repo_id not in hub.known:
                import httpx

                req = httpx.Request("GET", f"https://hub.test/api/models/{repo_id}")
                resp = httpx.Response(404, request=req)
                raise RepositoryNotFoundError(f"{repo_id} not found", response=resp)
            return {"id": repo_id}

        def create_repo(api, repo_id, **k):
            hub.calls.append(("create_repo", repo_id, k.get("repo_type"), k.get("private")))
            return f"https://hub.test/{repo_id}"

        def upload_folder(api, *, repo_id, folder_path, repo_type=None, **k):
            dest = hub.tmp / f"upload{len(hub.uploads)}"
            shutil.copytree(folder_path, dest)
            hub.uploads.append(dest)
            hub.calls.append(("upload_folder", repo_id, repo_type))
            return "commit-1"

        for name, fn in (("model_info", model_info), ("create_repo", create_repo),
                         ("upload_folder", upload_folder)):
            monkeypatch.setattr(huggingface_hub.HfApi, name, fn)
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:].split("\n---", 1)[0])


def _adapter(folder: Path) -> Path:
    """A training output folder as ecellm writes it (card from the real card writer)."""
    cfg = load_config({"model": "smollm2-135m", "data": {"train": str(MIXED)}, "output_dir": str(folder)})
    folder.mkdir(parents=True)
    info = {"base_model": "smollm2-135m", "template": "alpaca", "stats": {}}
    (folder / "ecellm_train.json").write_text(json.dumps(info))
    local_base = "/somewhere/.cache/ecellm/converted/SmolLM2"
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": local_base, "r": 16}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "README.md").write_text(model_card(cfg, info, loss_plot="loss.png"))
    (folder / "loss.png").write_bytes(b"png")
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"big")
    return folder


def test_push_adapter_uploads_a_clean_copy_whose_base_model_resolves(tmp_path, monkeypatch):
    hub = FakeHub(tmp_path, known_models=("HuggingFaceTB/SmolLM2-135M-Instruct",))
    hub.install(monkeypatch)
    folder = _adapter(tmp_path / "adapter")
    out = push(folder, "me/smollm2-ecinstruct")
    assert out["files"] == ["README.md", "adapter_config.json", "adapter_model.safetensors",
                            "ecellm_train.json", "loss.png"]
    (up,) = hub.uploads
    assert sorted(p.name for p in up.iterdir()) == out["files"]  # no checkpoints, no pickle
    front = _front((up / "README.md").read_text())
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert front["library_name"] == "peft" and "ecellm" in front["tags"]
    assert "![training and validation loss](loss.png)" in (up / "README.md").read_text()
    cfg = json.loads((up / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and cfg["r"] == 16
    assert hub.calls == [
        ("model_info", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("create_repo", "me/smollm2-ecinstruct", "model", True),
        ("upload_folder", "me/smollm2-ecinstruct", "model"),
    ]
    assert "/somewhere" in (folder / "adapter_config.json").read_text()  # the local folder is untouched


def test_push_refuses_a_base_that_is_not_a_hub_id_or_does_not_resolve(tmp_path, monkeypatch):
    hub = FakeHub(tmp_path, known_models=())
    hub.install(monkeypatch)
    folder = _adapter(tmp_path / "adapter")
    info = json.loads((folder / "ecellm_train.json").read_text())
    (folder / "ecellm_train.json").write_text(json.dumps({**info, "base_model": str(tmp_path)}))
    with pytest.raises(InputError, match="--base-model"):
        push(folder, "me/x")
    with pytest.raises(InputError, match="field 'base_model': not found on the Hub"):
        push(folder, "me/x", base_model="org/missing-model")
    assert not hub.uploads


def test_push_needs_a_token_from_the_environment(tmp_path, monkeypatch):
    FakeHub(tmp_path, known_models=("HuggingFaceTB/SmolLM2-135M-Instruct",)).install(monkeypatch)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login either
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"), raising=False)
    with pytest.raises(InputError, match="HF_TOKEN"):
        push(_adapter(tmp_path / "a"), "me/x")


def test_push_build_uploads_data_and_a_dataset_card(tmp_path, monkeypatch):
    from ecellm.data.loaders import load_samples
    from ecellm.data.pipeline import write_jsonl_tree, write_parquet

    hub = FakeHub(tmp_path, known_models=())
    hub.install(monkeypatch)
    build = tmp_path / "build"
    samples = load_samples(MIXED)
    write_jsonl_tree(samples, build)
    write_parquet(samples, build / "ecinstruct.parquet")
    manifest = {"kind": "data-build", "name": "ECInstruct-lite", "total": len(samples), "seed": 7,
                "tasks": sorted({s.task for s in samples}), "ecellm_version": "0.1.0"}
    (build / "manifest.json").write_text(json.dumps(manifest))
    (build / "hf").mkdir()
    out = push(build, "me/ecinstruct-lite", private=False)
    assert out["repo_type"] == "dataset"
    (up,) = hub.uploads
    files = sorted(p.relative_to(up).as_posix() for p in up.rglob("*") if p.is_file())
    assert files == out["files"] and "hf" not in {f.split("/")[0] for f in files}
    assert {"README.md", "manifest.json", "ecinstruct.parquet"} <= set(files)
    groups = {(s.task, s.setting, s.split) for s in samples}
    assert len([f for f in files if f.startswith("jsonl/")]) == len(groups)
    front = _front((up / "README.md").read_text())
    splits = {d["split"]: d["path"] for d in front["configs"][0]["data_files"]}
    assert splits == {"train": "jsonl/*/*/train.jsonl", "validation": "jsonl/*/*/val.jsonl",
                      "test": "jsonl/*/*/test.jsonl"}
    assert hub.calls[0] == ("create_repo", "me/ecinstruct-lite", "dataset", False)
