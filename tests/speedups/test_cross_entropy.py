"""The blockwise cross-entropy equals PyTorch's on fp32 copies of the logits, loss and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ecellm.speedups import cross_entropy
from ecellm.speedups.cross_entropy import TargetCrossEntropy, cross_entropy_sum


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 40),
    vocab=st.integers(2, 700),
    block_bytes=st.sampled_from([1, 4 * 700 * 3, 1 << 21]),  # one row, a few rows, all rows per block
    bf16=st.booleans(),
    spread=st.sampled_from([0.1, 3.0, 40.0]),
    seed=st.integers(0, 2**16),
)
def test_blockwise_cross_entropy_equals_torch(rows, vocab, block_bytes, bf16, spread, seed):
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.bfloat16 if bf16 else torch.float32
    logits = (spread * torch.randn(rows, vocab, generator=gen)).to(dtype)
    targets = torch.randint(0, vocab, (rows,), generator=gen)
    scale = float(torch.rand(1, generator=gen)) + 0.5  # the gradient arriving from the division

    want_in = logits.clone().requires_grad_()
    want = F.cross_entropy(want_in.float(), targets, reduction="sum")
    (want * scale).backward()
    got_in = logits.clone().requires_grad_()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_entropy, "BLOCK_BYTES", block_bytes)
        got = TargetCrossEntropy.apply(got_in, targets)
        (got * scale).backward()
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-4)
    assert got_in.grad.dtype == dtype
    # softmax - onehot in fp32 (the two formulas round differently where a probability is near 1),
    # rounded once to the logits' dtype: equal up to one unit of that rounding
    rtol = 2**-7 if bf16 else 1e-5
    assert torch.allclose(got_in.grad.float(), want_in.grad.float(), atol=1e-5 * scale, rtol=rtol)


def test_the_off_switch_and_other_devices_take_the_plain_path(monkeypatch):
    logits = torch.randn(3, 5, requires_grad=True)
    targets = torch.tensor([0, 4, 2])
    assert "TargetCrossEntropy" in type(cross_entropy_sum(logits, targets).grad_fn).__name__
    monkeypatch.setenv("ECELLM_SPEEDUPS", "0")
    plain = cross_entropy_sum(logits, targets)
    assert "TargetCrossEntropy" not in type(plain.grad_fn).__name__
    assert plain.item() == pytest.approx(F.cross_entropy(logits, targets, reduction="sum").item())
