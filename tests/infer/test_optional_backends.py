"""The llama.cpp and vLLM backends are import-guarded: usable errors when their extras are absent."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from ecellm.errors import InputError
from ecellm.infer.backends import MissingDependency
from ecellm.infer.backends.llamacpp import LlamaCppBackend
from ecellm.infer.backends.vllm import VLLMBackend, constraint_spec
from ecellm.infer.base import Request
from ecellm.tasks.constraints import AttributeValues, NumberList, Ranking

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_modules_import_without_the_engines():
    code = (
        "import sys, ecellm.infer.backends.llamacpp, ecellm.infer.backends.vllm; "
        "print('llama_cpp' in sys.modules, 'vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(HAS_LLAMA, reason="llama-cpp-python is installed here")
def test_llamacpp_missing_extra_names_the_install_command(tmp_path):
    with pytest.raises(MissingDependency) as info:
        LlamaCppBackend(str(tmp_path / "model.gguf"))
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, InputError)
    assert "pip install 'ecellm[llamacpp]'" in str(err) and "llama-cpp-python" in str(err)


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_vllm_missing_extra_names_the_install_command():
    with pytest.raises(MissingDependency, match=re.escape("pip install 'ecellm[vllm]'")):
        VLLMBackend("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_vllm_constraints_are_the_specs_regexes():
    rank = constraint_spec(
        Request(id="q", prompt="", mode="constrained", constraint=Ranking(("A", "B", "C")))
    )
    assert re.fullmatch(rank["regex"], "B,A,C")
    for bad in ("B,D", "A,A,B", "B,A", "B, A, C"):
        assert not re.fullmatch(rank["regex"], bad), bad
    digits = constraint_spec(Request(id="s", prompt="", mode="constrained", constraint=NumberList()))
    assert re.fullmatch(digits["regex"], "3,14,2") and not re.fullmatch(digits["regex"], "3,,4")
    ave = constraint_spec(
        Request(
            id="a",
            prompt="",
            mode="constrained",
            constraint=AttributeValues(("color",), ("product title",)),
        )
    )
    gold = '[{"attribute": "color", "value": "red", "source": "product title"}]'
    assert re.fullmatch(ave["regex"], gold)
    assert not re.fullmatch(ave["regex"], gold.replace("product title", "None"))
    assert constraint_spec(Request(id="g", prompt="")) is None
    big = constraint_spec(
        Request(id="r", prompt="", mode="constrained", constraint=Ranking(tuple(map(str, range(12)))))
    )
    assert set(big) == {"grammar"}  # 12! orders: too many for a regex, so the GBNF grammar goes


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
