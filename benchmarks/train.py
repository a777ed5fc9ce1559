"""Training throughput: the reference recipe against ecellm's default, same data and LoRA config.

Reference recipe (eCeLLM's finetune script): micro-batch 1 with gradient accumulation, no packing,
logits over every position, fp32, PEFT's own dropout and transformers' default (SDPA) attention.
ecellm's CPU default (configs/smollm2-135m-lora.yaml): length-grouped micro-batches of 4,
vocabulary logits only at answer tokens, bf16 autocast over a frozen base stored in bf16 (adapters
fp32, linear layers on oneDNN-packed weights, each LoRA layer one fused autograd function) on CPUs
with native bf16 and fp32 elsewhere (``--precision``), LoRA dropout masks from 16-bit uniforms,
eager attention as one autograd function over grouped query heads, the answer tokens'
cross-entropy a block of rows at a time. ``--ours packed`` measures padding-free
packing instead. Both train one epoch over the same seeded 300 training samples of an
ECInstruct-lite build, with the same LoRA settings,
each in its own process so peak memory (max RSS) is measured separately.

    python3 benchmarks/train.py [--data BUILD_DIR] [--samples 300] [--repeats 3]

Prints trained (non-pad) tokens/s and peak RSS for both and the speed ratio. With ``--repeats N``
the runs alternate (reference, ecellm, reference, ecellm, ...) and each pair's ratio is printed
with the median and the lowest: on a shared machine whose speed drifts by tens of percent between
minutes, a ratio of neighbouring runs is what one run pair can show, and the lowest pair is the
margin a claim can rest on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ecellm.models.loading import cpu_has_native_bf16

CHILD = r"""
import json, resource, sys, time
from ecellm.train.run import train
cfg = json.loads(sys.argv[1])
out = train(cfg)
info = json.loads((out / "ecellm_train.json").read_text())["stats"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"tokens": info["tokens_rank0"], "seconds": info["train_seconds"],
                              "steps": info["global_step"], "peak_rss_mb": peak}))
"""

LORA = {"r": 16, "alpha": 16, "dropout": 0.1, "target_modules": "auto", "lm_head": True}


def recipes(
    data: str, n: int, work: Path, ours: str = "grouped", also_fp32: bool = False, precision: str = "auto"
) -> dict[str, dict]:
    # bf16 autocast only where the CPU runs bf16 natively: elsewhere it is emulated and slower
    # than fp32, so ecellm's CPU default there is fp32 (the reference is fp32 either way)
    ours_precision = ("bf16" if cpu_has_native_bf16() else "fp32") if precision == "auto" else precision
    extras = ", packed + fused LoRA" if ours_precision == "bf16" else ", fast dropout"
    common = {
        "model": "smollm2-135m",
        "lora": LORA,
        "cutoff_len": 512,
        "epochs": 1,
        "learning_rate": 1e-4,
        "seed": 42,
        "logging_steps": 50,
        "save_total_limit": 1,
        "overwrite": True,  # --repeats trains into the same folders again
        "data": {"train": data, "max_train_samples": n, "validate": False},
    }
    runs = {
        "reference (micro-batch 1 x 16 accumulation, no packing)": {
            **common,
            "output_dir": str(work / "ref"),
            "batching": "padded",
            "micro_batch_size": 1,
            "gradient_accumulation_steps": 16,
            "target_only_logits": False,
            "precision": "fp32",
            "attn_implementation": "sdpa",
            "packed_weights": False,  # no-ops in fp32, stated for clarity
            "fused_lora": False,
            "lora": {**LORA, "fast_dropout": False},
        },
        f"ecellm ({ours} micro-batches of 4 x 4, answer-only logits, {ours_precision}{extras}, eager)": {
            **common,
            "output_dir": str(work / "ours"),
            "batching": ours,
            "micro_batch_size": 4,
            "gradient_accumulation_steps": 4,
            "target_only_logits": True,
            "precision": ours_precision,
        },
    }
    if also_fp32 and ours_precision != "fp32":  # separates the batching gain from the precision gain
        runs[f"ecellm ({ours} micro-batches of 4 x 4, answer-only logits, fp32, fast dropout, eager)"] = {
            **common,
            "output_dir": str(work / "ours-fp32"),
            "batching": ours,
            "micro_batch_size": 4,
            "gradient_accumulation_steps": 4,
            "target_only_logits": True,
            "precision": "fp32",
        }
    return runs


def default_data(work: Path) -> str:
    from ecellm.data.pipeline import build_dataset

    raw = Path(
        os.environ.get("ECELLM_RAW_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "raw")
    )
    if not (raw / "README.md").exists():
        sys.exit(f"raw data not found at {raw}: set ECELLM_RAW_DIR or pass --data BUILD_DIR")
    build_dataset(raw, work / "build")
    return str(work / "build")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="ECInstruct build folder (default: build ECInstruct-lite from raw data)")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--ours", choices=["grouped", "packed"], default="grouped", help="ecellm batching")
    ap.add_argument("--also-fp32", action="store_true", help="add ecellm's batching in fp32 as a third run")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the runs this many times")
    ap.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="ecellm's precision (auto: bf16 on CPUs with native bf16, else fp32)",
    )
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="ecellm-bench-train-") as tmp:
        work = Path(tmp)
        data = args.data or default_data(work)
        runs = recipes(data, args.samples, work, args.ours, args.also_fp32, args.precision)
        results: dict[str, list[dict]] = {name: [] for name in runs}
        for rep in range(args.repeats):
            for name, cfg in runs.items():
                r = run_once(name, cfg, env)
                results[name].append(r)
                print(
                    f"{name} [run {rep + 1}]: {r['tokens']} tokens in {r['seconds']:.1f} s over {r['steps']} "
                    f"optimizer steps = {r['tokens_per_s']:.1f} tokens/s, peak RSS {r['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    ref = next(iter(results.values()))
    for name, ours in list(results.items())[1:]:
        ratios = [o["tokens_per_s"] / r["tokens_per_s"] for o, r in zip(ours, ref, strict=True)]
        memory = max(o["peak_rss_mb"] for o in ours) / max(r["peak_rss_mb"] for r in ref)
        pairs = ", ".join(f"{x:.2f}x" for x in ratios)
        summary = f"median {statistics.median(ratios):.2f}x, lowest {min(ratios):.2f}x"
        summary += f" over {len(ratios)} pairs ({pairs})"
        print(f"{name} / reference: speed {summary if len(ratios) > 1 else pairs}, peak memory {memory:.2f}x")


def run_once(name: str, cfg: dict, env: dict) -> dict:
    """One training run in its own process (so its peak RSS is its own); its throughput record."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, env=env
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(line[7:])
    r["tokens_per_s"] = r["tokens"] / r["seconds"]
    return r


if __name__ == "__main__":
    main()
