"""``POST /v1/completions`` and ``POST /v1/chat/completions``, on the shared batcher.

Every prompt becomes one :class:`ecellm.infer.base.Request` (free generation) queued on
:class:`ecellm.serve.batching.Batcher`, so concurrent HTTP requests share the backend's
batches. The reply text is the backend's raw decoded text cut at the request's stop strings
(not the answer extraction ``ecellm predict`` applies: an OpenAI client gets the model's
words). ``finish_reason`` is ``"stop"`` when a stop string or the end-of-sequence token ended
the reply, else ``"length"``.

``stream: true`` answers with server-sent events in OpenAI's chunk format, one event per
decoding step that produced final text, ending with ``data: [DONE]``;
``stream_options.include_usage`` adds the usage chunk. ``logprobs``/``echo`` score the text in
one extra forward pass on the model thread (not with ``stream``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from ecellm.infer.base import Completion, Request
from ecellm.serve.batching import Batcher, ServerClosing
from ecellm.serve.engine import Engine, cut_at_stop
from ecellm.serve.metrics import Metrics
from ecellm.serve.schemas import ChatRequest, CompletionRequest
from ecellm.serve.streaming import DONE, TextStream, event


class Reply:
    """One prompt's finished reply in OpenAI terms."""

    def __init__(self, completion: Completion | None, prompt_tokens: int, max_tokens: int, stop: list[str]):
        raw = (completion.raw if completion.raw is not None else completion.text) if completion else ""
        self.text, hit_stop = cut_at_stop(raw, stop)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion.completion_tokens if completion else 0
        ended = self.completion_tokens < max_tokens  # the end-of-sequence token came first
        self.finish_reason = "stop" if hit_stop or ended else "length"


def usage(replies: list[Reply]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def build_router(
    *,
    engine: Engine,
    batcher: Batcher,
    metrics: Metrics,
    name: str,
    check_model: Callable[[str | None], None],
    check_budget: Callable[[int, int], None],
    chat_default_tokens: int,
) -> APIRouter:
    """The two generation endpoints (authorisation is added by the caller)."""
    router = APIRouter()
    tok = engine.tokenizer

    def count_prompts(prompts: list[str], max_tokens: int) -> list[int]:
        counts = [len(_encode(engine, p)) for p in prompts]
        if engine.max_context and max(counts) + max_tokens > engine.max_context:
            raise HTTPException(
                status_code=400,
                detail=f"prompt ({max(counts)} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
                f"context of {engine.max_context} tokens",
            )
        return counts

    def requests_for(prompts: list[str], max_tokens: int, stop: list[str], body: Any) -> list[Request]:
        return [
            Request(
                id=str(i),
                prompt=p,
                max_new_tokens=max_tokens,
                stop=tuple(stop),
                temperature=body.temperature,
                top_p=body.top_p,
            )
            for i, p in enumerate(prompts)
        ]

    async def decode(prompts: list[str], counts: list[int], max_tokens: int, stop: list[str], body: Any):
        if max_tokens == 0:
            comps: list[Completion | None] = [None] * len(prompts)
        else:
            comps = list(await batcher.run(requests_for(prompts, max_tokens, stop, body), seed=body.seed))
        replies = [Reply(c, n, max_tokens, stop) for c, n in zip(comps, counts, strict=True)]
        metrics.record_tokens(sum(counts), sum(r.completion_tokens for r in replies))
        return replies

    def stream(
        prompts: list[str], counts: list[int], max_tokens: int, stop: list[str], body: Any, shape: Callable
    ) -> StreamingResponse:
        """SSE response; ``shape(index, delta, finish_reason)`` builds one chunk's choice."""
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        created, cid = (
            int(time.time()),
            f"{'chatcmpl' if shape is _chat_choice else 'cmpl'}-{uuid.uuid4().hex}",
        )
        kind = "chat.completion.chunk" if shape is _chat_choice else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            return event(
                {"id": cid, "object": kind, "created": created, "model": name, "choices": choices, **extra}
            )

        async def events() -> AsyncIterator[str]:
            texts = [TextStream(tok, stop, tok.eos_token_id) for _ in prompts]
            queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
            if shape is _chat_choice:
                yield chunk(
                    [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
                )
            if max_tokens == 0:
                task = asyncio.ensure_future(decode(prompts, counts, 0, stop, body))
            else:
                reqs = requests_for(prompts, max_tokens, stop, body)
                run = batcher.run(reqs, seed=body.seed, on_token=lambda i, t: queue.put_nowait((i, t)))
                task = asyncio.ensure_future(run)
            try:
                while not (task.done() and queue.empty()):
                    getter = asyncio.ensure_future(queue.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    i, token = getter.result()
                    delta = texts[i].push(token)
                    if delta:
                        yield chunk([shape(i, delta, None)])
                result = task.result()
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception as exc:  # after the headers went out: report in-band, then end
                closing = isinstance(exc, ServerClosing)
                yield event(
                    {
                        "error": {
                            "message": str(exc) if closing else f"generation failed ({type(exc).__name__})",
                            "type": "server_error",
                            "param": None,
                            "code": "server_shutting_down" if closing else "internal_error",
                        }
                    }
                )
                yield DONE
                return
            if max_tokens == 0:
                replies = result
            else:
                replies = [Reply(c, n, max_tokens, stop) for c, n in zip(result, counts, strict=True)]
                metrics.record_tokens(sum(counts), sum(r.completion_tokens for r in replies))
            for i, reply in enumerate(replies):
                yield chunk([shape(i, texts[i].finish(reply.text), reply.finish_reason)])
            if include_usage:
                yield chunk([], usage=usage(replies))
            yield DONE

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.post("/v1/completions")
    async def completions(body: CompletionRequest) -> Any:
        check_model(body.model)
        prompts = body.prompts()
        check_budget(body.max_tokens, len(prompts))
        counts = count_prompts(prompts, body.max_tokens)
        stop = body.stop_list()
        if body.stream:
            if body.logprobs is not None or body.echo:
                raise HTTPException(status_code=400, detail="stream cannot be combined with logprobs or echo")
            return stream(prompts, counts, body.max_tokens, stop, body, _completion_choice)
        try:
            replies = await decode(prompts, counts, body.max_tokens, stop, body)
            choices = []
            for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
                logprobs = None
                if body.logprobs is not None:
                    scores = await batcher.call(engine.score, prompt + reply.text, top_k=body.logprobs)
                    logprobs = (scores if body.echo else scores.after(len(prompt))).as_dict()
                text = prompt + reply.text if body.echo else reply.text
                choices.append(
                    {"index": i, "text": text, "logprobs": logprobs, "finish_reason": reply.finish_reason}
                )
        except ValueError as exc:  # unsupported scoring (seq2seq), context overflow while scoring
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": usage(replies),
        }

    @router.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> Any:
        check_model(body.model)
        max_tokens = body.token_budget(default=chat_default_tokens)
        check_budget(max_tokens, 1)
        try:
            prompt = engine.chat_prompt([{"role": m.role, "content": m.text()} for m in body.messages])
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        counts = count_prompts([prompt], max_tokens)
        stop = body.stop_list() or engine.chat_stop()
        if body.stream:
            return stream([prompt], counts, max_tokens, stop, body, _chat_choice)
        (reply,) = await decode([prompt], counts, max_tokens, stop, body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "usage": usage([reply]),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason,
                }
            ],
        }

    return router


def _completion_choice(index: int, delta: str, finish: str | None) -> dict[str, Any]:
    return {"index": index, "text": delta, "logprobs": None, "finish_reason": finish}


def _chat_choice(index: int, delta: str, finish: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "delta": {"content": delta} if delta or finish is None else {},
        "finish_reason": finish,
    }


def _encode(engine: Engine, prompt: str) -> list[int]:
    """Prompt ids as the ``hf`` backend encodes them (its BOS rule), without its truncation."""
    tok = engine.tokenizer
    bos = tok.bos_token
    return tok(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"]
