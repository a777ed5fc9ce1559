"""Thread choice for torch on CPU: every idle core, not the busy ones (opt-in speed-up, see
:mod:`ecellm.speedups`; switched off, torch keeps its own default)."""

from __future__ import annotations

import os
import time


def default_threads() -> int:
    """CPU threads for torch: ``$ECELLM_THREADS``, else the cores not already busy.

    Why not all cores: torch's OpenMP workers spin-wait for each other, so when other processes
    keep the cores busy, two threads on a 2-core machine ran a decode step 6x *slower* than one
    (measured while a training job was running). Idle machines still get every core.
    """
    env = os.environ.get("ECELLM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    cores = os.cpu_count() or 1
    busy = int(busy_cores_elsewhere(cores) + 0.5)
    return max(1, min(cores, cores - busy))


def busy_cores_elsewhere(cores: int, window_s: float = 0.25) -> float:
    """Cores kept busy by *other* processes over a short window.

    Not the load average: that also counts this process's own recent work (a quickstart that has
    just trained on both cores would see a load of 2 and predict on one thread).
    """
    import psutil

    me = psutil.Process()
    me.cpu_percent(None), psutil.cpu_percent(None)
    time.sleep(window_s)
    total = psutil.cpu_percent(None) / 100 * cores
    return max(0.0, total - me.cpu_percent(None) / 100)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads (default: :func:`default_threads`); returns the number set."""
    import torch

    from ecellm.speedups import enabled

    if not n and not enabled():
        return torch.get_num_threads()  # torch's own default
    n = max(1, n or default_threads())
    torch.set_num_threads(n)
    return n
