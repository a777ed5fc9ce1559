"""The answer tokens' cross-entropy on CPU without full-size fp32 copies of their logits.

Why: the plain loss is ``F.cross_entropy(logits.float(), targets)``. For a micro-batch's few
hundred answer tokens over a 49k vocabulary that writes the logits again in fp32, then their
fp32 log-softmax; the backward pass writes a zero-filled fp32 gradient, the log-softmax's fp32
gradient and a bf16 copy of it. Each is a fresh allocation of tens of megabytes, and on the
2-core CPU (where first-touching fresh memory is slow) those passes cost more than the output
head's matmul.

:class:`TargetCrossEntropy` gives the same sum with the same fp32 arithmetic one block of rows
at a time, so only a block is ever in fp32: the forward pass keeps each row's log-sum-exp, the
backward pass writes ``softmax - onehot`` (times the incoming gradient) straight into a
gradient in the logits' dtype, the rounding the plain path's final cast makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ecellm.speedups import enabled

BLOCK_BYTES = 1 << 21  # bytes of one fp32 block of rows: about the size of a core's L2 cache


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits.float(), targets, reduction="sum")`` for (rows, vocab) logits and
    (rows,) targets, none of them ignored; blockwise on CPU when speed-ups are on."""
    if logits.device.type != "cpu" or logits.dim() != 2 or not enabled():
        return F.cross_entropy(logits.float(), targets, reduction="sum")
    return TargetCrossEntropy.apply(logits, targets)


def _fp32_blocks(logits: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, fp32 copy of the rows) for consecutive blocks of ``logits``, every block in the
    same buffer (reused: first-touching fresh memory is what the blocks avoid)."""
    rows, vocab = logits.shape
    step = max(1, BLOCK_BYTES // (4 * max(vocab, 1)))
    buffer = torch.empty(min(step, rows), vocab, dtype=torch.float32)
    for a in range(0, rows, step):
        n = min(step, rows - a)
        yield a, buffer[:n].copy_(logits[a : a + n])


class TargetCrossEntropy(torch.autograd.Function):
    """Summed token cross-entropy of ``logits`` (rows, vocab) at ``targets`` (rows,), in fp32."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        lse = torch.empty(logits.shape[0], dtype=torch.float32)
        for a, block in _fp32_blocks(logits):
            torch.logsumexp(block, dim=-1, out=lse[a : a + len(block)])
        picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1).float()
        ctx.save_for_backward(logits, targets, lse)
        return (lse - picked).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        logits, targets, lse = ctx.saved_tensors
        out = torch.empty_like(logits)
        g = grad.float()
        minus_one = torch.full((logits.shape[0], 1), -1.0)
        for a, block in _fp32_blocks(logits):
            rows = slice(a, a + len(block))
            probs = block.sub_(lse[rows, None]).exp_()  # softmax, from the forward's log-sum-exp
            probs.scatter_add_(1, targets[rows, None], minus_one[rows])
            out[rows].copy_(probs.mul_(g))
        return out, None
