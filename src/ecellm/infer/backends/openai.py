"""Backend for any OpenAI-compatible endpoint: OpenAI, gateways, vLLM, llama.cpp, ``ecellm serve``.

This is how the paper's API baselines (GPT-4, Gemini, Claude through a compatible gateway) are
run: same prompts, same parsers, same scorer as local models. Design points:

- the base URL comes from the argument or ``$OPENAI_BASE_URL``; the key only from the
  environment variable named by ``api_key_env`` and it never appears in :meth:`describe`,
  errors or logs;
- requests run on a small thread pool (``concurrency``) and completions are yielded as they
  finish, so the predict loop appends them at once and a killed run resumes;
- 429, 5xx and connection errors are retried with exponential backoff and jitter, honouring
  ``Retry-After`` (and OpenAI's ``retry-after-ms``); other 4xx fail at once because repeating
  a bad request cannot help;
- ``requests_per_minute`` spaces request starts evenly so a quota is not hit in bursts;
- decoding is greedy (temperature 0) and stop strings are also cut client-side because some
  servers accept at most four and some return the stop text.

Modes: ``generate`` always. ``choice`` is scored by prompt log-likelihood when
``choice_scoring="echo"`` and the server supports ``echo`` + ``logprobs`` on ``/completions``
(ecellm serve, vLLM, llama.cpp; not OpenAI's chat models); otherwise ``choice`` requests are
generated freely and the completion records ``mode="generate"`` so the evaluator knows the
answer was parsed from free text. ``constrained`` requests are sent with the task's constraint
when ``constraint_field`` names how the server takes one (opt-in: a server that does not know
the field may reject the request or silently ignore it):

- ``guided_regex``: the spec's regex as vLLM's ``guided_regex`` extra parameter (vLLM < 0.11);
- ``structured_outputs``: ``{"regex": ...}`` as vLLM's ``structured_outputs`` parameter;
- ``grammar``: the spec's GBNF grammar (llama.cpp's server).

Otherwise they are generated freely, recorded as ``mode="generate"``.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from ecellm.errors import EnvironmentProblem, InputError
from ecellm.infer.backends import refuse_fixed
from ecellm.infer.base import Completion, Request
from ecellm.infer.structured import to_gbnf, to_regex
from ecellm.serve.security import is_loopback

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_STOP = 4  # the OpenAI API rejects more stop sequences
ConstraintField = Literal["guided_regex", "structured_outputs", "grammar"]
CONSTRAINT_FIELDS: tuple[str, ...] = ("guided_regex", "structured_outputs", "grammar")


class OpenAIError(EnvironmentProblem):
    """A request that failed for good (non-retryable status, or retries exhausted); the CLI
    reports it in one line with exit code 3 (the server or its key, not the command, is at fault)."""


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart, across threads."""

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _redact_url(url: str) -> str:
    """Drop ``user:password@`` and the query string, which may carry credentials."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class OpenAIBackend:
    """Run :class:`Request` objects against an OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        requests_per_minute: float | None = None,
        timeout: float = 120.0,
        chat: bool = True,
        system_prompt: str | None = None,
        choice_scoring: Literal["generate", "echo"] = "generate",
        max_tokens_field: str = "max_tokens",
        seed: int | None = None,
        extra_body: dict[str, Any] | None = None,
        constraint_field: ConstraintField | None = None,
    ) -> None:
        if concurrency < 1:
            raise InputError("concurrency must be at least 1", field="concurrency")
        if max_retries < 0:
            raise InputError("max_retries must be >= 0", field="max_retries")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env)
        host = urlsplit(self.base_url).hostname or ""
        if not key and not is_loopback(host):  # a local test server may run without auth
            raise InputError(
                f"no API key: set the environment variable ${api_key_env} for {host}", field="api_key"
            )
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.requests_per_minute = requests_per_minute
        self.chat = chat
        self.system_prompt = system_prompt
        self.choice_scoring = choice_scoring
        self.max_tokens_field = max_tokens_field
        self.seed = seed
        self.extra_body = dict(extra_body or {})
        if constraint_field is not None and constraint_field not in CONSTRAINT_FIELDS:
            known = ", ".join(CONSTRAINT_FIELDS)
            raise InputError(
                f"unknown constraint_field {constraint_field!r}; choose one of {known}",
                field="constraint_field",
            )
        self.constraint_field = constraint_field
        modes = {"generate", "choice"} if choice_scoring == "echo" else {"generate"}
        self.supported_modes = frozenset(modes | ({"constrained"} if constraint_field else set()))
        self._limiter = RateLimiter(requests_per_minute)
        self._random = random.Random()
        self._stats = {"http_requests": 0, "retries": 0}
        self._stats_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        """HTTP attempts and retries so far (for the manifest and for tests)."""
        with self._stats_lock:
            return dict(self._stats)

    @classmethod
    def open(
        cls,
        model: str | None,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int | None = None,
        **kw: Any,
    ) -> OpenAIBackend:
        """Talk to the server's ``model``. The server owns weights and precision, so ``adapter``
        and ``dtype`` are refused; parallelism is ``concurrency``, so ``batch_size`` (a hint)
        is ignored."""
        refuse_fixed(cls.name, adapter=adapter, dtype=dtype)
        if not model:
            raise InputError("the openai backend needs the server's model name", field="model")
        return cls(str(model), **kw)

    def describe(self) -> dict[str, Any]:
        """Settings for the run manifest; names the key's variable, never its value."""
        modes = (
            "choice is scored by echo+logprobs"
            if self.choice_scoring == "echo"
            else "choice runs as generate"
        )
        if not self.constraint_field:
            modes += "; constrained runs as generate (answers parsed from free text)"
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": _redact_url(self.base_url),
            "api_key_env": self.api_key_env,
            "endpoint": "chat/completions" if self.chat else "completions",
            "temperature": 0.0,
            "seed": self.seed,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "backoff": self.backoff,
            "requests_per_minute": self.requests_per_minute,
            "supported_modes": sorted(self.supported_modes),
            "mode_fallback": modes,
            "constraint_field": self.constraint_field,
            "system_prompt": self.system_prompt,
            "stats": self.stats,
        }

    # -- HTTP ------------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] += 1

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (server := retry_after_seconds(response.headers)) is not None:
            return server
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + 0.5 * self._random.random())  # jitter spreads retries of parallel workers

    def post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """POST with retries; returns the JSON body and the latency of the successful attempt."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            self._limiter.acquire()
            self._count("http_requests")
            start = time.perf_counter()
            response: httpx.Response | None = None
            try:
                response = self._client.post(path, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                latency = time.perf_counter() - start
                if response.status_code == 200:
                    try:
                        return response.json(), latency
                    except ValueError as exc:
                        raise OpenAIError(f"{path}: server returned invalid JSON") from exc
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise OpenAIError(f"{_redact_url(self.base_url)}{path}: {last}")
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, response))
        raise OpenAIError(
            f"{_redact_url(self.base_url)}{path}: gave up after {self.max_retries + 1} attempts; last: {last}"
        )

    # -- one request -----------------------------------------------------------------------
    def _body(self, max_tokens: int, stop: tuple[str, ...]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "temperature": 0.0, self.max_tokens_field: max_tokens}
        if stop:
            body["stop"] = list(stop[:MAX_STOP])
        if self.seed is not None:
            body["seed"] = self.seed
        body.update(self.extra_body)
        return body

    def _constrain(self, req: Request, body: dict[str, Any]) -> bool:
        """Add the request's constraint to ``body`` in the server's field; whether one was added."""
        spec = req.constraint if req.mode == "constrained" else None
        if spec is None or not self.constraint_field:
            return False
        if self.constraint_field == "grammar":
            body["grammar"] = to_gbnf(spec)
        elif self.constraint_field == "guided_regex":
            body["guided_regex"] = to_regex(spec)
        else:
            body["structured_outputs"] = {"regex": to_regex(spec)}
        body.pop("stop", None)  # the constraint ends the answer; a stop string could cut it
        return True

    def _generate(self, req: Request) -> Completion:
        body = self._body(req.max_new_tokens, req.stop)
        constrained = self._constrain(req, body)
        if self.chat:
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            body["messages"] = [*messages, {"role": "user", "content": req.prompt}]
            data, latency = self.post("/chat/completions", body)
        else:
            body["prompt"] = req.prompt
            data, latency = self.post("/completions", body)
        try:
            choice = data["choices"][0]
            text = (choice["message"].get("content") if self.chat else choice["text"]) or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise OpenAIError(f"response for request {req.id} has no completion text") from exc
        for s in () if constrained else req.stop:  # some servers keep the stop text or take only 4
            if s and (i := text.find(s)) >= 0:
                text = text[:i]
        usage = data.get("usage") or {}
        return Completion(
            id=req.id,
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            mode="constrained" if constrained else "generate",
        )

    def _choice(self, req: Request) -> Completion:
        """Score each choice by the summed log-probability of its tokens after the prompt."""
        choices = list(req.choices or [])
        body = self._body(1, ())
        body.update(prompt=[req.prompt + c for c in choices], echo=True, logprobs=0)
        data, latency = self.post("/completions", body)
        by_index = {c.get("index", i): c for i, c in enumerate(data.get("choices") or [])}
        scores: dict[str, float] = {}
        start = len(req.prompt)
        for i, c in enumerate(choices):
            lp = (by_index.get(i) or {}).get("logprobs") or {}
            offsets, values = lp.get("text_offset") or [], lp.get("token_logprobs") or []
            if not offsets:
                raise OpenAIError(
                    f"request {req.id}: server returned no echo logprobs; use choice_scoring='generate'"
                )
            end = start + len(c)
            scores[c] = float(
                sum(v for o, v in zip(offsets, values, strict=False) if start <= o < end and v is not None)
            )
        best = max(choices, key=lambda c: scores[c])  # first of equal scores: deterministic
        usage = data.get("usage") or {}
        return Completion(
            id=req.id,
            text=best,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=0,
            latency_s=latency,
            choice_logprobs=scores,
            mode="choice",
        )

    def complete(self, req: Request) -> Completion:
        """One request, synchronously (the thread-pool worker)."""
        if req.mode == "choice" and req.choices and self.choice_scoring == "echo":
            return self._choice(req)
        return self._generate(req)

    def run(self, requests: Iterable[Request]) -> Iterator[Completion]:
        """Yield completions as they finish; at most ``2 * concurrency`` requests are in flight.

        The first request that fails for good stops the run (pending ones are cancelled) so
        the predictions file never silently misses rows.
        """
        it = iter(requests)
        window = 2 * self.concurrency
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ecellm-openai") as pool:
            pending: set[Future[Completion]] = set()
            exhausted = False
            try:
                while pending or not exhausted:
                    while not exhausted and len(pending) < window:
                        req = next(it, None)
                        if req is None:
                            exhausted = True
                        else:
                            pending.add(pool.submit(self.complete, req))
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            finally:
                for fut in pending:
                    fut.cancel()
