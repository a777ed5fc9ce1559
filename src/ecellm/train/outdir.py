"""Whether ``ecellm train`` may write into ``output_dir``, checked before anything is loaded.

A finished run is hours of compute: a second ``train`` with the same ``output_dir`` used to
overwrite its adapter silently (and, with the same steps, mix checkpoints). The rules:

- an absent or empty ``output_dir`` is used as is;
- ``resume_from`` set: the run continues there (the Trainer checks the checkpoint);
- a folder holding an ecellm training output (``ecellm_train.json``, a ``manifest.json`` of kind
  ``train`` or a ``checkpoints/`` folder) is refused unless ``overwrite=true``, which first removes
  that run's files (checkpoints, weights, tokenizer, records, card) and leaves any other file;
- any other non-empty folder is refused, even with ``overwrite=true``: ecellm never deletes files
  it did not write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ecellm.errors import InputError

TRAIN_INFO = "ecellm_train.json"
# Top-level names a training run writes (Trainer.save_model, the tokenizer, ecellm's records).
_WRITTEN = {
    TRAIN_INFO,
    "log_history.json",
    "manifest.json",
    "README.md",
    "adapter_config.json",
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "training_args.bin",
}
_WRITTEN_PREFIXES = ("tokenizer", "adapter_model", "model", "pytorch_model", "spiece")
_WRITTEN_SUFFIXES = (".safetensors", ".json", ".bin", ".model")


def _is_train_output(out: Path) -> bool:
    if (out / TRAIN_INFO).is_file() or (out / "checkpoints").is_dir():
        return True
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("kind") == "train"


def _written_by_training(p: Path) -> bool:
    if p.name == "checkpoints":
        return p.is_dir()
    named = p.name.startswith(_WRITTEN_PREFIXES) and p.name.endswith(_WRITTEN_SUFFIXES)
    return p.is_file() and (p.name in _WRITTEN or named)


def check_output_dir(output_dir: str, *, overwrite: bool, resume: bool) -> None:
    """Refuse (one line) or clear ``output_dir`` per the module rules; rank 0 does the clearing."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output_dir is a file, not a folder", file=output_dir, field="output_dir")
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if not _is_train_output(out):
        raise InputError(
            "output_dir is not empty and holds no ecellm training output; choose another output_dir",
            file=output_dir,
            field="output_dir",
        )
    if not overwrite:
        finished = (out / TRAIN_INFO).is_file()
        what = "a finished training run" if finished else "checkpoints of an unfinished run"
        hint = "" if finished else "resume_from=latest continues it, "
        raise InputError(
            f"output_dir holds {what}; {hint}overwrite=true replaces it, or choose another output_dir",
            file=output_dir,
            field="output_dir",
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    for p in sorted(out.iterdir()):
        if _written_by_training(p):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
