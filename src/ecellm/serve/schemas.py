"""Request bodies of the OpenAI-compatible endpoints, validated by pydantic.

Unknown fields (``presence_penalty``, ``user``, ...) are ignored so stock clients work, but
fields that would change the result and that the server cannot honour (``n > 1``, chat
``logprobs``) are rejected rather than silently dropped. ``temperature`` defaults to 0 (greedy),
not OpenAI's 1, because ecellm's runs are deterministic by default.

Bounds keep one request from slowing the batches it shares with others:
at most ``MAX_STOP`` stop strings (OpenAI's limit) of at most ``MAX_STOP_CHARS`` characters
each (the stop-string matcher's set-up grows with both). Every text must be valid Unicode (a
lone surrogate, which JSON's ``\\ud800`` escape can carry, cannot be tokenized) and prompts
must not be empty.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP = 4
MAX_STOP_CHARS = 256


def _valid_text(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _check_texts(value: Any, what: str) -> Any:
    for text in [value] if isinstance(value, str) else value or []:
        if isinstance(text, str):
            _valid_text(text, what)
    return value


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="only one completion per prompt is supported")
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _bounded_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed, got {len(stops)}")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise ValueError(f"a stop sequence may have at most {MAX_STOP_CHARS} characters")
        return _check_texts(value, "stop")

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_Base):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _usable_prompt(cls, value: str | list[str]) -> str | list[str]:
        if any(p == "" for p in ([value] if isinstance(value, str) else value)):
            raise ValueError("prompt must not be empty")
        return _check_texts(value, "prompt")

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, object]]

    @field_validator("role", "content")
    @classmethod
    def _unicode(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{k: _check_texts(v, "content") for k, v in part.items()} for part in value]
        return _check_texts(value, "message")

    def text(self) -> str:
        """Plain text of the message; multi-part content keeps only its ``text`` parts."""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise ValueError(f"message content of type {part.get('type')!r} is not supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class ChatRequest(_Base):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool) -> bool:
        if value:
            raise ValueError("chat logprobs are not supported; use /v1/completions with logprobs and echo")
        return value

    def token_budget(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default
