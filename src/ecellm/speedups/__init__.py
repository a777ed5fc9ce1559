"""CPU speed-ups, all in this package, each an opt-in context around the plain path.

- :mod:`~ecellm.speedups.packed`: bf16 linear layers on oneDNN-prepacked weights (inference and
  the frozen base in training);
- :mod:`~ecellm.speedups.attention`: grouped-query attention for short queries against a long
  KV cache (decode steps, jump-forward chunks);
- :mod:`~ecellm.speedups.train_attention`: eager training attention as one autograd function
  over grouped query heads;
- :mod:`~ecellm.speedups.cross_entropy`: the answer tokens' cross-entropy a block of rows at a
  time, without full-size fp32 copies of their logits;
- :mod:`~ecellm.speedups.kvcache`: a KV cache that grows in place instead of concatenating;
- :mod:`~ecellm.speedups.fused_lora`: each LoRA linear layer as one autograd function;
- :mod:`~ecellm.speedups.dropout`: LoRA dropout masks from 16-bit uniforms;
- :mod:`~ecellm.speedups.threads`: torch threads = the cores other processes leave idle.

Why one switch: a speed-up that changes results is a bug, and the way to show it is to run the
same thing without any of them. ``ECELLM_SPEEDUPS=0`` (or ``off``/``false``/``no``) turns every
one off, whatever any config says; the ``speedups: false`` key of a training recipe, or the
``speedups=False`` option of the hf backend, turns them off for that run. Each speed-up asks
:func:`enabled` when its context is entered and, when off, leaves the plain path untouched.
Layers whose forward is replaced go through the one helper :func:`swapped_forwards`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

ENV = "ECELLM_SPEEDUPS"
_OFF = ("0", "off", "false", "no")
_SCOPE: ContextVar[bool | None] = ContextVar("ecellm_speedups", default=None)


def enabled(setting: bool | None = None) -> bool:
    """Whether speed-ups apply: never when ``$ECELLM_SPEEDUPS`` says off; else ``setting`` (a
    config key) when given; else the innermost :func:`scope`; else on."""
    if os.environ.get(ENV, "").strip().lower() in _OFF:
        return False
    if setting is not None:
        return bool(setting)
    scoped = _SCOPE.get()
    return True if scoped is None else scoped


@contextmanager
def scope(setting: bool | None) -> Iterator[bool]:
    """Inside the block, :func:`enabled` answers for ``setting`` (a run's config key), so speed-ups
    entered deep inside a run (the KV cache of a decode loop) follow the run's choice."""
    on = enabled(setting)
    token = _SCOPE.set(on)
    try:
        yield on
    finally:
        try:
            _SCOPE.reset(token)
        except ValueError:  # closed from another context (a generator finished elsewhere)
            _SCOPE.set(None)


@contextmanager
def swapped_forwards(layers: Sequence[Any], make: Callable[[Any], Any]) -> Iterator[list[Any]]:
    """Give each layer the forward ``make(layer)`` inside the block (an instance attribute, so the
    class's forward comes back when it is removed); yields the layers. Nothing is swapped when
    speed-ups are off."""
    import torch

    layers = list(layers) if enabled() else []
    done: list[Any] = []
    try:
        with torch.no_grad():
            for m in layers:
                m.forward = make(m)
                done.append(m)
        yield done
    finally:
        for m in done:
            m.__dict__.pop("forward", None)


def register_attention(name: str, forward: Callable[..., Any], masks_like: str) -> str:
    """Register ``forward`` with transformers as attention implementation ``name`` (idempotent),
    with the mask builder of its built-in implementation ``masks_like`` (``sdpa``, ``eager``)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if name not in AttentionMaskInterface._global_mapping:
        AttentionInterface.register(name, forward)
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[masks_like])
    return name
