"""One folder of backends behind ``open_backend``; nothing outside it compares backend names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ecellm
from ecellm.errors import InputError
from ecellm.infer.backends import BACKENDS, capabilities, check_options, open_backend

SRC = Path(ecellm.__file__).parent


def test_capabilities_are_known_before_anything_loads() -> None:
    hf = capabilities("hf")
    assert hf.supports_sampling and hf.modes == {"generate", "choice", "constrained"}
    assert {"threads", "autocast", "trust_remote_code"} <= hf.options
    api = capabilities("openai")
    assert not api.supports_sampling and {"base_url", "concurrency"} <= api.options
    assert "base_url" not in hf.options
    with pytest.raises(InputError, match="unknown backend 'hf2'; choose one of hf, llamacpp, openai, vllm"):
        capabilities("hf2")


def test_unknown_options_and_settings_are_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="backend 'hf' takes no option 'base_url'"):
        open_backend("hf", "no-such-model", base_url="http://127.0.0.1:1")
    check_options("openai", {"concurrency": 2})
    with pytest.raises(InputError, match="backend 'openai' does not support adapter"):
        open_backend("openai", "m", adapter=str(tmp_path), base_url="http://127.0.0.1:1")
    with pytest.raises(InputError, match="backend 'openai' does not support dtype 'bfloat16'"):
        open_backend("openai", "m", dtype="bfloat16", base_url="http://127.0.0.1:1")
    with pytest.raises(InputError, match="backend 'llamacpp' does not support dtype"):
        open_backend("llamacpp", "gemma3-270m", dtype="float16")


def test_openai_backend_opens_by_name() -> None:
    backend = open_backend("openai", "m", base_url="http://127.0.0.1:9", concurrency=2, batch_size=8)
    assert (backend.name, backend.concurrency) == ("openai", 2)
    assert backend.supported_modes == {"generate"}


def test_modules_import_without_the_engines():
    code = (
        "import sys, ecellm.infer.backends.llamacpp, ecellm.infer.backends.vllm; "
        "print('llama_cpp' in sys.modules, 'vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _names_compared(tree: ast.AST) -> list[tuple[int, str]]:
    """Backend names used in a comparison (``x == "hf"``, ``x in ("hf", ...)``, ``match``)."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in (node.left, *node.comparators):
                consts = part.elts if isinstance(part, ast.Tuple | ast.List | ast.Set) else [part]
                hits += [(node.lineno, c.value) for c in consts if isinstance(c, ast.Constant)]
        elif isinstance(node, ast.MatchValue) and isinstance(node.value, ast.Constant):
            hits.append((node.lineno, node.value.value))
    return [(line, v) for line, v in hits if v in BACKENDS]


def test_no_backend_name_is_checked_outside_the_backends_folder() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "backends" in path.relative_to(SRC).parts:
            continue
        for line, name in _names_compared(ast.parse(path.read_text(encoding="utf-8"))):
            found.append(f"{path.relative_to(SRC)}:{line}: {name!r}")
    assert found == []


def test_predict_loop_does_not_import_the_python_api() -> None:
    """``infer/api.py`` builds on ``infer/predict.py``; the reverse import would be a cycle."""
    tree = ast.parse((SRC / "infer" / "predict.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "ecellm.infer.api" not in imported
