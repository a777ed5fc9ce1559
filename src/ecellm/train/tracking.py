"""What a training run reports while it runs and leaves behind: readable log lines and a progress
bar instead of the Trainer's raw dicts, the experiment tracker named by ``report_to``, and
``loss.png``.

The Trainer's own ProgressCallback prints every log entry as a Python dict; ecellm replaces it
with one formatted INFO line per entry (the raw dict is logged at DEBUG, seen with ``-v``) and a
step bar with ETA (see ecellm.log). Trackers are the Trainer's integrations; ecellm only checks,
before any weights load, that the chosen one is installed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

log = logging.getLogger(__name__)

# report_to value -> (import name, pip extra that installs it)
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "trackio": ("trackio", "trackio"),
}
LOSS_PLOT = "loss.png"


def check_tracker(report_to: str, *, file: str = "<config>") -> None:
    """Fail before training when the tracker's package is missing, naming the extra to install."""
    if report_to == "none":
        return
    module, extra = TRACKERS[report_to]
    if importlib.util.find_spec(module) is None:
        raise InputError(
            f"report_to={report_to} needs the {module} package: pip install 'ecellm[{extra}]'",
            file=file,
            field="report_to",
        )


def _fmt(logs: dict[str, Any]) -> str:
    parts = []
    for k in ("loss", "eval_loss", "train_loss", "grad_norm", "learning_rate", "epoch"):
        v = logs.get(k)
        if isinstance(v, int | float):
            name = {"learning_rate": "lr"}.get(k, k)
            parts.append(f"{name} {v:.3g}" if k != "epoch" else f"epoch {v:.2f}")
    return "  ".join(parts)


def _callback_class() -> type:
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        """Formatted log lines and a step bar with ETA on the main process."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            from ecellm.log import progress

            self.bar = progress()
            self.bar.start()
            self.task = self.bar.add_task("training", total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            log.debug("%s", logs)
            line = _fmt(logs)
            if line:
                log.info("step %d/%d  %s", state.global_step, state.max_steps, line)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return LogCallback


def install_callbacks(trainer: Any) -> None:
    """Swap the Trainer's dict-printing callbacks for ecellm's log lines and progress bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_callback_class()())


def plot_loss(log_history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Training and validation loss by optimizer step as a PNG; None when nothing was logged."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    val = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    train = [(s, v) for s, v in train if math.isfinite(v)]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecellm.io import atomic_open

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", marker="." if len(train) < 30 else None)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation loss", marker="o")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})  # no timestamps: same run, same file
    plt.close(fig)
    return path
