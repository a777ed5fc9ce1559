"""One switch turns every CPU speed-up off; off, the plain path runs and gives the same answers."""

from __future__ import annotations

import torch
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.infer.backends import open_backend
from ecellm.infer.predict import make_requests, run_records
from ecellm.speedups import ENV, enabled, scope, swapped_forwards
from ecellm.speedups.kvcache import GrowingLayer, decode_cache


def test_the_environment_switch_wins_over_configs_and_scopes(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert enabled() and enabled(True) and not enabled(False)
    with scope(False):
        assert not enabled() and enabled(True)
        with scope(None):
            assert not enabled()  # an inner run without a setting keeps the outer choice
    assert enabled()
    monkeypatch.setenv(ENV, "0")
    assert not enabled() and not enabled(True)
    with scope(True):
        assert not enabled()


def test_forwards_are_swapped_only_when_on_and_always_put_back(monkeypatch):
    layer = torch.nn.Linear(2, 2)
    x = torch.ones(1, 2)
    plain = layer(x)
    with swapped_forwards([layer], lambda m: lambda inp: inp * 0) as done:
        assert done == [layer] and torch.equal(layer(x), torch.zeros(1, 2))
    assert torch.equal(layer(x), plain) and "forward" not in layer.__dict__
    monkeypatch.setenv(ENV, "off")
    with swapped_forwards([layer], lambda m: lambda inp: inp * 0) as done:
        assert done == [] and torch.equal(layer(x), plain)


def test_switched_off_the_backend_runs_the_plain_path_with_the_same_answers(smollm2, monkeypatch):
    mixed = load_samples(FIXTURES / "samples_mixed.jsonl")
    samples = [s for s in mixed if s.task in ("SA", "QPR", "AVE")][:6]
    model = smollm2.model
    runs, seen = [], []
    for switch in (None, "0"):
        if switch is None:
            monkeypatch.delenv(ENV, raising=False)
        else:
            monkeypatch.setenv(ENV, switch)
        backend = open_backend("hf", smollm2, autocast="off")
        original = model.forward

        def spy(*args, _forward=original, _switch=switch, **kw):
            seen.append((_switch, model.config._attn_implementation, type(kw.get("past_key_values"))))
            return _forward(*args, **kw)

        model.forward = spy  # an instance attribute, removed below so the class's forward is back
        try:
            reqs = make_requests(backend, samples, mode="auto", template="alpaca")
            runs.append({r["id"]: (r["prediction"], r["mode"]) for r in run_records(backend, samples, reqs)})
        finally:
            del model.forward  # (monkeypatch.undo would leave the bound method on the shared model)
        assert backend.describe()["speedups"] is (switch is None)
    assert runs[0] == runs[1] and {m for _, m in runs[0].values()} >= {"choice", "constrained"}
    off = [s for s in seen if s[0] == "0"]
    assert off and all(impl == "sdpa" for _, impl, _ in off)  # no short-query attention
    assert any(impl != "sdpa" for sw, impl, _ in seen if sw is None)  # on: it did switch
    with scope(False):
        cache = decode_cache(model)
    assert not any(isinstance(layer, GrowingLayer) for layer in cache.layers)


def test_training_recipes_have_the_switch():
    from ecellm.train.config import TrainConfig

    assert TrainConfig.model_fields["speedups"].default is True
