"""Request bodies of the OpenAI-compatible endpoints, validated by pydantic.

Unknown fields (``presence_penalty``, ``user``, ...) are ignored so stock clients work, but
fields that would change the result and that the server cannot honour (``n > 1``,
``stream``) are rejected rather than silently dropped. ``temperature`` defaults to 0 (greedy),
not OpenAI's 1, because ecellm's runs are deterministic by default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="only one completion per prompt is supported")
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool) -> bool:
        if value:
            raise ValueError("streaming is not supported")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_Base):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, object]]

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
