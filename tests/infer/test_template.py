"""Template resolution, chat rendering in paper templates, export formats and decoding presets."""

from __future__ import annotations

import json
import warnings

import pytest

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.infer.base import Request
from ecellm.infer.decoding import apply_preset, check_mode, get_preset
from ecellm.infer.template import checkpoint_template, resolve_template
from ecellm.prompts import STOP_STRINGS, TEMPLATES, render_chat, render_prompt
from ecellm.train.chat_formats import jinja_chat_template, modelfile


def _folder(tmp_path, name, template, adapter=True):
    d = tmp_path / name
    d.mkdir()
    (d / "ecellm_train.json").write_text(json.dumps({"template": template, "base_model": "x"}))
    if adapter:
        (d / "adapter_config.json").write_text("{}")
    return str(d)


def test_recorded_template_wins_over_the_default(tmp_path):
    ad = _folder(tmp_path, "ad", "mistral")
    full = _folder(tmp_path, "full", "alpaca-ref", adapter=False)
    got = resolve_template("smollm2-135m", ad)
    assert (got.template, got.source) == ("mistral", "adapter")
    assert (resolve_template(ad).template, resolve_template(ad).source) == ("mistral", "adapter")
    assert (resolve_template(full).template, resolve_template(full).source) == ("alpaca-ref", "model")
    assert (resolve_template("smollm2-135m").template, resolve_template("smollm2-135m").source) == (
        "alpaca",
        "model default",
    )


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("NingLab/eCeLLM-S", "alpaca-ref"),
        ("NingLab/eCeLLM-M", "mistral-ref"),
        ("NingLab/eCeLLM-L", "alpaca-ref"),
        ("/models/ecellm-m/", "mistral-ref"),
        ("eCeLLM-M.Q4_K_M.gguf", "mistral-ref"),
        ("NingLab/eCeLLM-Mega", None),
        ("mistralai/Mistral-7B-Instruct-v0.2", None),
    ],
)
def test_ninglab_checkpoints_select_their_reference_template(spec, want):
    assert checkpoint_template(spec) == want
    if want:
        got = resolve_template(spec)
        assert (got.template, got.source) == (want, "model default")


def test_an_explicit_different_template_warns_and_is_used(tmp_path):
    ad = _folder(tmp_path, "ad", "mistral")
    with pytest.warns(UserWarning, match="'alpaca' differs from 'mistral'.*adapter"):
        got = resolve_template("smollm2-135m", ad, "alpaca")
    assert (got.template, got.source) == ("alpaca", "explicit")
    with pytest.warns(UserWarning, match="mistral-ref"):
        resolve_template("NingLab/eCeLLM-M", None, "alpaca")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_template("smollm2-135m", ad, "mistral").source == "explicit"
        assert resolve_template("smollm2-135m", None, "chat").template == "chat"  # nothing known: no warning
    with pytest.raises(ValueError, match="unknown template"):
        resolve_template("smollm2-135m", None, "vicuna")


def test_a_bad_training_record_names_file_and_field(tmp_path):
    ad = _folder(tmp_path, "ad", "vicuna")
    with pytest.raises(InputError, match="ecellm_train.json.*template"):
        resolve_template("smollm2-135m", ad)


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t != "chat"])
def test_a_chat_turn_renders_like_a_sample_and_the_gguf_template_agrees(template):
    import jinja2

    sample = Sample(id="x", task="PSI", instruction="Judge.", input="Nice.", output="yes")
    messages = [{"role": "user", "content": "Judge.\n\n### Input:\nNice."}]
    want = render_prompt(sample, template)
    assert render_chat(messages, template) == want
    jinja = jinja2.Environment().from_string(jinja_chat_template(template))
    assert jinja.render(messages=messages, eos_token="</s>") == want
    with pytest.raises(ValueError, match="single-turn"):
        render_chat([*messages, {"role": "assistant", "content": "yes"}], template)


def test_modelfile_has_the_template_and_one_stop_line_per_stop_string():
    text = modelfile("model-f16.gguf", "mistral", "adapter")
    assert "FROM ./model-f16.gguf\n" in text and "'mistral' (adapter)" in text
    assert 'TEMPLATE """[INST] Below is an instruction' in text
    assert '### Instruction:\n{{ .Prompt }} [/INST]\n\n### Response:\n{{ .Response }}"""' in text
    assert text.count("PARAMETER stop") == len(STOP_STRINGS)
    assert 'PARAMETER stop """\n\n\n"""' in text
    chatml = modelfile("m.gguf", "chat", "model default", "{{ '<|im_start|>' }}")
    assert "<|im_start|>assistant" in chatml and 'PARAMETER stop "<|im_end|>"' in chatml


def test_reference_decoding_preset():
    ref = get_preset("reference")
    assert (ref.temperature, ref.top_p, ref.max_new_tokens) == (0.15, 0.95, 100)
    assert check_mode(ref, "auto") == "generate" and check_mode(get_preset("greedy"), "choice") == "choice"
    with pytest.raises(ValueError, match="runs mode 'generate'"):
        check_mode(ref, "choice")
    with pytest.raises(ValueError, match="unknown decoding"):
        get_preset("beam")
    reqs = [Request("a", "p", max_new_tokens=8, stop=STOP_STRINGS)]
    got = apply_preset(reqs, ref, "mistral-ref")[0]
    assert (got.temperature, got.top_p, got.max_new_tokens, got.stop) == (
        0.15,
        0.95,
        100,
        ("[/INST] ### Response:",),
    )
    assert apply_preset(reqs, get_preset("greedy"), "alpaca") == reqs


def test_model_predict_applies_the_decoding_preset():
    from ecellm.infer.api import Model
    from ecellm.infer.base import Completion

    class Fake:
        name, supported_modes, supports_sampling = "fake", frozenset({"generate", "choice"}), True

        def run(self, requests):
            self.seen = list(requests)
            return [Completion(r.id, "yes", mode=r.mode) for r in self.seen]

    backend = Fake()
    model = Model(backend=backend, spec="x", template="mistral-ref", template_source="model default")
    samples = [Sample(id="a", task="PSI", instruction="i", input="x", output="yes")]
    assert model.predict(samples, decoding="reference")[0]["prediction"] == "yes"
    (r,) = backend.seen
    assert (r.mode, r.temperature, r.max_new_tokens, r.stop) == (
        "generate",
        0.15,
        100,
        ("[/INST] ### Response:",),
    )
    model.predict(samples)
    assert (backend.seen[0].mode, backend.seen[0].temperature) == ("choice", 0.0)
    backend.supports_sampling = False
    with pytest.raises(ValueError, match="cannot"):
        model.predict(samples, decoding="reference")
