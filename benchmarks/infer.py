"""Inference speed and answer validity: the reference procedure vs ecellm's defaults.

Reference procedure (as the eCeLLM inference script does it): a transformers
``pipeline("text-generation")`` in batches of 2, sampling with temperature 0.15 / top_p 0.95 and
no seed, 100 new tokens for every task, alpaca template, answer = text after ``### Response:``.
ecellm: :class:`ecellm.infer.backends.hf.HFBackend` with its defaults (batch 8, length-sorted, greedy,
per-task budgets, choice scoring for closed answer sets, jump-forward constrained decoding for
QPR/AVE, shared-prefix KV cache, short-query attention and an in-place KV cache for decode steps;
``--dtype``/``--autocast``/``--no-share-prefix`` change those).

Each side loads the model its own way (the reference in fp32 as the reference script does on a
CPU; ecellm with ``--dtype``, default ``auto``: bf16 weights on CPUs with native bf16) and both run
the same samples: ``--n`` test samples stratified by task
(seeded) from the build's IND test split (``--data``), or the committed fixture when no build is
there. Prints samples/s, the speed ratio and invalid-answer rates (strict parsers).

    python3 benchmarks/infer.py --data build/ecinstruct-lite --n 200
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from ecellm.data.loaders import load_samples
from ecellm.data.schema import Sample
from ecellm.infer.backends.hf import HFBackend
from ecellm.infer.predict import make_requests
from ecellm.models.loading import load_model_and_tokenizer
from ecellm.prompts import extract_response, render_prompt
from ecellm.speedups.threads import set_threads
from ecellm.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "samples_mixed.jsonl"


def pick(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """``n`` samples spread evenly over tasks (seeded), sorted by id."""
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.id):
        by_task[s.task].append(s)
    rng = random.Random(seed)
    for group in by_task.values():
        rng.shuffle(group)
    out: list[Sample] = []
    tasks = sorted(by_task)
    i = 0
    while len(out) < n and any(by_task.values()):
        group = by_task[tasks[i % len(tasks)]]
        if group:
            out.append(group.pop())
        i += 1
    return sorted(out, key=lambda s: s.id)


def invalid_counts(samples: list[Sample], texts: dict[str, str]) -> Counter:
    bad: Counter = Counter()
    for s in samples:
        if not get_task(s.task).parse(texts[s.id], s):
            bad[s.task] += 1
    return bad


def run_reference(loaded, samples: list[Sample]) -> tuple[float, dict[str, str]]:
    from transformers import pipeline

    tok = loaded.tokenizer
    tok.padding_side = "left"  # right padding would corrupt batched generation
    pipe = pipeline("text-generation", model=loaded.model, tokenizer=tok)
    prompts = [render_prompt(s, "alpaca") for s in samples]
    t0 = time.perf_counter()
    outs = pipe(
        prompts,
        batch_size=2,
        do_sample=True,
        temperature=0.15,
        top_p=0.95,
        max_new_tokens=100,
        pad_token_id=tok.pad_token_id,
    )
    elapsed = time.perf_counter() - t0
    texts = {s.id: extract_response(o[0]["generated_text"]) for s, o in zip(samples, outs, strict=True)}
    return elapsed, texts


def run_ecellm(loaded, samples: list[Sample], **kw) -> tuple[float, dict[str, str], dict]:
    """ecellm's defaults (``kw`` overrides HFBackend options, e.g. ``autocast="off"``)."""
    backend = HFBackend(loaded, **kw)  # kw["threads"]: the threads chosen once for both sides
    t0 = time.perf_counter()
    reqs = make_requests(backend, samples)
    texts = {c.id: c.text for c in backend.run(reqs)}
    elapsed = time.perf_counter() - t0
    info = {k: backend.describe()[k] for k in ("share_prefix", "autocast", "batch_size")}
    return elapsed, texts, {**info, **backend.prefix_stats}


def figures(samples: list[Sample], seconds: float, invalid: dict[str, int]) -> dict:
    """The JSON figures of one run."""
    return {
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(samples) / seconds, 3),
        "invalid": sum(invalid.values()),
        "invalid_by_task": dict(invalid),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / "build" / "ecinstruct-lite"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument(
        "--dtype", default="auto", help="ecellm's weights: auto (bf16 on CPUs with native bf16) or a dtype"
    )
    ap.add_argument(
        "--autocast", default=None, help="ecellm only: auto (default), bfloat16 or off (fp32 throughout)"
    )
    ap.add_argument("--no-share-prefix", action="store_true", help="ecellm only: no shared-prefix KV cache")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json-out", default=None, help="Also write the figures to this JSON file.")
    args = ap.parse_args()

    data = Path(args.data)
    source = data if data.exists() else FIXTURE
    samples = load_samples(source, settings="IND_Diverse_Instruction", splits="test")
    chosen = pick(samples, args.n, args.seed)
    print(f"{len(chosen)} samples from {source}: {dict(sorted(Counter(s.task for s in chosen).items()))}")
    threads = set_threads()  # same torch threads for both runs
    loaded = load_model_and_tokenizer(args.model, dtype=args.dtype)
    result: dict = {
        "n": len(chosen),
        "data": str(source),
        "model": args.model,
        "dtype": args.dtype,
        "threads": threads,
    }
    kw: dict = {"share_prefix": not args.no_share_prefix, "threads": threads}
    if args.autocast:
        kw["autocast"] = args.autocast
    ours_s, ours, info = run_ecellm(loaded, chosen, **kw)
    bad_ours = invalid_counts(chosen, ours)
    result["ecellm"] = {**figures(chosen, ours_s, bad_ours), "backend": info}
    print(
        f"ecellm:    {len(chosen) / ours_s:8.3f} samples/s ({ours_s:.1f} s), invalid "
        f"{sum(bad_ours.values())}/{len(chosen)} {dict(bad_ours)}; {info}"
    )
    if not args.skip_reference:
        del loaded
        ref_s, ref = run_reference(load_model_and_tokenizer(args.model, dtype="float32"), chosen)
        bad_ref = invalid_counts(chosen, ref)
        result["reference"] = figures(chosen, ref_s, bad_ref)
        result["speedup"] = round(ref_s / ours_s, 2)
        print(
            f"reference: {len(chosen) / ref_s:8.3f} samples/s ({ref_s:.1f} s), invalid "
            f"{sum(bad_ref.values())}/{len(chosen)} {dict(bad_ref)}"
        )
        print(f"speed ratio ecellm/reference: {ref_s / ours_s:.1f}x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
