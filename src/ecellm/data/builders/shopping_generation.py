"""Shopping generation: answer a product question from its evidence (ROUGE-L, sentence similarity).

Source: the product-QA evidence of PQA, read exactly as the ECInstruct AG builder reads it
(hetPQA: rows sharing an ASIN and question, their evidence de-duplicated, the first written
answer; ePQA: one answering candidate with its written answer plus other candidates of the
question). The prompt lists the evidence as bullets (no numbers, so a reader of hidden-format
records does not take it for a multiple-choice question) and the truth is the written answer.

Metric: each record carries one metric, as in the benchmark; records alternate between
``rougel`` and ``sent-transformer`` in a seeded order, so the task is scored by both (the task
score is the mean over its records; the scorer also reports each metric's own mean).
Products (ASINs) are partitioned into splits; a val/test question that also occurs in train is
dropped by the family's leakage check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecellm.data.builders import ag
from ecellm.data.builders.ap import EPQA
from ecellm.data.builders.shopping_common import TRACK_REASONING, ShopItem, ShopResult, partition, record
from ecellm.data.splits import SPLIT_NAMES, rng, take

TASK_NAME = "product-question-answering"
METRICS = ("rougel", "sent-transformer")
PROSE_TASKS = (TASK_NAME,)
DEFAULTS: dict[str, Any] = {
    "sources": ["hetpqa", "epqa"],
    "doc_size": 5,
    "max_snippet_words": 60,
    "min_answer_words": 2,
    "sizes": {"train": 2000, "val": 200, "test": 500},
}


def prompt(question: str, evidence: list[str]) -> str:
    bullets = "\n".join(f"- {e}" for e in evidence)
    return (
        "You are a helpful shopping assistant. Answer the customer's question about a product in "
        "one or two sentences, using only the evidence below.\n"
        f"Question: {question}\nEvidence:\n{bullets}\nAnswer: "
    )


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> ShopResult:
    raw_dir = Path(raw_dir)
    result = ShopResult(family="generation", items={})
    dropped = {"hetpqa without question, evidence or answer": 0, "epqa question without a written answer": 0}
    found: list[tuple[str, str, Any]] = []
    if "hetpqa" in config["sources"]:
        result.sources.extend(raw_dir / p for p in ag.HETPQA if (raw_dir / p).exists())
        found.extend(ag._hetpqa(raw_dir, config, dropped))
    if "epqa" in config["sources"] and (raw_dir / EPQA).exists():
        result.sources.append(raw_dir / EPQA)
        found.extend(ag._epqa(raw_dir / EPQA, config, seed, dropped))
    result.dropped.update(dropped)
    split_of = partition(sorted({asin for asin, _, _ in found}), config, seed, "pqa-products")
    out: dict[str, list[ShopItem]] = {}
    for split in SPLIT_NAMES:
        items = []
        for asin, _, draft in found:
            if split_of[asin] != split:
                continue
            doc = json.loads(draft.input)
            question, evidence = doc["question"], doc["document"][: int(config["doc_size"])]
            items.append((question, evidence, draft.output, asin))
        # drawn here (not after quality control) so the metric alternation covers what is kept
        items = take(items, (config.get("sizes") or {}).get(split), rng(seed, "shopping", TASK_NAME, split))
        order = [METRICS[i % len(METRICS)] for i in range(len(items))]
        rng(seed, "shopping", TASK_NAME, "metrics", split).shuffle(order)
        out[split] = [
            ShopItem(
                record=record(
                    prompt=prompt(q, ev),
                    truth=answer,
                    task_type="generation",
                    metric=metric,
                    task_name=TASK_NAME,
                    track=TRACK_REASONING,
                ),
                fields={"question": q, "evidence": ev},
                gold=answer,
                leak_key=q,
                label=metric,
                products=(asin,),
                queries=(q,),
            )
            for (q, ev, answer, asin), metric in zip(items, order, strict=True)
        ]
    result.items[TASK_NAME] = out
    result.limits[TASK_NAME] = {"sizes": {}, "balance": False}
    return result
