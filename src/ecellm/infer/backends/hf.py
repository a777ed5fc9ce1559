"""The ``hf`` backend: transformers models on CPU or GPU, batched, greedy and deterministic.

Speed comes from doing less work rather than from tricks: requests are sorted by prompt length
and batched with left padding (little padding, one ``generate`` call per batch); each task gets
its own ``max_new_tokens`` and stop strings and a batch stops as soon as every row hit EOS or a
stop string; closed-answer tasks are scored in one forward pass instead of generated
(:mod:`ecellm.infer.choice`); greedy decoding of causal models feeds several tokens per forward
pass, grammar-fixed text and guesses the row's own choices confirm (:mod:`ecellm.infer.decode_loop`;
sampling and streaming keep ``generate``); prompt prefixes shared by many requests (preamble +
instruction) are computed once (:mod:`ecellm.infer.prefix`).

Tokenizers whose pad token is their EOS (SmolLM2 pads with ``<|im_end|>``) are handled by
attention masks and position ids computed from the mask, never by looking at pad ids.

Encoder-decoder models (Flan-T5) run every mode too. The prompt is the encoder input, padded by
the tokenizer (bidirectional attention with a mask does not care on which side); the answer is
what the decoder writes after its start token. ``generate`` is ``model.generate`` with the same
budgets and stop strings; ``choice`` scores each candidate as the decoder's log-likelihood of its
tokens (:func:`ecellm.infer.choice.score_batch_seq2seq`); ``constrained`` runs the same grammar
processor inside ``model.generate``, one token per step (jump-forward feeds several decoder
tokens per pass with position ids from the mask, which T5's relative attention bias has no
input for). Shared-prefix caching is off: an encoder state depends on the whole prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

from ecellm.errors import InputError
from ecellm.infer.base import Completion, Request
from ecellm.infer.decode_loop import DRAFT_TOKENS, GreedyProcessor, decode
from ecellm.infer.prefix import PrefixCache, SharedPrefix
from ecellm.models.loading import LoadedModel, cpu_has_native_bf16
from ecellm.prompts import STOP_STRINGS, extract_response
from ecellm.speedups import enabled, scope
from ecellm.speedups.attention import short_query_attention
from ecellm.speedups.packed import packable, packed_linears
from ecellm.speedups.threads import set_threads


class _StopOnStrings:
    """Stopping criterion: a row is finished once its new text contains any stop string."""

    def __init__(self, tokenizer: Any, prompt_len: int, stop: Sequence[str]) -> None:
        self.tokenizer, self.prompt_len, self.stop = tokenizer, prompt_len, tuple(s for s in stop if s)

    def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)


AUTOCAST_CHOICES = ("auto", "bfloat16", "off")


def _autocast_dtype(autocast: str | None, model: Any) -> Any:
    """The autocast dtype for ``autocast`` (``None``/``"off"``: none; ``"bfloat16"``: bf16;
    ``"auto"``: bf16 when fp32 weights run on a CPU with native bf16)."""
    import torch

    if autocast in (None, "off", "none", "float32"):
        return None
    if autocast == "bfloat16":
        return torch.bfloat16
    if autocast != "auto":
        raise ValueError(f"unknown autocast {autocast!r}; choose one of {', '.join(AUTOCAST_CHOICES)}")
    dtype = next(model.parameters()).dtype
    if model.device.type == "cpu" and dtype == torch.float32 and cpu_has_native_bf16():
        return torch.bfloat16
    return None


DECODE_BATCH_FACTOR = {"choice": 1, "constrained": 2, "generate": 3}


class HFBackend:
    """Greedy generation, choice scoring and constrained decoding on a :class:`LoadedModel`."""

    name = "hf"
    supported_modes = frozenset({"generate", "choice", "constrained"})
    supports_sampling = True  # honours Request.temperature / top_p (seeded by the caller)

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int = 8,
        threads: int | None = None,
        share_prefix: bool = True,
        autocast: str | None = "auto",
        speedups: bool | None = None,
        draft_tokens: int | None = None,
    ) -> None:
        self.loaded = loaded
        # None: on unless $ECELLM_SPEEDUPS says off (see ecellm.speedups); the results are the same
        self.speedups = enabled(speedups)
        self.is_seq2seq = bool(loaded.is_seq2seq)
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.batch_size = max(1, int(batch_size))
        with scope(self.speedups):
            self.threads = set_threads(threads) if self.model.device.type == "cpu" else threads
        cfg = self.model.config
        self.max_positions: int | None = getattr(cfg, "max_position_embeddings", None)
        # Reusing a prefix's keys/values is exact only for causal attention: every encoder state
        # of a seq2seq model depends on the whole prompt.
        self.share_prefix = bool(share_prefix) and not self.is_seq2seq
        # Default "auto" = bf16 autocast on CPUs with native bf16: on 200 mixed test samples it
        # ran 1.95x faster than fp32 and changed 13 predictions (6 AVE, 7 AG), no choice or QPR
        # answer, no metric except AG BERTScore (0.4311 -> 0.4299); "off" gives fp32 throughout.
        self.autocast = autocast
        self.autocast_dtype = _autocast_dtype(autocast, self.model)
        self.prefix_stats: dict[str, int] = {}
        # guesses verified per pass in greedy decoding (ecellm.infer.decode_loop); 0: none
        self.draft_tokens = DRAFT_TOKENS if draft_tokens is None else max(0, int(draft_tokens))
        # Called from the decoding thread after every free-generation step with the request ids of
        # the batch's rows and each row's new token id (a server streams replies from it); rows
        # that already ended keep receiving pad ids. None: no per-step calls.
        self.step_listener: Callable[[list[str], list[int]], None] | None = None
        self._packed: dict[int, Any] = {}  # packed weights kept across runs (see packed_linears)

    @classmethod
    def open(
        cls,
        model: str | LoadedModel | None,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int | None = None,
        trust_remote_code: bool = False,
        device: str | None = None,
        **kw: Any,
    ) -> HFBackend:
        """Load ``model`` (any :func:`~ecellm.models.registry.resolve_model` spec, or an already
        loaded :class:`LoadedModel`) and wrap it. ``dtype="float32"`` also turns autocast off,
        so it means fp32 throughout; ``auto`` keeps fp32 weights with bf16 autocast on CPUs
        with native bf16; other dtypes load the weights in that dtype."""
        if isinstance(model, LoadedModel):
            if adapter or dtype != "auto" or trust_remote_code or device:
                raise InputError("a loaded model takes no adapter, dtype, device or trust_remote_code")
            loaded = model
        else:
            from ecellm.models.loading import load_model_and_tokenizer

            loaded = load_model_and_tokenizer(
                model, adapter=adapter, dtype=dtype, device=device, trust_remote_code=trust_remote_code
            )
        if dtype == "float32":
            kw.setdefault("autocast", "off")
        return cls(loaded, batch_size=batch_size or 8, **kw)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 100) -> list[str]:
        """Plain greedy completions of raw prompts, in input order."""
        return generate_texts(
            self.loaded,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=self.batch_size,
            autocast=self.autocast,
        )

    def rows_per_batch(self, mode: str) -> int:
        """Rows per batch: ``batch_size`` for choice scoring (one prompt pass, compute-bound),
        times :data:`DECODE_BATCH_FACTOR` for decoding, where a step costs nearly the same for 8
        rows as for 24 because reading the weights dominates (SmolLM2-135M, 2 CPU threads: 20 AG
        samples took 20.6 s in batches of 8, 16.7 s in one batch; 40 AVE/QPR samples 42.0 s at 8,
        40.4 s at 16 and 45.1 s at 24, as constrained rows feed multi-token chunks; with the
        chunk widths and row dropping of ``decode_loop.decode``, 26.9 s at 16, 25.7 s at 24 and
        28.1 s at 40, so 16 stays)."""
        return self.batch_size * DECODE_BATCH_FACTOR.get(mode, 1)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "batch_size": self.batch_size,
            "rows_per_batch": {m: self.rows_per_batch(m) for m in sorted(self.supported_modes)},
            "decoding": "greedy",
            "threads": self.threads,
            "share_prefix": self.share_prefix,
            # seq2seq models decode through generate(), which takes no guesses
            "draft_tokens": 0 if self.is_seq2seq else self.draft_tokens,
            "autocast": str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else None,
            "speedups": self.speedups,
            "packed_linear_layers": len(packable(self.model)) if self.speedups else 0,
            "device": str(self.model.device),
            "model": self.loaded.describe(),
        }

    # -- tokenisation ---------------------------------------------------------------------
    def encode(self, prompt: str, max_new_tokens: int = 0) -> list[int]:
        """Prompt ids with the tokenizer's BOS (unless the prompt text already starts with it),
        keeping the end of over-long prompts: the answer cue is at the end."""
        tok = self.tokenizer
        bos = tok.bos_token
        add = not (bos and prompt.startswith(bos))
        ids = tok(prompt, add_special_tokens=add)["input_ids"]
        if self.is_seq2seq:
            max_new_tokens = 0  # the answer goes to the decoder, not after the prompt
        if self.max_positions and len(ids) + max_new_tokens > self.max_positions:
            keep = max(1, self.max_positions - max_new_tokens)
            ids = ids[-keep:]
        return ids

    # -- the Backend interface ----------------------------------------------------------------
    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        # short-query attention for decode steps on CPU (see ecellm.speedups.attention); sdpa after
        # and prepacked bf16 linear weights on CPU (see ecellm.speedups.packed)
        with ExitStack() as stack:
            stack.enter_context(scope(self.speedups))
            if not self.is_seq2seq:
                stack.enter_context(short_query_attention(self.model))
            stack.enter_context(packed_linears(self.model, self._packed))
            yield from self._run(requests)

    def _run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        reqs = list(requests)
        encoded = {k: self.encode(r.prompt, r.max_new_tokens) for k, r in enumerate(reqs)}
        prefixes = PrefixCache(self.model, self._compute) if self.share_prefix else None
        if prefixes is not None:
            prefixes.plan(encoded)
        shared = prefixes.prefix_len if prefixes is not None else {}
        # Cheap modes first, so the predictions file fills quickly; then by budget and by the
        # length still to run after the shared prefix (what a batch's padding is made of).
        rank = {"choice": 0, "constrained": 1, "generate": 2}
        order = sorted(
            range(len(reqs)),
            key=lambda k: (
                rank.get(reqs[k].mode, 2),
                reqs[k].max_new_tokens if reqs[k].mode == "generate" else 0,
                len(encoded[k]) - shared.get(k, 0),
                reqs[k].id,
            ),
        )
        batch: list[int] = []
        for k in order:
            r = reqs[k]
            first = reqs[batch[0]] if batch else None
            # choice scoring ignores max_new_tokens and constrained rows carry their own budgets,
            # so only free generation batches by budget
            same_budget = first is None or r.mode != "generate" or r.max_new_tokens == first.max_new_tokens
            if first is not None and (
                r.mode != first.mode or not same_budget or len(batch) >= self.rows_per_batch(first.mode)
            ):
                yield from self._run_batch(
                    [reqs[j] for j in batch], [encoded[j] for j in batch], batch, prefixes
                )
                batch = []
            batch.append(k)
        if batch:
            yield from self._run_batch([reqs[j] for j in batch], [encoded[j] for j in batch], batch, prefixes)
        if prefixes is not None:
            self.prefix_stats = {
                "prefix_tokens_run": prefixes.computed_tokens,
                "prefix_tokens_saved": prefixes.saved_tokens,
                "prompt_tokens": sum(len(v) for v in encoded.values()),
            }

    def _run_batch(
        self, batch: list[Request], ids: list[list[int]], keys: list[int], prefixes: PrefixCache | None
    ) -> list[Completion]:
        t0 = time.perf_counter()
        pad = self._pad_id()
        shared = prefixes.batch(keys, pad) if prefixes is not None else None
        mode = batch[0].mode
        if self.is_seq2seq:
            out = self._seq2seq(batch, ids, mode)
        elif mode == "choice":
            out = self._choice(batch, ids, shared)
        elif mode == "constrained":
            out = self._generate(batch, ids, shared, constrained=True)
        else:
            out = self._generate(batch, ids, shared, constrained=False)
        if prefixes is not None:
            prefixes.release(keys)
        per = (time.perf_counter() - t0) / len(batch)
        for c in out:
            c.latency_s = round(per, 6)
        return out

    def _decoding(
        self, batch: list[Request], width: int, constrained: bool, **config_kw: Any
    ) -> tuple[Any, Any, Any, Any]:
        """Logits processors, stopping criteria, the grammar processor (or None) and the greedy
        generation config of one batch; ``width`` is the prompt length in the sequences that
        generate() passes to processors and criteria."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from ecellm.infer.constrained import GrammarProcessor
        from ecellm.infer.grammars import grammar_for

        tok = self.tokenizer
        stop = _stop_strings(batch)
        processors, criteria, proc = LogitsProcessorList(), StoppingCriteriaList(), None
        if constrained:
            grammars = [grammar_for(r.constraint) for r in batch]
            proc = GrammarProcessor(tok, grammars, width, [r.max_new_tokens for r in batch])
            processors.append(proc)
        elif stop:
            criteria.append(_StopOnStrings(tok, width, stop))
        # a preset's sampling (ecellm.infer.decoding) is the same for every request of a run
        sampling = (
            {"do_sample": True, "temperature": batch[0].temperature, "top_p": batch[0].top_p}
            if batch[0].temperature > 0 and not constrained
            else {"do_sample": False}
        )
        config = GenerationConfig(
            max_new_tokens=max(r.max_new_tokens for r in batch),
            **sampling,
            num_beams=1,
            pad_token_id=self._pad_id(),
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
            **config_kw,
        )
        return processors, criteria, proc, config

    def _greedy(
        self,
        input_ids: Any,
        mask: Any,
        config: Any,
        processors: Any,
        criteria: Any,
        cache: Any = None,
        rows: list[str] | None = None,
    ) -> Any:
        """``model.generate`` under the backend's numeric context.

        no_grad rather than inference_mode: autocast reuses its bf16 weight copies across decode
        steps only outside inference mode (1.8x faster steps when autocasting)."""
        import torch

        from ecellm.speedups.kvcache import decode_cache

        # a cache that grows in place instead of being concatenated at every step; an
        # encoder-decoder keeps generate()'s own two-part cache
        extra: dict[str, Any] = {} if self.is_seq2seq else {"cache": decode_cache(self.model, cache)}
        if self.step_listener is not None and rows is not None:
            extra["streamer"] = _StepStreamer(self.step_listener, rows)
        with torch.no_grad(), self._compute():
            return self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=criteria,
                **extra,
            )

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def _compute(self) -> AbstractContextManager[Any]:
        """The numeric context of every forward pass: bf16 autocast or plain (see ``autocast``)."""
        if self.autocast_dtype is None:
            return nullcontext()
        import torch

        return torch.autocast(self.model.device.type, dtype=self.autocast_dtype)

    # -- modes ----------------------------------------------------------------------------------
    def _choice(
        self, batch: list[Request], ids: list[list[int]], shared: SharedPrefix | None
    ) -> list[Completion]:
        from ecellm.infer.choice import score_batch

        texts = _choice_texts(batch)
        with self._compute():
            scores = score_batch(self.model, self.tokenizer, ids, [r.prompt for r in batch], texts, shared)
        return self._choice_completions(batch, ids, scores)

    def _choice_completions(
        self, batch: list[Request], ids: list[list[int]], scores: list[list[float]]
    ) -> list[Completion]:
        """The best-scoring choice of each request, with every choice's score."""
        out = []
        for r, p, sc in zip(batch, ids, scores, strict=True):
            best = max(range(len(sc)), key=lambda k: (sc[k], -k))  # ties: the first choice
            out.append(
                Completion(
                    id=r.id,
                    text=r.choices[best],
                    raw=None,
                    prompt_tokens=len(p),
                    completion_tokens=0,
                    mode="choice",
                    choice_logprobs={c: round(s, 6) for c, s in zip(r.choices, sc, strict=True)},
                )
            )
        return out

    def _generate(
        self, batch: list[Request], ids: list[list[int]], shared: SharedPrefix | None, *, constrained: bool
    ) -> list[Completion]:
        import torch

        from ecellm.infer.choice import _left_pad

        pad = self._pad_id()
        cache = None
        if shared is None:
            input_ids, mask = _left_pad(ids, pad, self.model.device)
        else:
            # generate() runs only the ids after the cache's length; the prefix ids and mask go in
            # front so positions (cumsum of the mask) and attention cover the whole prompt
            suffix_ids, suffix_mask = _left_pad(
                [p[n:] for p, n in zip(ids, shared.lengths, strict=True)], pad, self.model.device
            )
            input_ids = torch.cat([shared.ids.to(suffix_ids.device), suffix_ids], dim=1)
            mask = torch.cat([shared.mask.to(suffix_mask.device), suffix_mask], dim=1)
            cache = shared.cache()
        width = input_ids.shape[1]
        processors, criteria, proc, config = self._decoding(batch, width, constrained)
        loop = proc
        if loop is None and not config.do_sample and self.step_listener is None:
            loop = GreedyProcessor(self.tokenizer, [r.max_new_tokens for r in batch], _stop_strings(batch))
        if loop is not None:
            # several tokens per pass: grammar-fixed text and confirmed guesses (decode_loop)
            with torch.no_grad(), self._compute():
                new = decode(
                    self.model,
                    input_ids,
                    mask,
                    cache,
                    loop,
                    config.max_new_tokens,
                    pad,
                    draft_tokens=self.draft_tokens,
                )
        else:
            rows = [r.id for r in batch]
            seqs = self._greedy(input_ids, mask, config, processors, criteria, cache=cache, rows=rows)
            new = seqs[:, width:].tolist()
        return self._completions(batch, ids, new, proc, constrained=constrained)

    def _completions(
        self,
        batch: list[Request],
        ids: list[list[int]],
        new: list[list[int]],
        proc: Any,
        *,
        constrained: bool,
    ) -> list[Completion]:
        """Completions from each row's new token ids (``proc``: the grammar processor, if any)."""
        tok = self.tokenizer
        out = []
        for b, r in enumerate(batch):
            toks = _until_eos(new[b], tok.eos_token_id)
            if proc is not None:
                # the grammar checked these exact token texts (the processor never sees the last)
                raw = "".join(proc.tok_text[t] for t in toks)
                text = raw
            else:
                raw = tok.decode(toks, skip_special_tokens=True)
                # new text only: cut at the first stop string before any marker handling, so a
                # model that writes a second "### Response:" keeps its first answer
                text = extract_response(cut_at_stop(raw, r.stop or STOP_STRINGS), r.stop or STOP_STRINGS)
            if r.postprocess is not None:  # the task's answer form under the template
                text = r.postprocess(text)
            out.append(
                Completion(
                    id=r.id,
                    text=text,
                    raw=raw,
                    prompt_tokens=len(ids[b]),
                    completion_tokens=len(toks),
                    mode="constrained" if constrained else "generate",
                )
            )
        return out

    # -- encoder-decoder models ------------------------------------------------------------------
    def _decoder_start_id(self) -> int:
        """The id the decoder starts from (T5: the pad id)."""
        for cfg in (getattr(self.model, "generation_config", None), self.model.config):
            start = getattr(cfg, "decoder_start_token_id", None)
            if start is not None:
                return int(start)
        return self._pad_id()

    def _seq2seq(self, batch: list[Request], ids: list[list[int]], mode: str) -> list[Completion]:
        """One batch of an encoder-decoder model in ``mode`` (see the module docstring)."""

        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        input_ids = enc["input_ids"].to(self.model.device)
        mask = enc["attention_mask"].to(self.model.device)
        if mode == "choice":
            from ecellm.infer.choice import score_batch_seq2seq

            texts = _choice_texts(batch)
            with self._compute():
                scores = score_batch_seq2seq(
                    self.model,
                    self.tokenizer,
                    input_ids,
                    mask,
                    texts,
                    self._decoder_start_id(),
                    self._pad_id(),
                )
            return self._choice_completions(batch, ids, scores)

        constrained = mode == "constrained"
        # the decoder sequences generate() passes to processors and criteria begin with the start
        # token, so "the prompt" is one token long there
        processors, criteria, proc, config = self._decoding(
            batch, 1, constrained, decoder_start_token_id=self._decoder_start_id()
        )
        rows = None if constrained else [r.id for r in batch]
        seqs = self._greedy(input_ids, mask, config, processors, criteria, rows=rows)
        return self._completions(batch, ids, seqs[:, 1:].tolist(), proc, constrained=constrained)


class _StepStreamer:
    """transformers' streamer protocol, relaying each decoding step's new tokens by row; the
    first ``put`` carries the prompt (or the decoder's start ids) and is skipped."""

    def __init__(self, listener: Callable[[list[str], list[int]], None], rows: list[str]) -> None:
        self.listener, self.rows, self.started = listener, rows, False

    def put(self, value: Any) -> None:
        if not self.started:
            self.started = True
            return
        self.listener(self.rows, [int(t) for t in value.reshape(-1).tolist()])

    def end(self) -> None:
        pass


def _stop_strings(batch: list[Request]) -> tuple[str, ...]:
    """Every stop string of the batch's requests, sorted: a row stops at any of them."""
    return tuple(sorted({s for r in batch for s in r.stop}))


def _choice_texts(batch: list[Request]) -> list[list[str]]:
    """The texts each choice request scores (``score_texts``, default its choices)."""
    texts = []
    for r in batch:
        if not r.choices:
            raise ValueError(f"request {r.id}: choice mode needs choices")
        texts.append(list(r.score_texts or r.choices))
    return texts


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` before the earliest stop string."""
    cuts = [i for s in stop if s and (i := text.find(s)) >= 0]
    return text[: min(cuts)] if cuts else text


def _until_eos(tokens: list[int], eos: int | list[int] | None) -> list[int]:
    """Generated ids up to (excluding) the first EOS; padding after it is dropped too."""
    stops = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[:i]
    return tokens


def generate_texts(
    loaded: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 100,
    stop: Sequence[str] = STOP_STRINGS,
    batch_size: int = 8,
    autocast: str | None = "auto",
) -> list[str]:
    """Plain greedy generation for a list of prompts, returned in input order (answer text cut
    at the first stop string and stripped)."""
    backend = HFBackend(loaded, batch_size=batch_size, autocast=autocast)
    reqs = [
        Request(id=str(i), prompt=p, max_new_tokens=max_new_tokens, stop=tuple(stop))
        for i, p in enumerate(prompts)
    ]
    done = {c.id: c.text for c in backend.run(reqs)}
    return [done[str(i)] for i in range(len(prompts))]
