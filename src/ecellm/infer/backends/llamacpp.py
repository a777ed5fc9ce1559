"""llama.cpp backend (optional extra ``llamacpp``): GGUF models on CPU without torch overhead.

Why it exists: quantised GGUF models run several times faster per token on a laptop CPU
through llama.cpp than through transformers, which de-quantises them to fp32. The binding
(llama-cpp-python) compiles C++ on install, so it is an optional extra; importing this module
is always safe and constructing the backend without it raises :class:`MissingDependency`
with the install command.

Modes: ``generate`` (greedy: temperature 0 and top-k 1, cut at ``stop``) and ``choice`` (each
choice scored by the summed log-probability of its tokens after the prompt, which needs the
model opened with ``logits_all``; the backend turns that on itself) and ``constrained``
(greedy generation under the GBNF grammar of the request's constraint spec,
:func:`ecellm.infer.structured.to_gbnf`, which accepts exactly what the hf backend's grammar
accepts). Unlike the hf backend, llama.cpp cannot force the shortest completion when the token
budget runs out, so a constrained answer cut by ``max_new_tokens`` may not parse.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.infer.backends import MissingDependency, refuse_fixed
from ecellm.infer.base import Completion, Request
from ecellm.infer.structured import to_gbnf

INSTALL_HINT = "pip install 'ecellm[llamacpp]'  (or: pip install llama-cpp-python)"


def _import_llama() -> Any:
    """The ``llama_cpp`` module (``Llama`` and ``LlamaGrammar``)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependency(
            f"the llamacpp backend needs llama-cpp-python: {INSTALL_HINT}", field="backend"
        ) from exc
    return llama_cpp


class LlamaCppBackend:
    """Greedy generation and choice scoring with llama.cpp on one GGUF file."""

    name = "llamacpp"
    supported_modes = frozenset({"generate", "choice", "constrained"})

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        chat: bool = False,
        verbose: bool = False,
    ) -> None:
        self._llama_cpp = _import_llama()
        if not Path(model_path).is_file():
            raise InputError("GGUF model file not found", file=model_path)
        self.model_path = model_path
        self.chat = chat
        self.seed = seed
        self.n_ctx = n_ctx
        # logits_all keeps every position's logits so choice scoring can read prompt log-probs.
        self._grammars: dict[Any, Any] = {}
        self.llm = self._llama_cpp.Llama(
            model_path=model_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            logits_all=True,
            verbose=verbose,
        )

    @classmethod
    def open(
        cls,
        model: str | None,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int | None = None,
        **kw: Any,
    ) -> LlamaCppBackend:
        """Open a ``.gguf`` file, or the GGUF of an embedded model name (e.g. ``gemma3-270m``).
        A GGUF's weights and precision are fixed, so ``adapter`` and ``dtype`` are refused;
        requests run one at a time, so ``batch_size`` (a hint) is ignored."""
        refuse_fixed(cls.name, adapter=adapter, dtype=dtype)
        if model is None:
            raise InputError("the llamacpp backend needs a .gguf file or a GGUF model name", field="model")
        from ecellm.models.registry import resolve_model

        src = resolve_model(str(model))
        return cls(str(Path(src.path) / src.gguf_file) if src.gguf_file else str(model), **kw)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_path,
            "n_ctx": self.n_ctx,
            "seed": self.seed,
            "chat": self.chat,
            "temperature": 0.0,
            "supported_modes": sorted(self.supported_modes),
        }

    def _grammar(self, spec: Any) -> Any:
        """The compiled GBNF grammar of a constraint spec (compiled once per spec)."""
        if spec not in self._grammars:
            self._grammars[spec] = self._llama_cpp.LlamaGrammar.from_string(to_gbnf(spec), verbose=False)
        return self._grammars[spec]

    def _generate(self, req: Request) -> Completion:
        start = time.perf_counter()
        kw: dict[str, Any] = {
            "max_tokens": req.max_new_tokens,
            "temperature": 0.0,
            "top_k": 1,
            "stop": list(req.stop) or None,
        }
        constrained = req.mode == "constrained" and req.constraint is not None
        if constrained:
            kw["grammar"] = self._grammar(req.constraint)
            kw["stop"] = None  # the grammar ends the answer; a stop string could cut it
        if self.chat:
            out = self.llm.create_chat_completion(messages=[{"role": "user", "content": req.prompt}], **kw)
            text = out["choices"][0]["message"].get("content") or ""
        else:
            out = self.llm.create_completion(req.prompt, **kw)
            text = out["choices"][0]["text"] or ""
        usage = out.get("usage") or {}
        return Completion(
            id=req.id,
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=time.perf_counter() - start,
            mode="constrained" if constrained else "generate",
        )

    def _logprob_of(self, prompt: str, continuation: str) -> tuple[float, int]:
        """Summed log-probability of ``continuation``'s tokens after ``prompt``, and the prompt length."""
        import numpy as np

        n_prompt = len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True))
        ids = self.llm.tokenize((prompt + continuation).encode("utf-8"), add_bos=True)
        if len(ids) > self.n_ctx:
            raise InputError(
                f"prompt and choice need {len(ids)} tokens, more than n_ctx={self.n_ctx}", field="prompt"
            )
        self.llm.reset()
        self.llm.eval(ids)
        logits = np.asarray(self.llm.scores[: len(ids)], dtype=np.float64)
        total = 0.0
        for i in range(max(n_prompt, 1), len(ids)):
            row = logits[i - 1]
            total += float(row[ids[i]] - (row.max() + np.log(np.exp(row - row.max()).sum())))
        return total, n_prompt

    def _choice(self, req: Request) -> Completion:
        start = time.perf_counter()
        scores: dict[str, float] = {}
        n_prompt = 0
        for c in req.choices or []:
            scores[c], n_prompt = self._logprob_of(req.prompt, c)
        best = max(scores, key=scores.__getitem__)  # first of equal scores
        return Completion(
            id=req.id,
            text=best,
            prompt_tokens=n_prompt,
            latency_s=time.perf_counter() - start,
            choice_logprobs=scores,
            mode="choice",
        )

    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """One request at a time: llama.cpp already uses every thread for a single sequence."""
        for req in requests:
            yield self._choice(req) if req.mode == "choice" and req.choices else self._generate(req)
