"""One PNG chart per table (matplotlib, Agg backend so it runs headless on servers and in CI).

Our runs are bars; the paper's rows are markers over the same task, so ten baselines stay
readable next to one or two of our runs. A before/after report adds a second panel with the
per-task deltas, gains in green and losses in red, each labelled with its value.
"""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

from ecellm.io import atomic_open  # noqa: E402
from ecellm.report.tables import Row, Table  # noqa: E402

_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")
_BAR_COLOURS = ("#1f5fa8", "#e08a00", "#2a9d5c", "#a23b72", "#5b5b5b")


def _columns(table: Table) -> tuple[list[str], bool]:
    shared = len(table.shared_tasks) < len(table.spec.tasks)
    mean = f"Mean\n({len(table.shared_tasks)} shared)" if shared else "Mean"
    return [*table.spec.tasks, mean], shared


def _values(row: Row, tasks: tuple[str, ...], shared: bool) -> list[float | None]:
    return [row.cells.get(t) for t in tasks] + [row.mean_shared if shared else row.mean]


def _draw_scores(ax, table: Table, labels: list[str], shared: bool) -> None:
    tasks = table.spec.tasks
    xs = list(range(len(labels)))
    ours = [r for r in table.rows if r.kind == "ours"]
    invalid = {
        (r.label.removesuffix(": invalid rate"), r.mode): r for r in table.rows if r.kind == "invalid_rate"
    }
    # Paper markers sit in a lane left of each task, our bars to the right, so neither hides the other.
    lane, span = (-0.27, 0.56) if ours else (0.0, 0.0)
    width = span / max(len(ours), 1)
    for k, row in enumerate(ours):
        offset = -0.12 + (k + 0.5) * width
        vals = _values(row, tasks, shared)
        inv = invalid.get((row.label, row.mode))
        rates = _values(inv, tasks, shared) if inv else [None] * len(vals)
        name = row.label if row.mode == "paper" else f"{row.label} [{row.mode}]"
        pts = [(x + offset, v, r) for x, v, r in zip(xs, vals, rates, strict=True) if v is not None]
        ax.bar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            width * 0.92,
            label=name,
            color=_BAR_COLOURS[k % len(_BAR_COLOURS)],
            zorder=2,
        )
        for x, v in zip(xs, vals, strict=True):
            if v is None:  # say "no result" rather than leave a gap that reads as 0
                ax.text(x + offset, 0.01, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
        if len(ours) <= 2:  # more labels than that overlap
            for x, v, r in pts:
                text = f"{v:.2f}" + (f"\n{r:.0%} inv" if r else "")
                ax.text(x, v + 0.01, text, ha="center", va="bottom", fontsize=6, zorder=4)
    paper = [r for r in table.rows if r.kind == "paper"]
    cmap = plt.get_cmap("tab10")
    for k, row in enumerate(paper):
        pts = [(x + lane, v) for x, v in zip(xs, _values(row, tasks, shared), strict=True) if v is not None]
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker=_MARKERS[k % len(_MARKERS)],
            s=22,
            facecolors="none",
            edgecolors=cmap(k % 10),
            linewidths=1.1,
            label=f"{row.label} (paper)",
            zorder=3,
        )
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score (primary metric)")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    if ours or paper:
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _draw_deltas(ax, table: Table, labels: list[str], shared: bool) -> None:
    deltas = [r for r in table.rows if r.kind == "delta"]
    xs = list(range(len(labels)))
    width = 0.8 / max(len(deltas), 1)
    for k, row in enumerate(deltas):
        offset = (k - (len(deltas) - 1) / 2) * width
        vals = _values(row, table.spec.tasks, shared)
        pts = [(x + offset, v) for x, v in zip(xs, vals, strict=True) if v is not None]
        for x, v in zip(xs, vals, strict=True):
            if v is None:
                ax.text(x + offset, 0, "n/a", ha="center", va="bottom", fontsize=6.5)
        ax.bar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            width * 0.92,
            color=["#2a9d5c" if v > 0 else "#c0392b" for _x, v in pts],
            zorder=2,
        )
        for x, v in pts if len(deltas) == 1 else []:
            ax.text(x, v, f"{v:+.3f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=6.5)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("delta")
    span = max(
        (abs(v) for r in deltas for v in _values(r, table.spec.tasks, shared) if v is not None), default=0
    )
    ax.set_ylim(-span * 1.35 - 0.01, span * 1.35 + 0.01)
    names = ", ".join(f"{r.label} [{r.mode}]" for r in deltas) + (
        " (bars left to right)" if len(deltas) > 1 else ""
    )
    ax.set_title(names, fontsize=8)
    ax.grid(axis="y", alpha=0.3, zorder=0)


def table_png(table: Table, path: str | os.PathLike[str]) -> None:
    """Render ``table`` to ``path`` (written atomically)."""
    labels, shared = _columns(table)
    has_delta = any(r.kind == "delta" for r in table.rows)
    fig, axes = plt.subplots(
        2 if has_delta else 1,
        1,
        figsize=(12, 7.5 if has_delta else 4.8),
        squeeze=False,
        gridspec_kw={"height_ratios": [2.2, 1]} if has_delta else None,
    )
    try:
        _draw_scores(axes[0][0], table, labels, shared)
        axes[0][0].set_title(f"{table.spec.title}  [{table.spec.setting}]", fontsize=10)
        if has_delta:
            _draw_deltas(axes[1][0], table, labels, shared)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=130, metadata={"Software": None})
    finally:
        plt.close(fig)
    with atomic_open(path, "wb", encoding=None) as fh:
        fh.write(buf.getvalue())
