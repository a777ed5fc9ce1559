"""Answer-only logits: the (row, position) gather gives the model's own loss and gradients, and a
model whose head does more than its output layer keeps the ``logits_to_keep`` path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import tiny_llama

from ecellm.train.data import IGNORE
from ecellm.train.loss import _HEAD_ONLY, completion_loss, per_sample_loss, target_logits


def _tiny_llama(cls=None):
    return tiny_llama(cls, num_hidden_layers=2, num_key_value_heads=1)


def _batch(spans: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Right-padded rows of (prompt, answer) lengths; prompt tokens masked."""
    n = max(p + a for p, a in spans)
    ids, mask, labels = [], [], []
    for k, (p, a) in enumerate(spans):
        row = [(5 * k + 3 * i) % 47 + 2 for i in range(p + a)]
        pad = n - len(row)
        ids.append(row + [0] * pad)
        mask.append([1] * len(row) + [0] * pad)
        labels.append([IGNORE] * p + row[p:] + [IGNORE] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def _reference(model, batch) -> torch.Tensor:
    """The model's own loss over every position (full-vocabulary logits)."""
    return model(**batch).loss


def _grads(model, loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = loss_fn()
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 9)), min_size=1, max_size=4))
def test_gathered_logits_give_the_models_loss_and_gradients(spans):
    model, batch = _tiny_llama(), _batch(spans)
    want, want_g = _grads(model, lambda: _reference(model, batch))
    got, got_g = _grads(model, lambda: completion_loss(model, batch))
    assert _HEAD_ONLY[model] is True  # a Llama head is its output layer: the gather path ran
    assert got == pytest.approx(want, rel=1e-5)
    assert want_g.keys() == got_g.keys()
    for name, g in want_g.items():
        assert torch.allclose(got_g[name], g, atol=1e-6, rtol=1e-4), name


def test_only_target_positions_are_projected():
    model, batch = _tiny_llama(), _batch([(2, 3), (9, 1), (5, 4)])
    forward = {k: v for k, v in batch.items() if k != "labels"}
    targets = batch["labels"][:, 1:]
    logits, wanted, (rows, cols) = target_logits(model, forward, targets)
    assert logits.shape == (8, 50) and wanted.tolist() == targets[targets != IGNORE].tolist()
    assert rows.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]  # the union of positions would be 10 x 3 rows


def _scaled(cfg):
    """A causal LM whose logits are its head's output times a scale, as Cohere's ``logit_scale``."""
    from transformers import LlamaForCausalLM

    class Scaled(LlamaForCausalLM):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = 0.5 * out.logits
            return out

    return Scaled(cfg)


def test_a_head_with_an_extra_step_keeps_the_logits_to_keep_path():
    model, batch = _tiny_llama(_scaled), _batch([(3, 4), (6, 2)])
    labels = batch["labels"]
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        want = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), labels[:, 1:].reshape(-1))
        got = completion_loss(model, batch)
    assert _HEAD_ONLY[model] is False
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_per_sample_loss_takes_the_same_positions():
    model, batch = _tiny_llama(), _batch([(2, 1), (4, 6), (1, 3)])
    with torch.no_grad():
        fast = per_sample_loss(model, batch).item()
        full = per_sample_loss(model, batch, target_only=False).item()
        means = [model(**{k: v[i : i + 1] for k, v in batch.items()}).loss.item() for i in range(3)]
    assert fast == pytest.approx(full, rel=1e-5) and fast == pytest.approx(sum(means) / 3, rel=1e-5)


class _Wrapper(torch.nn.Module):
    """Forwards attribute lookups to the model it wraps, as FSDP and DeepSpeed's engine do."""

    def __init__(self, model):
        super().__init__()
        self.module = model

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def test_a_wrapped_model_runs_its_wrappers_forward():
    model, batch = _tiny_llama(), _batch([(3, 4), (6, 2)])
    wrapped = _Wrapper(model)
    assert callable(wrapped.get_decoder)  # the lookup alone would pass
    with torch.no_grad():
        want = _reference(model, batch).item()
        got = completion_loss(wrapped, batch).item()
    assert _HEAD_ONLY[wrapped] is False and got == pytest.approx(want, rel=1e-5)
