"""Eager attention for training on CPU, as one autograd function over grouped query heads.

Why: transformers' eager attention (ecellm's CPU training default, see
``ecellm.train.model._attention``) builds the score matrix in several full passes, and each
pass allocates a fresh (batch, heads, T, T) tensor: key/value heads copied once per query head
of their group, the scores scaled, the mask added, a softmax written in fp32 and cast back to
bf16, and autograd keeps the fp32 probabilities for its backward pass as well as the bf16 ones.
On a 2-core CPU those passes took more time than the attention's matmuls.

:class:`GroupedAttention` computes the same function with each key/value head serving its group
of query heads directly (the group's queries stacked along the query axis, no copies), the
scaling and the mask applied in place, the softmax read and written in the activations' dtype
(PyTorch's CPU kernel accumulates bf16 in fp32, so the probabilities equal eager's fp32 softmax
rounded to bf16), and only the bf16 probabilities kept. The backward pass is the usual
``dV = P^T dO``, ``dS = softmax'(P, dO V^T) * scale``, ``dQ = dS K``, ``dK = dS^T Q``; the
gradients agree with eager's to bf16 rounding (a test checks it).

A model is switched only when every modeling file its layers come from defines the standard
eager function (the same code as Llama's: Mistral, Qwen, Phi-3, Gemma, OLMo-2 and others; not
T5, GPT-NeoX or Gemma-2, whose eager attention adds a position bias or soft-capping). Cases
this does not cover keep the model's own eager function: attention dropout, soft-capping or
sink logits, no mask or a boolean mask, a mask that differs per head, GPUs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ecellm.speedups import enabled, register_attention

NAME = "ecellm_eager"


class GroupedAttention(torch.autograd.Function):
    """``softmax(Q K^T * scale + mask) V`` for grouped-query heads; returns (batch, q_len, heads, dim)."""

    @staticmethod
    def forward(
        ctx: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        batch, heads, q_len, dim = query.shape
        kv_heads, kv_len = key.shape[1], key.shape[2]
        groups = heads // kv_heads
        q = query.reshape(batch, kv_heads, groups * q_len, dim)  # head h reads key/value head h // groups
        scores = torch.matmul(q, key.transpose(2, 3)).view(batch, kv_heads, groups, q_len, kv_len)
        mask = mask.unsqueeze(1)  # (batch|1, 1, 1, q_len, kv_len): the same for every head
        if torch.result_type(scores, mask) == scores.dtype:
            probs = torch.softmax(scores.mul_(scale).add_(mask), dim=-1)
        else:  # a wider mask promotes the sum, as in eager; round the probabilities back the same way
            probs = torch.softmax(scores.mul_(scale) + mask, dim=-1, dtype=torch.float32).to(scores.dtype)
        flat = probs.view(batch, kv_heads, groups * q_len, kv_len)
        out = torch.matmul(flat, value).view(batch, heads, q_len, dim)
        ctx.save_for_backward(q, key, value, flat)
        ctx.scale, ctx.query_shape = scale, query.shape
        return out.transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        q, key, value, probs = ctx.saved_tensors
        batch, kv_heads, rows, dim = q.shape
        grad = grad.transpose(1, 2).reshape(batch, kv_heads, rows, dim).to(value.dtype)
        grad_v = torch.matmul(probs.transpose(2, 3), grad)
        grad_p = torch.matmul(grad, value.transpose(2, 3))
        grad_s = torch._softmax_backward_data(grad_p, probs, -1, probs.dtype).mul_(ctx.scale)
        grad_q = torch.matmul(grad_s, key).view(ctx.query_shape)
        grad_k = torch.matmul(grad_s.transpose(2, 3), q)  # sums over the group's query heads
        return grad_q, grad_k, grad_v, None, None


def attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface contract, eager semantics; :class:`GroupedAttention`
    where it applies, the layer's own ``eager_attention_forward`` elsewhere."""
    heads, kv_heads = query.shape[1], key.shape[1]
    covered = (
        query.device.type == "cpu"
        and not (dropout and getattr(module, "training", False))
        and all(kwargs.get(k) is None for k in ("softcap", "sinks", "s_aux", "position_bias"))
        and getattr(module, "attn_logit_softcapping", None) is None
        and attention_mask is not None
        and attention_mask.is_floating_point()
        and attention_mask.dim() == 4
        and attention_mask.shape[1] == 1
        and heads % kv_heads == 0
        and query.shape[-1] == key.shape[-1] == value.shape[-1]
        and query.dtype == key.dtype == value.dtype
        # under autocast, eager's matmuls run in the autocast dtype: only inputs already in it
        and not (torch.is_autocast_enabled("cpu") and query.dtype != torch.get_autocast_dtype("cpu"))
    )
    if not covered:
        return (_eager_function(module) or _plain_eager())(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    mask = attention_mask[:, :, :, : key.shape[2]]
    with torch.autocast("cpu", enabled=False):  # every step in the inputs' dtype, as eager's are
        return GroupedAttention.apply(query, key, value, mask, float(scaling)), None


def _plain_eager() -> Callable[..., Any]:
    from transformers.models.llama.modeling_llama import eager_attention_forward

    return eager_attention_forward


def _eager_function(module: Any) -> Callable[..., Any] | None:
    """The ``eager_attention_forward`` of the modeling file ``module``'s class comes from, if any."""
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def _standard_eager(model: Any) -> bool:
    """Whether every modeling file of ``model``'s layers that defines an eager attention function
    defines the standard one (Llama's code), and at least one does."""
    plain = _plain_eager().__code__
    found = False
    for fn in {_eager_function(m) for m in model.modules()} - {None}:
        code = fn.__code__
        if (code.co_code, code.co_names, code.co_consts) != (plain.co_code, plain.co_names, plain.co_consts):
            return False
        found = True
    return found


def register() -> str:
    """Register :data:`NAME` with transformers (idempotent); eager's mask builder serves it."""
    return register_attention(NAME, attention_forward, "eager")


@contextmanager
def grouped_training_attention(model: Any) -> Iterator[bool]:
    """Train a CPU model whose attention is ``eager`` with :data:`NAME` inside the block, then put
    ``eager`` back. Yields whether it switched (not when speed-ups are off)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    device = getattr(base, "device", None)
    if (
        getattr(config, "_attn_implementation", None) != "eager"
        or getattr(device, "type", "cpu") != "cpu"
        or not hasattr(base, "set_attn_implementation")
        or not enabled()
        or not _standard_eager(base)
    ):
        yield False
        return
    base.set_attn_implementation(register())
    try:
        yield True
    finally:
        base.set_attn_implementation("eager")
