"""Prepacked bf16 linear layers on CPU (oneDNN), for inference and for a frozen LoRA base.

Why: ``torch.nn.functional.linear`` with bf16 weights on CPU hands oneDNN a plain row-major
weight, which it re-lays out for its kernel on every call. A decode step with a few rows is
bound by reading the weights, and that extra pass over them halved the speed: on SmolLM2-135M's
576x1536 projections (2 threads) a call took 306 us for 16 rows against 164 us with the weight
packed once in oneDNN's layout, and a 2400-row prefill 14.0 ms against 10.6 ms; the outputs were
bit-identical. Packing is what PyTorch's own compiler does for frozen CPU graphs
(``torch.ops.mkldnn._reorder_linear_weight`` / ``_linear_pointwise``); here it is applied
eagerly, for the length of a run, without compiling anything.

:func:`packed_linears` (inference) packs every bf16 ``nn.Linear`` of a CPU model (PEFT's LoRA
layers wrap plain ``nn.Linear`` modules, so adapters work too); its forward is used only without
autograd and for bf16 inputs. :func:`packed_frozen_linears` (training) packs the frozen ones and
their transposes, so the input gradient runs on packed weights too. Both restore the modules
afterwards; anything they do not cover runs the usual ``F.linear`` on the unchanged weight.
Where the oneDNN ops are missing or disagree with ``F.linear`` on a probe, nothing is packed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ecellm.speedups import swapped_forwards

# oneDNN picks its blocked layout for this many rows; the layout chosen for 256 rows was as
# fast as any other at 1-16 rows and the fastest for long prefills.
PACK_ROWS_HINT = 256
_SUPPORTED: bool | None = None


def supported() -> bool:
    """Whether this PyTorch build packs bf16 linear weights correctly (probed once)."""
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = _probe()
    return _SUPPORTED


def _probe() -> bool:
    import torch

    try:
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(48, 32, generator=gen).to(torch.bfloat16)
        b = torch.randn(48, generator=gen).to(torch.bfloat16)
        x = torch.randn(2, 3, 32, generator=gen).to(torch.bfloat16)
        got = packed_linear(x, pack_weight(w), b)
        want = torch.nn.functional.linear(x, w, b)
        return got.shape == want.shape and torch.allclose(got.float(), want.float(), atol=0.05, rtol=0.02)
    except Exception:  # an op missing from this build, or refusing bf16: plain linear it is
        return False


def packed_linear(x: Any, packed: Any, bias: Any) -> Any:
    """``F.linear(x, W, bias)`` with ``W`` given as :func:`pack_weight` made it."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _forward(module: Any, packed: Any) -> Any:
    """A forward for ``module`` that uses ``packed`` when it may (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    def forward(x: Any) -> Any:
        if torch.is_grad_enabled() or x.dtype != torch.bfloat16 or x.device.type != "cpu":
            return F.linear(x, module.weight, module.bias)
        return packed_linear(x, packed, module.bias)

    return forward


def packable(model: Any) -> list[Any]:
    """The layers :func:`packed_linears` would pack (none on an unsupported build)."""
    import torch

    layers = [
        m
        for m in model.modules()
        if type(m) is torch.nn.Linear and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"
    ]
    return layers if layers and supported() else []


def pack_weight(weight: Any) -> Any:
    """``weight`` (out x in, bf16, CPU) in oneDNN's blocked layout, for :func:`packed_linear`."""
    import torch

    return torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS_HINT)


@contextmanager
def _count(swap: AbstractContextManager[list[Any]]) -> Iterator[int]:
    with swap as layers:
        yield len(layers)


def packed_linears(model: Any, store: dict[int, Any] | None = None) -> AbstractContextManager[int]:
    """Inside the block, the bf16 ``nn.Linear`` layers of a CPU ``model`` run on prepacked
    weights; yields how many were packed (0: unsupported build, other device or dtype).

    ``store`` (owned by the caller, e.g. a backend that runs the same model many times) keeps
    the packed weights between blocks, so they are packed once (0.15 s for SmolLM2-135M, seconds
    for a 7B model) rather than at every run; an entry is reused only while its weight is the
    same tensor, unmodified (data pointer and in-place version counter)."""

    def packed(m: Any) -> Any:
        if store is None:
            return pack_weight(m.weight)
        key = (m.weight.data_ptr(), m.weight._version)
        hit = store.get(id(m))
        if hit is None or hit[0] != key:
            hit = store[id(m)] = (key, pack_weight(m.weight))
        return hit[1]

    return _count(swapped_forwards(packable(model), lambda m: _forward(m, packed(m))))


def _frozen_linear_fn() -> Any:
    """An autograd function for a frozen linear layer on packed weights: the forward multiplies by
    the packed weight, the backward by the packed transposed weight (the input's gradient only;
    a frozen layer has no weight gradient)."""
    import torch

    class FrozenPackedLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, packed: Any, packed_t: Any, bias: Any) -> Any:
            ctx.packed_t = packed_t
            return packed_linear(x, packed, bias)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return packed_linear(grad.to(torch.bfloat16), ctx.packed_t, None), None, None, None

    return FrozenPackedLinear


def _training_forward(module: Any, packed: Any, packed_t: Any, fn: Any) -> Any:
    """A forward for a frozen bf16 ``module`` in training: packed under bf16 inputs or CPU bf16
    autocast (which would cast the input to bf16 anyway), ``F.linear`` otherwise."""
    import torch
    import torch.nn.functional as F

    def forward(x: Any) -> Any:
        if x.device.type != "cpu":
            return F.linear(x, module.weight, module.bias)
        if x.dtype != torch.bfloat16:
            if not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
                return F.linear(x, module.weight, module.bias)
            x = x.to(torch.bfloat16)
        if torch.is_grad_enabled() and x.requires_grad:
            return fn.apply(x, packed, packed_t, module.bias)
        return packed_linear(x, packed, module.bias)

    return forward


def pack_for_training(weight: Any) -> tuple[Any, Any]:
    """``weight`` packed for the forward pass and its transpose packed for the input gradient:
    the two copies a frozen layer needs to run forward and backward on packed weights."""
    return pack_weight(weight), pack_weight(weight.t().contiguous())


def packed_frozen_linears(model: Any, exclude: Iterable[Any] = ()) -> AbstractContextManager[int]:
    """Inside the block, the frozen bf16 ``nn.Linear`` layers of a CPU ``model`` (a LoRA base)
    run forward and backward on prepacked weights; yields how many.

    The base stays frozen for the whole block: the packed copies would not see a weight update
    or a LoRA merge, which is why this is a block and not a permanent change. Costs two packed
    copies of those weights in memory (the weight and its transpose). Layers in ``exclude`` (e.g.
    the base layers :mod:`ecellm.speedups.fused_lora` already runs on its own packed copies) are
    left alone."""
    skip = {id(m) for m in exclude}
    layers = [
        m for m in packable(model) if id(m) not in skip and not any(p.requires_grad for p in m.parameters())
    ]
    fn = _frozen_linear_fn()

    return _count(swapped_forwards(layers, lambda m: _training_forward(m, *pack_for_training(m.weight), fn)))
