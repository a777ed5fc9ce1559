"""The model side of ``ecellm serve``: greedy generation and prompt scoring on a loaded model.

The HTTP layer (:mod:`ecellm.serve.app`) only validates requests and shapes responses; this
module owns every call into torch so the app can be tested and reasoned about separately.
One lock serialises model calls: a CPU model gains nothing from running two forward passes at
once, and transformers models are not documented as thread-safe.

Decoding follows ecellm's defaults: ``temperature == 0`` is greedy; a positive temperature
samples with a seeded generator (``seed`` defaults to 0) so repeated requests still give the
same text.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ecellm.models.loading import LoadedModel


@dataclass
class Generation:
    """One generated completion with the counts the OpenAI ``usage`` block needs."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (stop string or end-of-sequence) or "length"


@dataclass
class TokenScores:
    """Per-token log-probabilities in the layout of the OpenAI completions ``logprobs`` field."""

    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)

    def after(self, char: int) -> TokenScores:
        """Only the tokens that start at or after character ``char`` (the completion part)."""
        keep = [i for i, off in enumerate(self.text_offset) if off >= char]
        return TokenScores(
            tokens=[self.tokens[i] for i in keep],
            token_logprobs=[self.token_logprobs[i] for i in keep],
            top_logprobs=[self.top_logprobs[i] for i in keep],
            text_offset=[self.text_offset[i] for i in keep],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        }


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; report whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class Engine:
    """Generation and scoring on one :class:`LoadedModel`, safe to call from server threads."""

    def __init__(self, loaded: LoadedModel, *, max_batch: int = 8, template: str = "chat") -> None:
        self.loaded = loaded
        self.max_batch = max_batch
        self.template = template  # how chat messages become a prompt (ecellm.prompts.render_chat)
        self._lock = threading.Lock()
        config = loaded.model.config
        self.max_context: int | None = getattr(config, "max_position_embeddings", None)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    def count_tokens(self, text: str, *, add_special_tokens: bool = True) -> int:
        return len(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages in the format the model was tuned on: the tokenizer's chat template
        or a paper template (see :func:`ecellm.prompts.render_chat`)."""
        from ecellm.prompts import render_chat

        return render_chat(messages, self.template, self.tokenizer)

    def chat_stop(self) -> list[str]:
        """Stop strings for chat replies: a paper template's section markers (a chat template ends
        turns with its own end-of-turn token)."""
        from ecellm.prompts import STOP_STRINGS

        return [] if self.template == "chat" else list(STOP_STRINGS)

    # -- generation ------------------------------------------------------------------------
    def generate(
        self,
        prompts: list[str],
        *,
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        add_special_tokens: bool = True,
    ) -> list[Generation]:
        """Complete each prompt; batches of ``max_batch`` prompts share one ``generate`` call.

        ``add_special_tokens`` is off for chat prompts because the chat template already
        inserted the BOS token where the model expects it.
        """
        stop = [s for s in (stop or []) if s]
        out: list[Generation] = []
        for start in range(0, len(prompts), self.max_batch):
            batch = prompts[start : start + self.max_batch]
            out.extend(
                self._generate_batch(batch, max_tokens, stop, temperature, top_p, seed, add_special_tokens)
            )
        return out

    def _generate_batch(
        self,
        prompts: list[str],
        max_tokens: int,
        stop: list[str],
        temperature: float,
        top_p: float,
        seed: int | None,
        add_special_tokens: bool,
    ) -> list[Generation]:
        import torch

        tok, model = self.tokenizer, self.loaded.model
        enc = tok(
            prompts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=add_special_tokens,
        )
        prompt_lens = [int(m.sum()) for m in enc["attention_mask"]]
        if self.max_context and max(prompt_lens) + max_tokens > self.max_context:
            raise ValueError(
                f"prompt ({max(prompt_lens)} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
                f"context of {self.max_context} tokens"
            )
        if max_tokens == 0:
            return [Generation("", n, 0, "length") for n in prompt_lens]
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tok.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False)
        if stop:  # stop early; the text is still cut below because a stop may end mid-token
            kwargs.update(stop_strings=stop, tokenizer=tok)
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        with self._lock, torch.inference_mode():
            if temperature > 0:
                torch.manual_seed(0 if seed is None else seed)
            ids = model.generate(**enc, **kwargs)
        if not self.loaded.is_seq2seq:
            ids = ids[:, enc["input_ids"].shape[1] :]
        eos = _eos_ids(model, tok)
        results = []
        for row, n_prompt in zip(ids.tolist(), prompt_lens, strict=True):
            if self.loaded.is_seq2seq and row and row[0] == model.config.decoder_start_token_id:
                row = row[1:]
            n_gen = next((i for i, t in enumerate(row) if t in eos), len(row))
            hit_eos = n_gen < len(row)
            text, hit_stop = cut_at_stop(tok.decode(row[:n_gen], skip_special_tokens=True), stop)
            finish = "stop" if hit_stop or hit_eos else "length"
            results.append(Generation(text, n_prompt, n_gen, finish))
        return results

    # -- scoring ---------------------------------------------------------------------------
    def score(self, text: str, *, top_k: int = 0, add_special_tokens: bool = True) -> TokenScores:
        """Log-probability of every token of ``text`` given the tokens before it.

        This is what ``echo`` + ``logprobs`` return, and what a client sums over an answer's
        tokens to pick the most likely choice. The first token has no context, so its
        log-probability is ``None`` as in the OpenAI API.
        """
        import torch

        if self.loaded.is_seq2seq:
            raise ValueError("logprobs are only supported for decoder-only models")
        tok, model = self.tokenizer, self.loaded.model
        enc = tok(text, return_offsets_mapping=True, add_special_tokens=add_special_tokens)
        ids: list[int] = enc["input_ids"]
        offsets: list[tuple[int, int]] = enc["offset_mapping"]
        if self.max_context and len(ids) > self.max_context:
            raise ValueError(
                f"text has {len(ids)} tokens, more than the model's context of {self.max_context}"
            )
        device = next(model.parameters()).device
        with self._lock, torch.inference_mode():
            logits = model(torch.tensor([ids], device=device)).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        scores = TokenScores()
        for i, tid in enumerate(ids):
            start, end = offsets[i]
            piece = text[start:end] if end > start else tok.decode([tid])
            scores.tokens.append(piece)
            scores.text_offset.append(int(start))
            if i == 0:
                scores.token_logprobs.append(None)
                scores.top_logprobs.append(None)
                continue
            row = logp[i - 1]
            scores.token_logprobs.append(float(row[tid]))
            if top_k > 0:
                vals, idx = torch.topk(row, top_k)
                scores.top_logprobs.append(
                    {tok.decode([int(j)]): float(v) for v, j in zip(vals, idx, strict=True)}
                )
            else:
                scores.top_logprobs.append(None)
        return scores


def _eos_ids(model: Any, tok: Any) -> set[int]:
    """Every token id that ends a sequence (generation configs may list several)."""
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tok.eos_token_id, tok.pad_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids
