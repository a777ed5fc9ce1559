"""The vLLM backend: import-guarded (a usable error when its extra is absent), regex constraints."""

from __future__ import annotations

import importlib.util
import re

import pytest

from ecellm.infer.backends import MissingDependency
from ecellm.infer.backends.vllm import VLLMBackend, constraint_spec
from ecellm.infer.base import Request
from ecellm.tasks.constraints import AttributeValues, NumberList, Ranking

HAS_VLLM = importlib.util.find_spec("vllm") is not None


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
