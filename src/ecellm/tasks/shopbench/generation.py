"""ShopBench generation: free text scored per record by ROUGE-L, BLEU, jp-BLEU or embeddings.

Official reading: the stripped text (BLEU then uses its first line). Decoding: free
generation, 100 new tokens.
"""

from __future__ import annotations

from ecellm.tasks.shopbench.common import GENERATE_BUDGET, shop_task
from ecellm.tasks.shopbench.metrics import EMBEDDING_METRICS


def read(text: str, official: bool) -> str:
    return text.strip()


def gold_text(truth: str | list[str]) -> str:
    return truth if isinstance(truth, str) else truth[0]



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
    description="free text; the record's metric decides the score",
    example=(
        "Write a one-sentence product title for a 1 litre vacuum-insulated stainless "
        "steel flask that keeps drinks hot for 12 hours.\nOutput: "
    ),
)
