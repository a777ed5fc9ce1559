"""vLLM backend (optional extra ``vllm``, needs a CUDA GPU): the fast path for full test sets.

vLLM batches all requests with paged attention, so a 7B model scores the ~15k ECInstruct test
prompts in minutes instead of hours. It cannot run on the CPU-only machines ecellm is tested
on, so this module stays small, imports vLLM only when the backend is built, and raises
:class:`~ecellm.infer.backends.MissingDependency` with the install command when it is absent.

Modes: ``generate`` (temperature 0, ``max_tokens``, ``stop``); ``choice`` by prompt
log-likelihood (``prompt_logprobs``) of prompt + choice; ``constrained`` through vLLM's
structured outputs (``StructuredOutputsParams`` in new releases, ``GuidedDecodingParams`` in
older ones) with the regex of the request's constraint spec (:mod:`ecellm.infer.structured`),
which accepts exactly what the hf backend's grammar accepts. A LoRA adapter folder is applied
per request through ``LoRARequest``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from ecellm.errors import InputError
from ecellm.infer.backends import MissingDependency
from ecellm.infer.base import Completion, Request
from ecellm.infer.structured import vllm_structured

INSTALL_HINT = "pip install 'ecellm[vllm]'  (needs a CUDA GPU)"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise MissingDependency(f"the vllm backend needs vLLM: {INSTALL_HINT}", field="backend") from exc
    return vllm


def constraint_spec(req: Request) -> dict[str, str] | None:
    """The structured-output rule of a constrained request: ``{"regex": ...}`` derived from the
    task's constraint spec (``{"grammar": gbnf}`` for a ranking too long for a regex)."""
    if req.mode != "constrained" or req.constraint is None:
        return None
    return vllm_structured(req.constraint)


class VLLMBackend:
    """Batched greedy inference with ``vllm.LLM``."""

    name = "vllm"
    supported_modes = frozenset({"generate", "choice", "constrained"})

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        trust_remote_code: bool = False,
        batch_size: int = 512,
    ) -> None:
        self._vllm = _import_vllm()
        self.model = model
        self.adapter = adapter
        self.seed = seed
        self.batch_size = batch_size
        self.llm = self._vllm.LLM(
            model=model,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            trust_remote_code=trust_remote_code,
            enable_lora=adapter is not None,
        )
        self._lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("ecellm-adapter", 1, adapter)

    @classmethod
    def open(
        cls,
        model: str | None,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int | None = None,
        **kw: Any,
    ) -> VLLMBackend:
        """Open ``model`` (an HF id or folder) with vLLM; ``batch_size`` None keeps vLLM's own
        large batches (it schedules requests itself)."""
        if model is None:
            raise InputError("the vllm backend needs a model name or folder", field="model")
        if batch_size is not None:
            kw["batch_size"] = batch_size
        return cls(str(model), adapter=adapter, dtype=dtype, **kw)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "adapter": self.adapter,
            "seed": self.seed,
            "temperature": 0.0,
            "supported_modes": sorted(self.supported_modes),
        }

    def _structured(self, spec: dict[str, Any]) -> dict[str, Any]:
        """SamplingParams keyword for a constraint, for either generation of the vLLM API."""
        sp = self._vllm.sampling_params
        if hasattr(sp, "StructuredOutputsParams"):
            return {"structured_outputs": sp.StructuredOutputsParams(**spec)}
        return {"guided_decoding": sp.GuidedDecodingParams(**spec)}

    def _params(self, req: Request) -> Any:
        kw: dict[str, Any] = {"temperature": 0.0, "max_tokens": req.max_new_tokens, "seed": self.seed}
        if req.stop:
            kw["stop"] = list(req.stop)
        if spec := constraint_spec(req):
            kw.update(self._structured(spec))
        return self._vllm.SamplingParams(**kw)

    def _generate(self, reqs: list[Request]) -> Iterator[Completion]:
        start = time.perf_counter()
        outs = self.llm.generate(
            [r.prompt for r in reqs], [self._params(r) for r in reqs], lora_request=self._lora
        )
        per_item = (time.perf_counter() - start) / max(len(reqs), 1)
        for req, out in zip(reqs, outs, strict=True):
            mode = "constrained" if constraint_spec(req) else "generate"
            yield Completion(
                id=req.id,
                text=out.outputs[0].text,
                prompt_tokens=len(out.prompt_token_ids),
                completion_tokens=len(out.outputs[0].token_ids),
                latency_s=per_item,
                mode=mode,
            )

    def _choice(self, req: Request) -> Completion:
        start = time.perf_counter()
        choices = list(req.choices or [])
        tok = self.llm.get_tokenizer()
        n_prompt = len(tok(req.prompt)["input_ids"])
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm.generate([req.prompt + c for c in choices], params, lora_request=self._lora)
        scores: dict[str, float] = {}
        for c, out in zip(choices, outs, strict=True):
            ids, lps = out.prompt_token_ids, out.prompt_logprobs
            scores[c] = float(sum(lps[i][ids[i]].logprob for i in range(max(n_prompt, 1), len(ids))))
        best = max(choices, key=scores.__getitem__)
        return Completion(
            id=req.id,
            text=best,
            prompt_tokens=n_prompt,
            latency_s=time.perf_counter() - start,
            choice_logprobs=scores,
            mode="choice",
        )

    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Generate in batches of ``batch_size`` (vLLM schedules within a batch); choices one by one."""
        batch: list[Request] = []
        for req in requests:
            if req.mode == "choice" and req.choices:
                yield self._choice(req)
                continue
            batch.append(req)
            if len(batch) >= self.batch_size:
                yield from self._generate(batch)
                batch = []
        if batch:
            yield from self._generate(batch)
