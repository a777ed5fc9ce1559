"""How close a prefill forward pass runs to the CPU's matmul peak, per core.

Why: on a CPU without native bf16, ecellm's inference runs fp32, and most of its time is prompt
prefill. If a prefill pass already runs at the speed of a plain fp32 matrix multiply, no kernel
change can make it faster; only fewer prompt tokens can. Both figures are measured in process
CPU time on one thread, so they hold on a busy machine too.

    python3 benchmarks/prefill_peak.py [--rows 4 --tokens 256]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from ecellm.models.loading import load_model_and_tokenizer


def cpu_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """The best process CPU time of ``repeats`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    a, w = torch.randn(1024, 576), torch.randn(1536, 576)
    t = cpu_seconds(lambda: torch.nn.functional.linear(a, w))
    print(f"fp32 matmul 1024x576 @ 576x1536: {2 * 1024 * 576 * 1536 / t / 1e9:.1f} GFLOP/s per core")
    model = load_model_and_tokenizer(args.model, dtype="float32").model.eval()
    # matmul FLOPs per token: 2 per weight of the decoder layers (embeddings are a lookup)
    per_token = 2 * sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and p.dim() == 2)
    ids = torch.randint(100, 40000, (args.rows, args.tokens))
    with torch.no_grad():
        t = cpu_seconds(lambda: model(input_ids=ids, logits_to_keep=1), 2)
    n = args.rows * args.tokens
    print(
        f"prefill {args.rows} x {args.tokens} tokens: {n / t:.0f} tokens/s per core, "
        f"{n * per_token / t / 1e9:.1f} GFLOP/s in the layers' matmuls"
    )


if __name__ == "__main__":
    main()
