"""Choice scores from a 16-bit model, with the output projection computed in fp32.

Why: a bf16 (or fp16) model, or an fp32 one under bf16 autocast, rounds its logits to 16 bits.
bf16 keeps 8 significant bits, so a logit near 20 is stored in steps of 0.125: the margin
``log p(yes) - log p(no)`` that choice scoring compares takes a handful of values, and many
samples tie exactly. Measured on the demo's tuned SmolLM2-135M in bf16 (2026-12-04): 6 of 12 PSI
test samples had tied scores and the 24 PSI validation samples only 6 distinct margins, so the
answer of a tie was decided by choice order, and the answer offsets fitted on validation, the
threshold-free AUC and every comparison built on them were coarsened. The fix is cheap: the
head runs only on the kept positions (one per prompt for single-token answers), so recomputing it
in fp32 from the same 16-bit hidden state costs one small matmul per batch and leaves the rest of
the forward pass, where 16 bits are harmless, as it was.

How: a forward hook on the model's output embeddings (the PyTorch extension point, not a patched
forward) replaces the head's output by ``hidden.float() @ weight.float().T`` (+ bias), plus the
active LoRA adapters of a PEFT-wrapped head in fp32. fp32 models outside autocast are left alone,
so their scores are bit-identical to before. A head this module does not know how to recompute
(e.g. DoRA) keeps its own output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _lora_parts(module: Any) -> list[tuple[Any, Any, float]] | None:
    """``(A, B, scaling)`` of each active, unmerged LoRA adapter of ``module``; ``[]`` for a plain
    layer; ``None`` when the layer has adapter features this module does not recompute."""
    if not hasattr(module, "lora_A"):
        return []
    if getattr(module, "merged", False) or getattr(module, "disable_adapters", False):
        return []
    parts = []
    for name in getattr(module, "active_adapters", []):
        if name not in module.lora_A:
            continue
        if getattr(module, "use_dora", {}).get(name, False):
            return None
        parts.append((module.lora_A[name].weight, module.lora_B[name].weight, float(module.scaling[name])))
    return parts


def head_logits_fp32(module: Any, hidden: Any) -> Any | None:
    """The output of head ``module`` for ``hidden`` computed in fp32, or ``None`` if unknown."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    base = getattr(module, "base_layer", module)
    weight = getattr(base, "weight", None)
    parts = _lora_parts(module)
    if weight is None or parts is None:
        return None
    bias = getattr(base, "bias", None)
    with torch.autocast(hidden.device.type, enabled=False):
        x = hidden.float()
        out = F.linear(x, weight.float(), None if bias is None else bias.float())
        for a, b, scale in parts:
            out = out + F.linear(F.linear(x, a.float()), b.float()) * scale
    return out


def _needs_fp32(head: Any) -> bool:
    """Whether ``head``'s output would be 16-bit: 16-bit weights, or autocast on their device."""
    import torch

    weight = getattr(getattr(head, "base_layer", head), "weight", None)
    if weight is None:
        return False
    return weight.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled(weight.device.type)


@contextmanager
def fp32_head(model: Any) -> Iterator[bool]:
    """Inside the block, ``model``'s logits come from an fp32 head when they would otherwise be
    16-bit; yields whether the hook is on."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if head is None or not _needs_fp32(head):
        yield False
        return

    def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
        if not args:
            return output
        exact = head_logits_fp32(module, args[0])
        return output if exact is None else exact

    handle = head.register_forward_hook(hook)
    try:
        yield True
    finally:
        handle.remove()
