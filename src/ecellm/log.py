"""One place that decides what a user sees: ecellm's log lines, third-party noise, progress bars.

Every module logs through ``logging.getLogger(__name__)`` (the ``ecellm`` hierarchy); the CLI's
global ``-v``/``-q`` call :func:`setup` once. Three levels:

- quiet (``-q``): errors only; no progress bars, no third-party output.
- default: ecellm's INFO lines and progress bars (with ETA) on a terminal; third-party loggers
  and Python warnings (PEFT's tied-embedding note, transformers' deprecation FutureWarnings) are
  hidden, because a user of ecellm cannot act on them.
- verbose (``-v``): ecellm DEBUG (e.g. the Trainer's raw log dicts), third-party warnings and
  Python warnings shown.

Log lines go to stderr, so a command's result on stdout stays pipeable.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

QUIET, DEFAULT, VERBOSE = -1, 0, 1
THIRD_PARTY = ("transformers", "peft", "datasets", "huggingface_hub", "accelerate", "torch", "httpx",
               "urllib3", "bert_score", "lm_eval", "filelock", "py.warnings")
_state = {"verbosity": DEFAULT, "configured": False}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time, so a live progress display (which
    redirects stderr to print above its bars) and test capture both see the lines."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        return msg


def verbosity() -> int:
    return int(_state["verbosity"])


def setup(level: int = DEFAULT) -> None:
    """Configure logging, warnings and third-party progress bars for ``level`` (QUIET/DEFAULT/VERBOSE)."""
    _state["verbosity"] = level
    root = logging.getLogger("ecellm")
    if not _state["configured"]:
        handler = _StderrHandler()
        handler.setFormatter(_Format("%(message)s"))
        root.addHandler(handler)
        root.propagate = False
        pyw = logging.getLogger("py.warnings")  # captured warnings.warn calls, shown with -v
        pyw.addHandler(handler)
        pyw.propagate = False
        _state["configured"] = True
    root.setLevel({QUIET: logging.ERROR, DEFAULT: logging.INFO}.get(level, logging.DEBUG))
    third = logging.WARNING if level >= VERBOSE else logging.ERROR
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(third)
    logging.captureWarnings(True)  # warnings.warn -> the py.warnings logger, at the level above
    if level < VERBOSE:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(peft|transformers|torch)\b")
    _third_party_verbosity(third, bars=level > QUIET)


def _third_party_verbosity(level: int, *, bars: bool) -> None:
    """transformers and datasets keep their own handlers and verbosity switches: set through the
    environment before they are imported (and inherited by torchrun workers), directly after."""
    name = logging.getLevelName(level).lower()
    os.environ["TRANSFORMERS_VERBOSITY"] = name
    os.environ["DATASETS_VERBOSITY"] = name
    if not bars:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    for mod in ("transformers", "datasets"):
        if mod not in sys.modules:
            continue  # importing them here would cost seconds on every command
        lib = sys.modules[mod].utils.logging
        lib.set_verbosity(level)
        (lib.enable_progress_bar if bars else lib.disable_progress_bar)()
    _state["third_level"] = level


def quiet_third_party() -> None:
    """Re-apply the third-party settings after transformers/datasets were imported (they reset
    their own verbosity on import)."""
    if _state["configured"]:
        _third_party_verbosity(int(_state.get("third_level", logging.ERROR)), bars=verbosity() > QUIET)


def progress_enabled() -> bool:
    """Progress bars draw on a terminal unless quiet; ``ECELLM_PROGRESS=1`` forces them (logs, tests)."""
    if verbosity() <= QUIET:
        return False
    if os.environ.get("ECELLM_PROGRESS") in ("0", "1"):
        return os.environ["ECELLM_PROGRESS"] == "1"
    return sys.stderr.isatty()


def progress(*, transfer: bool = False, disable: bool | None = None) -> Any:
    """A rich Progress on stderr with elapsed time and ETA (``transfer``: bytes, speed)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    cols: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    cols += [DownloadColumn(), TransferSpeedColumn()] if transfer else [MofNCompleteColumn()]
    cols += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    off = (not progress_enabled()) if disable is None else disable
    return Progress(*cols, console=Console(file=sys.stderr), disable=off, transient=False)
