"""``ecellm push``: publish an adapter (or model) folder or an ECInstruct build on the Hugging Face Hub.

What is uploaded is a cleaned copy, never the folder itself:

- an adapter/model folder (from ``ecellm train``): weights, tokenizer, ``ecellm_train.json``,
  ``manifest.json``, ``loss.png`` and the model card; not ``checkpoints/`` (resumable Trainer
  state, often larger than the adapter). The card's ``base_model`` and the adapter's
  ``base_model_name_or_path`` are rewritten to a Hub id (embedded models map to the model their
  GGUF was made from; a local folder needs ``--base-model``), so ``PeftModel.from_pretrained``
  and the Hub's model tree resolve it, and no local path is published there.
- a build folder (from ``ecellm data build``): the parquet file, the JSONL tree, the manifest,
  the quality report and a dataset card whose front matter declares the splits.

The token comes from the environment (``HF_TOKEN``) or huggingface_hub's login; it is never
written anywhere by ecellm. ``HF_ENDPOINT`` points the client at another Hub.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ecellm.errors import InputError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODEL_SKIP = ("checkpoints", "training_args.bin")
DATASET_FILES = ("ecinstruct.parquet", "manifest.json", "quality_report.md")


def kind_of(folder: Path) -> str:
    """``model`` for a training output or model folder, ``dataset`` for a build folder."""
    if (folder / "adapter_config.json").exists() or (folder / "config.json").exists():
        return "model"
    man = folder / "manifest.json"
    if man.exists() and (folder / "jsonl").is_dir():
        return "dataset"
    raise InputError(
        "not an adapter/model folder (adapter_config.json or config.json) nor a build folder "
        "(manifest.json + jsonl/)",
        file=str(folder),
    )


def hub_base_model(spec: str | None, override: str | None = None) -> str:
    """The Hub id a card's ``base_model`` names: the override, an embedded model's source, or the
    spec itself when it already is an org/name id (and not a local path)."""
    from ecellm.models.registry import EMBEDDED

    cand = override or (EMBEDDED[spec].hub_id if spec in EMBEDDED else spec)
    if not cand or not _HUB_ID.match(cand) or Path(cand).exists():
        raise InputError(
            f"base model {spec!r} is not a Hub id; pass --base-model ORG/NAME (the model it was made from)",
            field="base_model",
        )
    return cand


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    if text.startswith("---\n") and "\n---" in text[4:]:
        head, body = text[4:].split("\n---", 1)
        return yaml.safe_load(head) or {}, body.lstrip("\n")
    return {}, text


def with_front_matter(text: str, updates: dict[str, Any]) -> str:
    """``text`` (a card) with its YAML front matter updated key by key."""
    meta, body = _front_matter(text)
    meta.update(updates)
    return "---\n" + yaml.safe_dump(meta, sort_keys=True, allow_unicode=True) + "---\n\n" + body


def _stage_model(folder: Path, stage: Path, base_override: str | None) -> dict[str, Any]:
    for item in sorted(folder.iterdir()):
        if item.name in MODEL_SKIP or item.name.startswith("."):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
    info_file = folder / "ecellm_train.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    base = hub_base_model(info.get("base_model"), base_override)
    ac = stage / "adapter_config.json"
    if ac.exists():
        cfg = json.loads(ac.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = base
        ac.write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
    card = stage / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else f"# {folder.name}\n"
    updates: dict[str, Any] = {"base_model": base, "tags": ["ecellm", "ecinstruct", "e-commerce"]}
    updates["library_name"] = "peft" if ac.exists() else "transformers"
    card.write_text(with_front_matter(text, updates), encoding="utf-8")
    return {"base_model": base}


def dataset_card(manifest: dict[str, Any]) -> str:
    """README.md of a pushed build: front matter for the Hub's viewer, then counts and provenance."""
    splits = ("train", "val", "test")
    meta = {
        "tags": ["ecellm", "ecinstruct", "e-commerce"],
        "language": ["en"],
        "task_categories": ["text-generation"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": "validation" if s == "val" else s, "path": f"jsonl/*/*/{s}.jsonl"}
                    for s in splits
                ],
            }
        ],
    }
    name = manifest.get("name", "ECInstruct build")
    lines = [
        f"# {name}",
        "",
        "An ECInstruct-style e-commerce instruction dataset built with ecellm "
        f"{manifest.get('ecellm_version')} "
        f"(seed {manifest.get('seed')}): {manifest.get('total')} samples, tasks {manifest.get('tasks')}.",
        "",
        "Files: `jsonl/{task}/{setting}/{split}.jsonl` (one sample per line), `ecinstruct.parquet` (all "
        "rows), `manifest.json` (config, source checksums, counts), `quality_report.md`.",
        "",
        "Rebuild it from the official raw files with `ecellm data build` and the config in the manifest; "
        "the raw sources keep their own licences.",
        "",
    ]
    return with_front_matter("\n".join(lines), meta)


def _stage_dataset(folder: Path, stage: Path) -> dict[str, Any]:
    for name in DATASET_FILES:
        if (folder / name).exists():
            shutil.copy2(folder / name, stage / name)
    shutil.copytree(folder / "jsonl", stage / "jsonl")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (stage / "README.md").write_text(dataset_card(manifest), encoding="utf-8")
    return {}


def _check_base(api: Any, base: str) -> None:
    """The base model must resolve on this Hub before anything is published that names it."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        api.model_info(base)
    except RepositoryNotFoundError:
        raise InputError("not found on the Hub (or not visible with this token)", file=base,
                         field="base_model") from None


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    base_model: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> dict[str, Any]:
    """Upload ``folder`` (adapter/model or build) to ``repo_id``; returns what was pushed."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder not found", file=str(folder))
    if not _HUB_ID.match(repo_id):
        raise InputError("repo id must look like ORG/NAME", field="repo_id")
    kind = kind_of(folder)
    if not get_token():
        raise InputError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`)", field="HF_TOKEN")
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="ecellm-push-") as tmp:
        stage = Path(tmp) / folder.name
        stage.mkdir()
        extra = _stage_model(folder, stage, base_model) if kind == "model" else _stage_dataset(folder, stage)
        if kind == "model":
            _check_base(api, extra["base_model"])
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        api.create_repo(repo_id, repo_type=kind, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(stage),
            repo_type=kind,
            revision=revision,
            commit_message=commit_message or f"Upload {kind} with ecellm",
        )
    return {"repo_id": repo_id, "repo_type": kind, "files": files, "commit": str(info), **extra}


def register(app: typer.Typer) -> None:
    @app.command("push")
    def push_cmd(
        folder: Annotated[str, typer.Argument(help="adapter/model folder (`ecellm train`) or build folder")],
        repo_id: Annotated[str, typer.Option("--repo-id", help="ORG/NAME on the Hub")],
        public: Annotated[bool, typer.Option("--public", help="public repo (default private)")] = False,
        base_model: Annotated[
            str | None, typer.Option("--base-model", help="Hub id of the base model (for local bases)")
        ] = None,
        revision: Annotated[str | None, typer.Option("--revision", help="branch to push to")] = None,
        message: Annotated[str | None, typer.Option("--message", "-m", help="commit message")] = None,
    ) -> None:
        """Publish an adapter or a dataset build on the Hugging Face Hub (token from HF_TOKEN)."""
        import logging

        out = push(folder, repo_id, private=not public, base_model=base_model, revision=revision,
                   commit_message=message)
        logging.getLogger(__name__).info("pushed %d files to %s (%s)", len(out["files"]), repo_id,
                                         out["repo_type"])
        typer.echo(f"https://huggingface.co/{'datasets/' if out['repo_type'] == 'dataset' else ''}{repo_id}")
