"""The llama.cpp and vLLM backends are import-guarded: usable errors when their extras are absent."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from ecellm.errors import InputError
from ecellm.infer.base import Request
from ecellm.infer.llamacpp import LlamaCppBackend, MissingDependency
from ecellm.infer.vllm_backend import VLLMBackend, constraint_spec

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_modules_import_without_the_engines():
    code = (
        "import sys, ecellm.infer.llamacpp, ecellm.infer.vllm_backend; "
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


def test_vllm_constraints_accept_well_formed_answers():
    rank = constraint_spec(
        Request(id="q", prompt="", constraint="ranking", constraint_args={"letters": ["A", "B", "C"]})
    )
    assert re.fullmatch(rank["regex"], "B,A,C") and not re.fullmatch(rank["regex"], "B,D")
    digits = constraint_spec(Request(id="s", prompt="", constraint="digits_commas"))
    assert re.fullmatch(digits["regex"], "3, 14,2") and not re.fullmatch(digits["regex"], "3,,4")
    ave = constraint_spec(
        Request(
            id="a",
            prompt="",
            constraint="ave_json",
            constraint_args={"attributes": ["color"], "sources": ["product title"]},
        )
    )
    item = ave["json"]["items"]
    assert ave["json"]["type"] == "array" and item["required"] == ["attribute", "value", "source"]
    assert item["properties"]["attribute"]["enum"] == ["color"]
    assert item["properties"]["source"]["enum"] == ["product title", "None"]
    assert constraint_spec(Request(id="g", prompt="")) is None
