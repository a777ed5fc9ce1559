"""ShopBench generation: free text scored per record by ROUGE-L, BLEU, jp-BLEU or embeddings.

Official reading: the stripped text (BLEU then uses its first line). Decoding: free
generation, 100 new tokens.
"""

from __future__ import annotations

from typing import Any

from ecellm.infer.base import Request
from ecellm.tasks.shopbench.common import GENERATE_BUDGET, render, shop_task
from ecellm.tasks.shopbench.metrics import EMBEDDING_METRICS


def read(text: str, official: bool) -> str:
    return text.strip()


def gold_text(truth: str | list[str]) -> str:
    return truth if isinstance(truth, str) else truth[0]


def request(task: Any, sample: Any, *, mode: str, template: str, tokenizer: Any) -> Any:
    prompt = render(sample, tokenizer, template)
    return Request(sample.id, prompt, mode="generate", max_new_tokens=task.max_new_tokens, task=task.abbr)


TASK = shop_task(
    abbr="SB-GEN",
    task_type="generation",
    metrics=("rougel", "bleu", "jp-bleu", *EMBEDDING_METRICS),
    answer_kind="text",
    decode="generate",
    max_new_tokens=GENERATE_BUDGET,
    read=read,
    unusable=lambda answer: not answer,
    gold_text=gold_text,
    request=request,
    description="free text; the record's metric decides the score",
)
