"""The prompt side of ``ecellm serve``: chat rendering, token counts and prompt scoring.

Generation does not happen here: it runs on the ``hf`` inference backend (the one ``ecellm
predict`` uses) through :class:`ecellm.serve.batching.Batcher`, which also runs :meth:`Engine.score`
on its model thread, so no two forward passes overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecellm.models.loading import LoadedModel


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
    """Prompt rendering, counting and scoring on one :class:`LoadedModel`."""

    def __init__(self, loaded: LoadedModel, *, template: str = "chat") -> None:
        self.loaded = loaded
        self.template = template  # how chat messages become a prompt (ecellm.prompts.render_chat)
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
        with torch.inference_mode():
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
