"""Which prompt template a model is used with, and where that choice came from.

A model answers well only in the prompt format it was tuned on, so the template travels with it:
training writes it to ``ecellm_train.json`` beside the adapter (and ``export`` copies that file
into merged models), and the released NingLab eCeLLM checkpoints are known by name. ``predict``,
``serve``, ``load_model`` and ``export`` all call :func:`resolve_template`, in this order:

1. ``explicit``: a template the user named (a warning when it differs from the model's own);
2. ``adapter`` / ``model``: the ``template`` in the ``ecellm_train.json`` of the adapter folder,
   or of the model folder (a full fine-tune or a merged export);
3. ``model default``: a NingLab eCeLLM checkpoint's reference template (eCeLLM-S = Phi-2 and
   eCeLLM-L = Llama-2-13B-chat used ``alpaca-ref``, eCeLLM-M = Mistral-7B-Instruct-v0.2 used
   ``mistral-ref``), else ecellm's ``alpaca``.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ecellm.errors import InputError
from ecellm.prompts import TEMPLATES

TRAIN_INFO = "ecellm_train.json"
DEFAULT_TEMPLATE = "alpaca"
# NingLab/eCeLLM-{S,M,L}: the template each was tuned with in the reference training scripts
REFERENCE_CHECKPOINTS = {"s": "alpaca-ref", "m": "mistral-ref", "l": "alpaca-ref"}
_CHECKPOINT = re.compile(r"^ecellm-([sml])(?:$|[-_.])", re.IGNORECASE)


@dataclass(frozen=True)
class TemplateChoice:
    template: str
    source: str  # "explicit", "adapter", "model" or "model default"


def check_template(name: str) -> str:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return name


def _recorded(folder: str | None) -> TemplateChoice | None:
    """The template in ``folder``'s training record, if it has one."""
    if not folder or not Path(folder).is_dir():
        return None
    info = Path(folder) / TRAIN_INFO
    if not info.exists():
        return None
    try:
        value = json.loads(info.read_text(encoding="utf-8")).get("template")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"unreadable training record: {exc}", file=str(info)) from None
    if value not in TEMPLATES:
        raise InputError(f"unknown template {value!r}", file=str(info), field="template")
    kind = "adapter" if (Path(folder) / "adapter_config.json").exists() else "model"
    return TemplateChoice(value, kind)


def checkpoint_template(spec: str | None) -> str | None:
    """The reference template of a NingLab eCeLLM checkpoint named by ``spec`` (hub id, folder or
    GGUF file whose name starts ``eCeLLM-S``/``-M``/``-L``), else None."""
    if not spec:
        return None
    m = _CHECKPOINT.match(Path(str(spec).rstrip("/")).name)
    return REFERENCE_CHECKPOINTS[m.group(1).lower()] if m else None


def model_template(model: str | None, adapter: str | None = None) -> TemplateChoice:
    """The template the model itself calls for (steps 2 and 3 above)."""
    for folder in (adapter, model):
        got = _recorded(folder)
        if got is not None:
            return got
    for spec in (adapter, model):
        ref = checkpoint_template(spec)
        if ref is not None:
            return TemplateChoice(ref, "model default")
    return TemplateChoice(DEFAULT_TEMPLATE, "model default")


def resolve_template(
    model: str | None, adapter: str | None = None, explicit: str | None = None
) -> TemplateChoice:
    """The template to use and its source; an explicit template that differs from a known one
    (recorded in training or a reference checkpoint's) is used, with a warning."""
    own = model_template(model, adapter)
    if not explicit:
        return own
    check_template(explicit)
    known = own.source != "model default" or checkpoint_template(adapter) or checkpoint_template(model)
    if known and explicit != own.template:
        warnings.warn(
            f"template {explicit!r} differs from {own.template!r}, the one this model was tuned with "
            f"({own.source}); its prompts will not match training",
            UserWarning,
            stacklevel=2,
        )
    return TemplateChoice(explicit, "explicit")
