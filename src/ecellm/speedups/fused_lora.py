"""Each LoRA layer of a CPU bf16 run as one autograd function over a packed frozen base.

Why: with the frozen projections on packed weights (:mod:`ecellm.speedups.packed`), a profile of
a SmolLM2-135M LoRA step showed more time around the adapters than in the base projections'
own matmuls. PEFT's ``lora.Linear`` computes ``base(x) + B(A(dropout(x))) * scaling`` as a
dozen separate ops per layer, 211 layers per forward pass: it casts the bf16 input to the
adapter's fp32 dtype (a full copy, which autocast casts back to bf16 before ``A``), applies
dropout in fp32, scales and adds the low-rank product, and autograd records a node for each
step and for each cast of ``A`` and ``B``.

:class:`FusedLoraLinear` computes the same function in one forward and one backward:

* forward: ``y = base(x) + c * ((x * keep) @ A^T) @ B^T`` with the base on packed weights and
  the addition fused into one in-place ``addmm_``. ``keep`` is the dropout mask of
  :func:`ecellm.speedups.dropout.keep_mask` (the distribution of ``lora.fast_dropout``) and
  ``c = scaling / (1 - p)`` folds the dropout's rescaling into the LoRA scaling, so the dropped
  input is an exact masked copy of ``x`` rather than a rounded bf16 product;
* backward: ``dx = base^T(g) + keep * (c * g @ B) @ A`` on the packed transposed weight,
  ``dA = (c * g @ B)^T @ (x * keep)`` and ``dB = c * g^T @ (x * keep) @ A^T``, with the matmuls in
  bf16 and the adapter gradients returned in fp32, as autocast does for PEFT's layer.

The adapters' weights, their fp32 optimizer state and the saved adapter are unchanged; only the
arithmetic of one step is regrouped, so losses and gradients agree with PEFT's layer to bf16
rounding (a test checks it). Layers this does not cover (merged or disabled adapters, several
adapters, DoRA and other variants, ``torch.nn.Dropout`` when ``fast_dropout`` is off, GPUs,
fp32 runs) keep PEFT's forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ecellm.speedups import swapped_forwards
from ecellm.speedups.dropout import FastDropout, keep_mask, keep_scale
from ecellm.speedups.packed import pack_for_training, packable, packed_linear


class FusedLoraLinear(torch.autograd.Function):
    """``base(x) + coef * ((x * keep) @ A^T) @ B^T`` in one node (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight_a: torch.Tensor,
        weight_b: torch.Tensor,
        packed: torch.Tensor,
        packed_t: torch.Tensor,
        bias: torch.Tensor | None,
        coef: float,
        drop_units: int,
    ) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        a = weight_a.to(torch.bfloat16)
        b = weight_b.to(torch.bfloat16)
        keep = keep_mask(rows.shape, drop_units) if drop_units else None
        kept = rows * keep if keep is not None else rows
        low = kept @ a.t()
        out = packed_linear(rows, packed, bias).addmm_(low, b.t(), alpha=coef)  # in place: no second output
        ctx.save_for_backward(kept, low, a, b, keep)
        ctx.packed_t, ctx.coef, ctx.in_shape = packed_t, coef, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        kept, low, a, b, keep = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(torch.bfloat16)
        g_low = (g @ b).mul_(ctx.coef)  # rows x r: the gradient reaching the rank-r activations
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            lora_x = g_low @ a
            grad_x = packed_linear(g, ctx.packed_t, None)
            # keep * lora added in one pass (addcmul_) rather than a masked copy, then a sum
            grad_x = grad_x.addcmul_(lora_x, keep) if keep is not None else grad_x.add_(lora_x)
            grad_x = grad_x.view(ctx.in_shape)
        if ctx.needs_input_grad[1]:
            grad_a = (g_low.t() @ kept).float()
        if ctx.needs_input_grad[2]:
            grad_b = (g.t() @ low).mul_(ctx.coef).float()
        return grad_x, grad_a, grad_b, None, None, None, None, None


def _lora_linear_type() -> type | None:
    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:  # peft is a training dependency; without it there is nothing to fuse
        return None
    return Linear


def _dropout_units(layer: Any, name: str) -> int | None:
    """The fused mask's drop units for ``layer``'s dropout, or None when it is not fast dropout."""
    drop = layer.lora_dropout[name]
    if isinstance(drop, FastDropout):
        return drop.drop_units
    if isinstance(drop, nn.Identity) or (isinstance(drop, nn.Dropout) and drop.p == 0):
        return 0
    return None  # torch's Bernoulli dropout: keep PEFT's forward so its exact distribution holds


def fusable(model: nn.Module) -> list[Any]:
    """PEFT LoRA linear layers this module can fuse: one plain LoRA adapter over a frozen bf16
    CPU ``nn.Linear`` that :mod:`ecellm.speedups.packed` can pack, with fast dropout or none."""
    lora_linear = _lora_linear_type()
    if lora_linear is None:
        return []
    base_ok = {id(m) for m in packable(model)}
    layers = []
    for m in model.modules():
        if not isinstance(m, lora_linear) or id(m.base_layer) not in base_ok:
            continue
        if any(p.requires_grad for p in m.base_layer.parameters()) or len(m.lora_A) != 1:
            continue
        (name,) = m.lora_A.keys()
        if name in getattr(m, "lora_variant", {}) or m.use_dora.get(name, False):
            continue
        if _dropout_units(m, name) is None or m.lora_bias.get(name, False):
            continue
        layers.append(m)
    return layers


def _fused_forward(layer: Any, packed: torch.Tensor, packed_t: torch.Tensor) -> Any:
    """The fused forward of ``layer``, falling back to PEFT's own where it does not apply."""
    (name,) = layer.lora_A.keys()
    peft_forward = type(layer).forward

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if (
            args
            or kwargs
            or layer.disable_adapters
            or layer.merged
            or list(layer.active_adapters) != [name]
            or x.device.type != "cpu"
        ):
            return peft_forward(layer, x, *args, **kwargs)
        if x.dtype != torch.bfloat16:
            if not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
                return peft_forward(layer, x, *args, **kwargs)
            x = x.to(torch.bfloat16)
        units = _dropout_units(layer, name) if layer.training else 0
        coef = layer.scaling[name] * keep_scale(units)
        base = layer.base_layer
        return FusedLoraLinear.apply(
            x, layer.lora_A[name].weight, layer.lora_B[name].weight, packed, packed_t, base.bias, coef, units
        )

    return forward


@contextmanager
def fused_lora_linears(model: nn.Module) -> Iterator[list[Any]]:
    """Inside the block, every :func:`fusable` LoRA layer of ``model`` runs as one
    :class:`FusedLoraLinear`; yields their base layers (already packed, so
    :func:`ecellm.speedups.packed.packed_frozen_linears` can skip them).

    A block, not a permanent change, because the packed copies would not follow a change of the
    frozen weights (a LoRA merge); it costs two packed copies of each base weight."""
    make = lambda m: _fused_forward(m, *pack_for_training(m.base_layer.weight))  # noqa: E731
    with swapped_forwards(fusable(model), make) as layers:  # PEFT's forward comes back after
        yield [m.base_layer for m in layers]
