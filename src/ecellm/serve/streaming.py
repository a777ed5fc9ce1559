"""Server-sent events for ``stream: true``: token ids in, safe text deltas out.

Two things make streaming text harder than printing tokens: a token may end in the middle of
a UTF-8 character (byte-level BPE), and a stop string may be split over several tokens, so
text that could still turn out to be the start of a stop string must be held back until it is
clear. :class:`TextStream` decodes incrementally (only the last few tokens are re-decoded per
step) and emits only text that is final: the concatenated deltas equal the reply's text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ecellm.serve.engine import cut_at_stop


class TextStream:
    """Accumulates one reply's token ids and returns the text that can be sent so far."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], eos_id: int | None) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.eos_id = eos_id
        self.ids: list[int] = []
        self.text = ""  # decoded text of every id so far (complete characters only)
        self.sent = 0  # characters of ``text`` already sent
        self.ended = False  # end-of-sequence or a stop string reached
        self._prefix, self._read = 0, 0  # incremental decoding offsets

    def push(self, token: int) -> str:
        """Add one generated token id; return the new text that is safe to send (may be empty)."""
        if self.ended:
            return ""
        if token == self.eos_id:
            self.ended = True
            return ""
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)
        return self._release()

    def _release(self) -> str:
        cut, hit = cut_at_stop(self.text, self.stop)
        if hit:
            self.ended = True
            safe = len(cut)
        else:
            safe = max(self.sent, len(self.text) - self.hold) if self.stop else len(self.text)
        delta = self.text[self.sent : safe]
        self.sent = max(self.sent, safe)
        return delta

    def finish(self, final: str) -> str:
        """The rest of ``final`` (the reply's authoritative text) not yet sent."""
        sent = self.text[: self.sent]
        rest = final[len(sent) :] if final.startswith(sent) else ""
        self.sent = len(self.text)
        return rest


def event(payload: dict[str, Any]) -> str:
    """One SSE ``data:`` event."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"
