"""Deterministic sampling and splitting helpers shared by the builders and the pipeline.

Every random choice goes through :func:`rng`, a ``random.Random`` seeded with a *string* built
from the build seed and a purpose ("MPC", "halve-queries", ...). String seeds are hashed with
SHA-512 by ``random``, so results do not depend on ``PYTHONHASHSEED``, and two purposes never
share a stream (adding a task does not change another task's samples).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

SPLIT_NAMES = ("train", "val", "test")


def rng(seed: int, *purpose: object) -> random.Random:
    """A private random stream for ``purpose`` under the build ``seed``."""
    return random.Random("/".join([str(seed), *map(str, purpose)]))


def take(items: Sequence[T], n: int | None, r: random.Random) -> list[T]:
    """A seeded shuffle of ``items`` cut to ``n`` (all when ``n`` is None or larger)."""
    out = list(items)
    r.shuffle(out)
    return out if n is None else out[: max(0, int(n))]


def halve(keys: Iterable[K], r: random.Random) -> tuple[list[K], list[K]]:
    """Split distinct keys in two halves (first half gets the extra key), after sorting."""
    ordered = sorted(set(keys))  # type: ignore[type-var]
    r.shuffle(ordered)
    mid = (len(ordered) + 1) // 2
    return ordered[:mid], ordered[mid:]


def split_keys(keys: Iterable[K], fractions: Sequence[float], r: random.Random) -> list[list[K]]:
    """Partition distinct keys by ``fractions`` (e.g. 0.8/0.1/0.1), group-disjoint by construction.

    Rounding gives every part at least one key when there are enough keys, so small inputs
    still produce a non-empty val and test.
    """
    ordered = sorted(set(keys))  # type: ignore[type-var]
    r.shuffle(ordered)
    total = sum(fractions)
    n = len(ordered)
    sizes = [int(round(n * f / total)) for f in fractions]
    for i in range(len(sizes)):
        if sizes[i] == 0 and n >= len(sizes) and fractions[i] > 0:
            sizes[i] = 1
    sizes[0] = n - sum(sizes[1:])
    parts, start = [], 0
    for size in sizes:
        parts.append(ordered[start : start + size])
        start += size
    return parts
