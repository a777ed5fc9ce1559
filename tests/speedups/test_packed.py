"""Prepacked bf16 linear layers equal ``F.linear`` (inference, and the frozen base in training),
are removed afterwards and leave what they cannot pack alone."""

from __future__ import annotations

import os

import pytest
import torch
from tests.conftest import FIXTURES

from ecellm.speedups.dropout import store_frozen_in_bf16
from ecellm.speedups.packed import packed_frozen_linears, packed_linears, supported

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _bf16_layers() -> torch.nn.Module:
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16, bias=False))
    return net.to(torch.bfloat16)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_equal_plain_linear_and_are_removed_afterwards():
    net = _bf16_layers()
    x = torch.randn(3, 5, 32).to(torch.bfloat16)
    with torch.no_grad():
        want = net(x)
        with packed_linears(net) as count:
            assert count == 2
            assert all("forward" in m.__dict__ for m in (net[0], net[2]))
            got = net(x)
    assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2)
    assert not any("forward" in m.__dict__ for m in net.modules())


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_reuse_a_store_until_a_weight_changes():
    net = _bf16_layers()
    x = torch.randn(2, 32).to(torch.bfloat16)
    store: dict = {}
    with torch.no_grad():
        with packed_linears(net, store):
            first = {k: v[1] for k, v in store.items()}
        assert len(first) == 2
        with packed_linears(net, store):
            assert all(store[k][1] is first[k] for k in first)  # packed once, reused
        net[2].weight.mul_(2)  # an in-place update (e.g. merging an adapter) must repack
        want = net(x)
        with packed_linears(net, store):
            assert store[id(net[2])][1] is not first[id(net[2])]
            assert store[id(net[0])][1] is first[id(net[0])]
            got = net(x)
    assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_fall_back_to_plain_linear_under_autograd():
    net = _bf16_layers()
    x = torch.randn(4, 32).to(torch.bfloat16).requires_grad_()
    with packed_linears(net):
        net(x).float().sum().backward()  # the packed op has no backward: F.linear must run
    assert x.grad is not None and net[0].weight.grad is not None


def test_packed_linears_leave_fp32_models_alone():
    net = _bf16_layers().float()
    with packed_linears(net) as count:
        assert count == 0
        assert not any("forward" in m.__dict__ for m in net.modules())


@pytest.mark.slow
@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_a_bf16_model_predicts_the_same_with_packed_weights(smollm2, monkeypatch):
    """The hf backend packs a bf16 model's linear layers for a run: same choice scores and
    constrained texts as plain ``F.linear``, and the model is left unpacked afterwards."""
    import copy
    import dataclasses

    import ecellm.speedups.packed as packed
    from ecellm.data.loaders import load_samples
    from ecellm.infer.backends.hf import HFBackend
    from ecellm.infer.predict import make_requests

    monkeypatch.setenv("ECELLM_THREADS", "1")
    fixture = FIXTURES / "samples_mixed.jsonl"
    samples = [s for s in load_samples(fixture) if s.task in ("PSI", "SA", "QPR")][:6]
    loaded = dataclasses.replace(smollm2, model=copy.deepcopy(smollm2.model).to(torch.bfloat16))
    backend = HFBackend(loaded, batch_size=4)
    assert backend.describe()["packed_linear_layers"] == 30 * 7 + 1  # 7 per layer + the LM head
    reqs = make_requests(backend, samples)
    assert {r.mode for r in reqs} == {"choice", "constrained"}
    runs = []
    for use in (True, False):
        monkeypatch.setattr(packed, "_SUPPORTED", use)
        runs.append({c.id: (c.text, c.choice_logprobs) for c in backend.run(reqs)})
        assert not any("forward" in m.__dict__ for m in loaded.model.modules())
    assert runs[0] == runs[1]


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_frozen_base_gives_the_same_loss_and_adapter_gradients(tiny_peft_model):
    model = tiny_peft_model().train()
    store_frozen_in_bf16(model)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # the two passes must see the same network
    ids = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 2, 6, 1]])

    def loss_and_grads() -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain_loss, plain = loss_and_grads()
    with packed_frozen_linears(model) as count:
        assert count == 2 * 7 + 1  # every frozen projection and the head's base layer
        packed_loss, packed = loss_and_grads()
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert packed_loss == pytest.approx(plain_loss, rel=1e-3)
    assert plain.keys() == packed.keys() and len(plain) == 2 * (2 * 7 + 1)
    for name, grad in plain.items():
        scale = grad.abs().max().item() or 1.0
        assert torch.allclose(packed[name], grad, atol=0.02 * scale), name


def test_packed_frozen_base_skips_trainable_and_fp32_layers(tiny_peft_model):
    model = tiny_peft_model()  # fp32 base: nothing to pack
    with packed_frozen_linears(model) as count:
        assert count == 0
