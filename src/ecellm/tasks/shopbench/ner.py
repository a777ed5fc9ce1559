"""ShopBench named-entity recognition: the truth is a list of entity strings (micro F1 per task).

Official reading: a Python-literal list of strings when the text is one, otherwise the text
split on commas, stripped, empties dropped. Decoding: free generation (the entities are spans
of the prompt, not a closed set), 100 new tokens.
"""

from __future__ import annotations

import ast
import json

from ecellm.tasks.shopbench.common import GENERATE_BUDGET, shop_task


def read(text: str, official: bool) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError on odd text
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def gold_text(truth: list[str]) -> str:
    """``a, b`` (what a model is asked for); a JSON list when an entity holds a comma."""
    if any("," in t or t != t.strip() for t in truth):
        return json.dumps(truth, ensure_ascii=False)
    return ", ".join(truth)



TASK = shop_task(
    abbr="SB-NER",
    task_type="named_entity_recognition",
    metrics=("micro f1",),
    answer_kind="entities",
    decode="generate",
    max_new_tokens=GENERATE_BUDGET,
    read=read,
    unusable=lambda answer: not answer,
    gold_text=gold_text,
    description="entities joined by commas or a list literal; free generation",
    example=(
        "Extract the brand names mentioned in this query, separated by commas: 'nike "
        "running shoes vs adidas ultraboost'\nOutput: "
    ),
)
