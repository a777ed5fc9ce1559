"""``ecellm train``, ``export`` and ``recipes``: the flags map onto the Python API's arguments."""

from __future__ import annotations

from typer.testing import CliRunner

from ecellm.cli import app

runner = CliRunner()


def test_train_out_is_the_output_dir_override(monkeypatch, tmp_path):
    import ecellm.train.run as run

    seen = {}

    def fake_train(config, overrides=()):
        seen.update(config=config, overrides=tuple(overrides))
        return tmp_path / "run"

    monkeypatch.setattr(run, "train", fake_train)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "-c", "smollm2-135m-lora", "max_steps=2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert seen == {"config": "smollm2-135m-lora", "overrides": ("max_steps=2", f"output_dir={out}")}
    res = runner.invoke(app, ["train", "-c", "smollm2-135m-lora"])
    assert res.exit_code == 0 and seen["overrides"] == ()


def test_recipes_cp_takes_out_or_the_earlier_positional_destination(tmp_path):
    res = runner.invoke(app, ["recipes", "cp", "smollm2-135m-lora", "--out", str(tmp_path / "a.yaml")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["recipes", "cp", "smollm2-135m-lora", str(tmp_path / "b.yaml")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a.yaml").read_bytes() == (tmp_path / "b.yaml").read_bytes()
    res = runner.invoke(app, ["recipes", "cp", "smollm2-135m-lora"])
    assert res.exit_code == 2 and "--out" in res.output
