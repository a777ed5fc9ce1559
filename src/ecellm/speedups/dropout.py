"""Cheaper LoRA dropout on CPU, and the frozen base stored in bf16 under CPU autocast.

Why: profiling a SmolLM2-135M LoRA step on CPU showed a quarter of the time in
``aten::bernoulli_``: PEFT puts an ``nn.Dropout`` in front of every adapted projection (211 per
forward pass for the paper's targets), and PyTorch's CPU Bernoulli sampler draws one random
number per element. :class:`FastDropout` draws 64 random bits per call of the generator and cuts
them into four 16-bit uniforms, one per element, so the mask costs a quarter of the generator
calls. The drop probability is rounded to a multiple of 1/32768 (0.1 becomes 0.100006); the
scaling by ``1 / (1 - p)`` uses that rounded value, so the layer stays unbiased. Masks come from
torch's default generator, so ``seed`` still fixes them.

Under CPU bf16 autocast with an fp32 base, every frozen weight is cast to bf16 again at every
forward pass (autocast caches casts only for weights that require grad) and every activation is
cast before every matmul. :func:`store_frozen_in_bf16` stores the frozen base in bf16 once, as
bf16 LoRA on a GPU does; adapters and their optimizer state stay fp32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LANES = 4  # 16-bit uniforms per 64-bit draw
_SPAN = 1 << 16
_BF16_ONE = 0x3F80  # the bit pattern of 1.0 in bfloat16


class FastDropout(nn.Module):
    """Inverted dropout whose CPU mask costs one 64-bit random draw per four elements.

    On other devices (where Bernoulli sampling is cheap) it is ``F.dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        # drop when a 16-bit uniform falls below this many units (even: see keep_mask)
        self.drop_units = 2 * round(p * _SPAN / 2)
        self.scale = keep_scale(self.drop_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_units == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        keep = keep_mask(x.shape, self.drop_units).to(x.dtype)
        return x * keep.mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.drop_units / _SPAN:.6f}"


def keep_scale(drop_units: int) -> float:
    """The factor ``1 / (1 - p)`` that keeps dropout unbiased, for ``p = drop_units / 65536``."""
    return _SPAN / (_SPAN - drop_units)


def keep_mask(shape: torch.Size | tuple[int, ...], drop_units: int) -> torch.Tensor:
    """A CPU bf16 mask of ``shape``: 0.0 where an element is dropped (probability
    ``drop_units / 65536``, ``drop_units`` even), 1.0 elsewhere. Each 64-bit word of
    :func:`_random_int16` gives four 16-bit uniforms ``u``; an element is dropped when
    ``u < t`` (``t = drop_units - 32768``), computed as the sign of ``u // 2 - t // 2`` (exact
    because ``t`` is even, and free of int16 overflow) and turned into the bits of bf16 1.0 or
    0.0 by integer ops: a comparison would make a bool tensor, whose conversion and
    ``masked_fill`` are several times slower on CPU than these vectorised int16 passes."""
    if drop_units % 2:
        raise ValueError(f"drop_units must be even, got {drop_units}")
    n = math.prod(shape)
    uniform = _random_int16(n).view(shape)  # each lane uniform on [-32768, 32767]; ours to overwrite
    # every pass in place: a fresh output per pass cost several times the arithmetic
    diff = uniform.bitwise_right_shift_(1).sub_((drop_units - _SPAN // 2) >> 1)  # < 0 exactly where dropped
    return diff.bitwise_right_shift_(15).bitwise_not_().bitwise_and_(_BF16_ONE).view(torch.bfloat16)


def _random_int16(n: int) -> torch.Tensor:
    """``n`` uniform int16 values: 64-bit words of numpy's SFC64 generator, seeded by one draw of
    torch's default generator (so ``seed`` still fixes every mask). SFC64 fills a mask 2.6x
    faster than ``torch.randint``, which drew a twentieth of a LoRA step's time."""
    seed = int(torch.randint(0, 1 << 62, (1,)).item())
    words = np.random.SFC64(seed).random_raw((n + _LANES - 1) // _LANES)
    return torch.from_numpy(words.view(np.int16)[:n])


def use_fast_lora_dropout(model: nn.Module) -> int:
    """Replace PEFT's ``lora_dropout`` ``nn.Dropout`` layers by :class:`FastDropout` (same ``p``);
    returns how many were replaced. Dropout has no weights, so saved adapters are unaffected."""
    replaced = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, nn.ModuleDict):
            continue
        for name, layer in list(drops.items()):
            if isinstance(layer, nn.Dropout) and layer.p > 0:
                drops[name] = FastDropout(layer.p)
                replaced += 1
    return replaced


def store_frozen_in_bf16(model: nn.Module) -> int:
    """Cast every frozen floating-point parameter to bf16 in place; returns how many.

    For LoRA under CPU bf16 autocast. The projections would be cast to bf16 at every call anyway;
    storing the embeddings and norms in bf16 too makes the hidden states bf16, which removes an
    fp32 -> bf16 copy in front of every matmul. This is the usual bf16 LoRA recipe on GPUs (and
    what ecellm does there): frozen base in bf16, trainable adapter weights and optimizer state in
    fp32. Parameters that train are left alone.
    """
    cast = 0
    for param in model.parameters():
        if param.requires_grad or param.dtype != torch.float32:
            continue
        param.data = param.data.to(torch.bfloat16)
        cast += 1
    return cast
