"""The llama.cpp backend: import-guarded (a usable error when its extra is absent), GBNF constraints."""

from __future__ import annotations

import importlib.util

import pytest

from ecellm.errors import InputError
from ecellm.infer.backends import MissingDependency
from ecellm.infer.backends.llamacpp import LlamaCppBackend
from ecellm.infer.base import Request
from ecellm.tasks.constraints import Ranking

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.skipif(HAS_LLAMA, reason="llama-cpp-python is installed here")
def test_llamacpp_missing_extra_names_the_install_command(tmp_path):
    with pytest.raises(MissingDependency) as info:
        LlamaCppBackend(str(tmp_path / "model.gguf"))
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, InputError)
    assert "pip install 'ecellm[llamacpp]'" in str(err) and "llama-cpp-python" in str(err)


def test_llamacpp_constrained_mode_sends_the_specs_gbnf_grammar(tmp_path, monkeypatch):
    """A stand-in ``llama_cpp`` module records what the backend passes to llama.cpp."""
    import types

    from ecellm.infer import gbnf

    calls = []

    class Llama:
        def __init__(self, **kw):
            pass

        def create_completion(self, prompt, **kw):
            calls.append(kw)
            return {"choices": [{"text": "B,A"}], "usage": {"completion_tokens": 3}}

    class LlamaGrammar:
        @staticmethod
        def from_string(text, verbose=True):
            return ("compiled", text)

    fake = types.SimpleNamespace(Llama=Llama, LlamaGrammar=LlamaGrammar)
    monkeypatch.setattr("ecellm.infer.backends.llamacpp._import_llama", lambda: fake)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    backend = LlamaCppBackend(str(model))
    spec = Ranking(("A", "B"))
    reqs = [
        Request(id="c", prompt="p", mode="constrained", constraint=spec, stop=("###",)),
        Request(id="g", prompt="p", stop=("###",)),
    ]
    done = {c.id: c for c in backend.run(reqs)}
    assert done["c"].mode == "constrained" and done["g"].mode == "generate"
    kind, text = calls[0]["grammar"]
    assert kind == "compiled" and gbnf.fullmatch(text, "B,A") and not gbnf.fullmatch(text, "A,A")
    assert calls[0]["stop"] is None and "grammar" not in calls[1] and calls[1]["stop"] == ["###"]
