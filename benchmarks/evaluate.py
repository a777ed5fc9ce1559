"""Evaluation speed: 100,000 predictions over the nine non-AG tasks, paper and strict mode.

Side by side with the reference procedure (per-task scikit-learn calls over positionally
aligned lists, as the eCeLLM evaluate script does), re-implemented here for timing only.
Run: ``python3 benchmarks/evaluate.py [--n 100000]``. Target: under 10 s per mode.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from ecellm.data.schema import Sample
from ecellm.evaluate import evaluate
from ecellm.tasks import get_task

TASKS = ["AVE", "PRP", "PM", "SA", "SR", "MPC", "PSI", "QPR", "AP"]


def _make(task: str, i: int, rng: random.Random) -> tuple[Sample, str]:
    """One synthetic sample in the gold format of ``task`` and a noisy prediction for it."""
    t = get_task(task)
    meta: dict = {}
    options = list(t.options)
    if t.answer_kind == "yes_no":
        gold = rng.choice(["yes", "no"])
        pred = rng.choice([gold, gold, "yes", "no", "Yes.", ""])
    elif task == "SR":
        options = [f"{c}: item {c}" for c in "ABCDEFGHIJKLMNOPQRST"]
        gold = rng.choice("ABCDEFGHIJKLMNOPQRST")
        pred = rng.choice([gold, "A", "B", "Z", "A."])
    elif task == "QPR":
        labels = rng.sample("ESCI", rng.randint(2, 4))
        meta["labels"] = labels
        letters = [chr(65 + k) for k in range(len(labels))]
        gold = ",".join(sorted(letters, key=lambda x: "ESCI".index(labels[ord(x) - 65])))
        pred = ",".join(rng.sample(letters, rng.randint(1, len(letters))))
    elif task == "AVE":
        items = [
            {"attribute": f"a{k}", "value": f"v{rng.randint(0, 3)}", "source": "product title"}
            for k in range(2)
        ]
        gold = json.dumps(items)
        pred = rng.choice([gold, json.dumps(items[:1] * 2), "not json", json.dumps([{"attribute": "a0"}])])
    else:
        gold = rng.choice(options)
        pred = rng.choice([gold, gold[0], rng.choice(options), "", "Answer: B"])
    s = Sample(
        id=f"{task}-{i:07d}",
        task=task,
        setting="IND_Diverse_Instruction",
        instruction="i",
        input="x",
        options=options,
        output=gold,
        meta=meta,
    )
    return s, pred


def reference_procedure(samples: list[Sample], preds: dict[str, str]) -> None:
    """The reference's scoring loop shape: sklearn per task on filtered lists."""
    by_task: dict[str, list[Sample]] = {}
    for s in samples:
        by_task.setdefault(s.task, []).append(s)
    for task, group in by_task.items():
        labels = [s.output for s in group]
        texts = [preds[s.id] for s in group]
        if task in ("PM", "PSI", "AP"):
            norm = [p.lower().strip() for p in texts]
            kept = [(g, p) for g, p in zip(labels, norm, strict=True) if p in ("yes", "no")]
            g, p = [a for a, _ in kept], [b for _, b in kept]
            accuracy_score(g, p), precision_score(g, p, pos_label="yes"), recall_score(g, p, pos_label="yes")
            f1_score(g, p, pos_label="yes"), confusion_matrix(g, p).ravel()
        elif task in ("PRP", "SA", "MPC"):
            norm = [p.strip() for p in texts]
            kept = [(g[0], p[0]) for g, p in zip(labels, norm, strict=True) if p and p[0] in "ABCDE"]
            g, p = [a for a, _ in kept], [b for _, b in kept]
            accuracy_score(g, p)
            for fn in (precision_score, recall_score, f1_score):
                fn(g, p, average="macro", zero_division=0)
        elif task == "SR":
            kept = [
                (g, p.strip())
                for g, p in zip(labels, texts, strict=True)
                if len(p.strip()) == 1 and "A" <= p.strip() <= "T"
            ]
            accuracy_score([a for a, _ in kept], [b for _, b in kept])
        else:  # AVE and QPR are plain Python loops in the reference too; score them with ours
            evaluate(group, preds, mode="paper")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    n = ap.parse_args().n
    rng = random.Random(0)
    samples, preds = [], {}
    for i in range(n):
        s, p = _make(TASKS[i % len(TASKS)], i, rng)
        samples.append(s)
        preds[s.id] = p
    t0 = time.perf_counter()
    reference_procedure(samples, preds)
    ref = time.perf_counter() - t0
    print(f"reference procedure (sklearn per task): {ref:.2f} s")
    for mode in ("paper", "strict"):
        t0 = time.perf_counter()
        result = evaluate(samples, preds, mode=mode)
        took = time.perf_counter() - t0
        print(
            f"ecellm evaluate {mode:6s}: {took:.2f} s for {n:,} predictions, {len(result['results'])} groups "
            f"({n / took:,.0f}/s, {ref / took:.2f}x the reference procedure)"
        )


if __name__ == "__main__":
    main()
