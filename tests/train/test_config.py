"""Training config: one data source or a weighted mixture, chat templates for base models."""

from __future__ import annotations

import pytest

from ecellm.errors import InputError
from ecellm.train.config import load_config


def test_mixture_or_train_exactly_one(tmp_path):
    cfg = load_config({"data": {"mixture": [{"path": "a"}, {"path": "b", "weight": 3}]}})
    assert [(m.path, m.weight) for m in cfg.data.mixture] == [("a", 1.0), ("b", 3.0)]
    with pytest.raises(InputError, match="data"):
        load_config({"data": {"train": "x", "mixture": [{"path": "a"}]}})
    with pytest.raises(InputError, match="data"):
        load_config({"data": {}})
    with pytest.raises(InputError, match="weight"):
        load_config({"data": {"mixture": [{"path": "a", "weight": 0}]}})


def test_mixture_paths_next_to_the_config_resolve(tmp_path):
    (tmp_path / "shop.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("data:\n  mixture:\n    - {path: shop.jsonl}\n", encoding="utf-8")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.data.mixture[0].path == str(tmp_path / "shop.jsonl")


def test_native_precision_resolves_when_the_recipe_loads(monkeypatch):
    """``precision: native`` is bf16 autocast only on a CPU that multiplies bf16 natively; the
    loaded recipe (and so its manifest) holds what will run, never ``native``."""
    import ecellm.models.loading as loading
    from ecellm.train.config import TrainConfig

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert TrainConfig(data={"train": "x"}, precision="native").precision == "fp32"
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert TrainConfig(data={"train": "x"}, precision="native").precision == "bf16"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert TrainConfig(data={"train": "x"}, precision="native").precision == "auto"


def test_full_top_layers_is_refused_for_lora(tmp_path):
    """A setting the chosen method would ignore is an error, not a silent no-op."""
    import yaml

    from ecellm.errors import InputError
    from ecellm.train.config import load_config

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": "x"}, "method": "lora", "full": {"top_layers": 2}}))
    with pytest.raises(InputError, match="full.top_layers applies to method: full"):
        load_config(str(path))
