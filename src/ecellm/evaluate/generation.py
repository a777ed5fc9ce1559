"""AG scoring: BERTScore P/R/F1 (+ BLEURT when installed) in paper and strict mode.

Paper: BERTScore on the full texts, BLEURT on texts cut to 300 words, BLEURT failures left
out of its mean. Whatever keeps a paper-mode result from being the reference's measurement (a
BERTScore model other than roberta-large, BLEURT not run) is listed under ``paper_deviations``
in its metrics, so a fallback is never silent. Strict: every metric on the same (cut) texts,
failures and empty answers scored 0 and kept in every mean.

Model output is made safe first: lone surrogates become U+FFFD (tokenizers cannot encode them)
and texts are cut to :data:`MAX_WORDS` words and :data:`MAX_CHARS` characters. BERTScore reads
at most 512 tokens and every kept word is at least one token, so the cut changes no score
except for texts whose first 4,096 words hold fewer than 512 tokens; it keeps a 1 MB answer
from costing seconds in the (slow, pure-Python) tokenizer bert-score uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ecellm.evaluate.bertscore import BertScoreModel, bertscore, bleurt, cut_words
from ecellm.evaluate.metrics import mean
from ecellm.tasks.parsing import valid_unicode

MAX_WORDS = 4096
MAX_CHARS = 16_384


def bounded(text: str) -> str:
    """``text`` without lone surrogates, cut to ``MAX_WORDS`` words and ``MAX_CHARS`` characters."""
    text = valid_unicode(text[:MAX_CHARS])
    return cut_words(text, MAX_WORDS)


def generation_scorer(
    gold: Sequence[str], preds: Sequence[str], *, mode: str, model: BertScoreModel, use_bleurt: bool = True
) -> Callable[[Sequence[int]], dict[str, Any]]:
    """Score every pair once, return ``subset -> {"metrics", "invalid"}`` over any index list.

    BERTScore and BLEURT are per-pair scores averaged over samples, so a bootstrap resample only
    re-averages them instead of running the encoder again.
    """
    gold = [bounded(g).strip() for g in gold]
    preds = [bounded(p).strip() for p in preds]
    cut_g = [cut_words(g) for g in gold]
    cut_p = [cut_words(p) for p in preds]
    bs = bertscore(cut_p, cut_g, model) if mode == "strict" else bertscore(preds, gold, model)
    bl = bleurt(cut_p, cut_g) if use_bleurt else None

    def score(idx: Sequence[int]) -> dict[str, Any]:
        metrics: dict[str, Any] = {f"bertscore_{k}": mean([v[i] for i in idx]) for k, v in bs.items()}
        metrics["bertscore_model"] = model.name
        if model.fallback:
            metrics["bertscore_fallback"] = model.fallback
        if bl is not None:
            if "skipped" in bl:
                metrics["bleurt"] = None
                metrics["bleurt_skipped"] = bl["skipped"]
            else:
                scores = [bl["scores"][i] for i in idx]
                if mode == "strict":
                    kept = [
                        s if (s is not None and preds[i]) else 0.0 for s, i in zip(scores, idx, strict=True)
                    ]
                else:
                    kept = [s for s in scores if s is not None]
                metrics["bleurt"] = mean(kept)
                metrics["bleurt_failures"] = sum(s is None for s in scores)
        if mode == "paper":
            deviations = paper_deviations(model, bl)
            if deviations:
                metrics["paper_deviations"] = deviations
        return {"metrics": metrics, "invalid": sum(not preds[i] for i in idx)}

    return score


def paper_deviations(model: BertScoreModel, bleurt_result: dict[str, Any] | None) -> list[str]:
    """Why a paper-mode AG score is not the reference's measurement (empty: it is)."""
    out = []
    if not model.is_paper_model:
        why = model.fallback or "chosen with --bertscore-model"
        out.append(f"BERTScore with {model.name} instead of roberta-large ({why})")
    if bleurt_result is not None and "skipped" in bleurt_result:
        out.append(f"BLEURT not computed ({bleurt_result['skipped']})")
    return out


def score_generation(
    gold: Sequence[str], preds: Sequence[str], *, mode: str, model: BertScoreModel, use_bleurt: bool = True
) -> dict[str, Any]:
    """Mean BERTScore precision/recall/F1 over all samples, plus BLEURT if available."""
    return generation_scorer(gold, preds, mode=mode, model=model, use_bleurt=use_bleurt)(range(len(gold)))
