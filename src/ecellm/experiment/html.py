"""Charts (matplotlib, PNG for the Markdown and inline SVG for the HTML) and the one-page HTML.

The HTML page has no external asset: styles are inline, charts are inline ``<svg>`` elements,
so it can be mailed or archived as one file. Each table is ``<table data-table=KEY>`` and each
chart ``<figure data-chart=KEY-scores|KEY-delta>``, which is what the browser test looks for.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)

from ecellm.experiment.config import ExperimentConfig  # noqa: E402
from ecellm.experiment.report import (  # noqa: E402
    ReportTable,
    _ci,
    _fmt,
    _top,
    acceptance,
    build_tables,
    direction,
    report_markdown,
    tables_json,
)
from ecellm.io import atomic_open, write_json  # noqa: E402

_COLOURS = ("#1f5fa8", "#e08a00", "#2a9d5c", "#a23b72", "#5b5b5b", "#8c564b")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")


def _save(fig) -> tuple[bytes, str]:
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = svg.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.find("<svg") :], flags=re.S)  # RDF boilerplate
    return png.getvalue(), text


def _scores_chart(t: ReportTable, mode: str):
    rows = [r for r in t.rows if r.mode == mode]
    cols = [*t.tasks, "Mean"]
    xs = list(range(len(cols)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(cols) + 2), 3.4))
    width = 0.8 / max(len(rows), 1)
    for k, r in enumerate(rows):
        cells = [r.cells.get(x) for x in t.tasks] + [r.mean]
        pts = [
            (x + (k - (len(rows) - 1) / 2) * width, c)
            for x, c in zip(xs, cells, strict=True)
            if c is not None
        ]
        lo = [c.score - (c.low if c.low is not None else c.score) for _, c in pts]
        hi = [(c.high if c.high is not None else c.score) - c.score for _, c in pts]
        ax.bar(
            [p[0] for p in pts],
            [c.score for _, c in pts],
            width * 0.9,
            yerr=[lo, hi],
            capsize=2,
            color=_COLOURS[k % len(_COLOURS)],
            label=f"{r.label} [{mode}]",
            zorder=2,
        )
    cmap = plt.get_cmap("tab10")
    for k, (name, cells) in enumerate(t.paper[:8]):
        vals = [cells.get(x) for x in t.tasks]
        mean = sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None  # type: ignore[arg-type]
        pts = [(x, v) for x, v in zip(xs, [*vals, mean], strict=True) if v is not None]
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker=_MARKERS[k % len(_MARKERS)],
            s=16,
            facecolors="none",
            edgecolors=cmap(k % 10),
            linewidths=0.9,
            label=f"{name} (paper)",
            zorder=3,
        )
    ax.set_xticks(xs, cols, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(t.title, fontsize=9)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _delta_chart(t: ReportTable, mode: str):
    deltas = [d for d in t.deltas if d.mode == mode]
    cols = [*t.tasks, "Mean"]
    xs = list(range(len(cols)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(cols) + 2), 2.8))
    width = 0.8 / max(len(deltas), 1)
    for k, d in enumerate(deltas):
        cells = [d.cells.get(x) for x in t.tasks] + [d.mean]
        for x, c in zip(xs, cells, strict=True):
            if c is None:
                continue
            pos = x + (k - (len(deltas) - 1) / 2) * width
            colour = "#2a9d5c" if c["estimate"] > 0 else "#c0392b" if c["estimate"] < 0 else "#777777"
            ax.bar(
                pos,
                c["estimate"],
                width * 0.9,
                color=colour,
                zorder=2,
                yerr=[[c["estimate"] - c["low"]], [c["high"] - c["estimate"]]],
                capsize=2,
            )
            ax.text(pos, c["high"], f"{c['estimate']:+.2f}", ha="center", va="bottom", fontsize=6)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(xs, cols, fontsize=8)
    ax.set_ylabel("paired delta")
    label = deltas[0].label if deltas else "no paired delta"
    ax.set_title(
        f"{label} [{mode}], {', '.join(d.model for d in deltas)}: gains green, losses red", fontsize=8
    )
    ax.grid(axis="y", alpha=0.3, zorder=0)
    return fig


def charts(tables: list[ReportTable], mode: str) -> dict[str, tuple[bytes, str]]:
    """``{"KEY-scores" | "KEY-delta": (png bytes, svg text)}`` for every table."""
    out = {}
    for t in tables:
        out[f"{t.key}-scores"] = _save(_scores_chart(t, mode))
        out[f"{t.key}-delta"] = _save(_delta_chart(t, mode))
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td:nth-child(2){text-align:left}
tr.paper td{color:#666}tr.ours td{font-weight:600}tr.invalid td{color:#a05a00;font-style:italic}
tr.delta td{font-style:italic}.up{color:#1e7b45}.down{color:#b03a2e}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
li.met{color:#1e7b45}li.notmet{color:#b03a2e}
"""


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"


def _table_html(t: ReportTable) -> str:
    e = html.escape
    head = "".join(f"<th>{e(x)}</th>" for x in ["Model", "Mode", *t.tasks, "Mean"])
    metric = "".join(f"<td>{e(t.metrics[x])}</td>" for x in t.tasks)
    rows = [f"<tr>{head}</tr>", f"<tr><td>metric</td><td></td>{metric}<td></td></tr>"]
    for name, cells in t.paper:
        vals = [cells.get(x) for x in t.tasks]
        mean = f"{sum(vals) / len(vals):.3f}" if all(v is not None for v in vals) else "n/a"  # type: ignore[arg-type]
        tds = "".join(_td("n/a" if v is None else f"{v:.3f}") for v in vals)
        rows.append(f'<tr class="paper">{_td(name + " (paper)")}{_td("paper")}{tds}{_td(mean)}</tr>')
    for r in t.rows:
        tds = "".join(_td(_fmt(r.cells.get(x))) for x in t.tasks)
        rows.append(f'<tr class="ours">{_td(r.label)}{_td(r.mode)}{tds}{_td(_fmt(r.mean))}</tr>')
        rates = "".join(
            _td(f"{r.cells[x].invalid / r.cells[x].n:.1%}" if x in r.cells and r.cells[x].n else "n/a")
            for x in t.tasks
        )
        pooled = "n/a" if r.invalid_rate is None else f"{r.invalid_rate:.1%}"
        rows.append(
            f'<tr class="invalid">{_td(r.label + ": invalid rate")}{_td(r.mode)}{rates}{_td(pooled)}</tr>'
        )
        if any(r.cells[x].top for x in t.tasks if x in r.cells):
            tops = "".join(_td(_top(r.cells.get(x))) for x in t.tasks)
            label = _td(r.label + ": most common answer")
            rows.append(f'<tr class="invalid">{label}{_td(r.mode)}{tops}{_td("")}</tr>')
    for d in t.deltas:

        def cls(c):
            return "" if c is None else "up" if c["estimate"] > 0 else "down" if c["estimate"] < 0 else ""

        tds = "".join(_td(_ci(d.cells.get(x)), cls(d.cells.get(x))) for x in t.tasks)
        label, mean = _td(d.model + " " + d.label), _td(_ci(d.mean), cls(d.mean))
        rows.append(f'<tr class="delta">{label}{_td(d.mode)}{tds}{mean}</tr>')
    return f'<table data-table="{e(t.key)}">' + "".join(rows) + "</table>"


def _strip_ids(svg: str, prefix: str) -> str:
    """Give each inline SVG its own id namespace (matplotlib reuses ids such as clip paths)."""
    return re.sub(r'(id="|url\(#|href="#)([^"\)]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)


def report_html(
    cfg: ExperimentConfig, tables: list[ReportTable], figs: dict[str, tuple[bytes, str]], md: str
) -> str:
    e = html.escape
    mode = cfg.compare.headline_mode
    intro = md.split("## Verdicts")[0].split("\n", 2)[2].strip()
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>ecellm experiment {e(cfg.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Experiment <code>{e(cfg.name)}</code>: the eCeLLM paper's Tables 2-5</h1>",
        f"<p>{e(intro)}</p>",
        "<h2>Verdicts</h2><ul>",
    ]
    for t in tables:
        for s in direction(t, mode):
            parts.append(f"<li><b>{e(t.title.split(':')[0])}</b> ({e(t.question)}) {e(s)}</li>")
    parts.append(f"</ul><h2>Acceptance checks ({e(mode)} scoring)</h2><ul>")
    for name, ok, detail in acceptance(cfg, tables):
        state = "met" if ok else "not met" if ok is not None else "not measured"
        parts.append(f'<li class="{"met" if ok else "notmet"}">{state}: {e(name)} ({e(detail)})</li>')
    parts.append("</ul>")
    for t in tables:
        parts.append(f'<section id="{e(t.key)}"><h2>{e(t.title)}</h2>')
        parts.append(f"<p>Setting <code>{e(t.setting)}</code>. {e(t.question)}</p>")
        parts.append(_table_html(t))
        notes = [*(s for m in dict.fromkeys(r.mode for r in t.rows) for s in direction(t, m)), *t.notes]
        if notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
        for kind in ("scores", "delta"):
            name = f"{t.key}-{kind}"
            if name in figs:
                parts.append(f'<figure data-chart="{e(name)}">{_strip_ids(figs[name][1], name)}</figure>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(cfg: ExperimentConfig, entries: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """``report.md`` (+ one PNG per chart), ``report.html`` (self-contained) and ``report.json``."""
    tables = build_tables(cfg, entries)
    figs = charts(tables, cfg.compare.headline_mode)
    files: dict[str, Path] = {}
    images = {}
    for name, (png, _svg) in figs.items():
        path = out / f"{name}.png"
        with atomic_open(path, "wb", encoding=None) as fh:
            fh.write(png)
        files[path.name] = path
        images[name] = path.name
    md = report_markdown(cfg, tables, images)
    for name, text in (("report.md", md), ("report.html", report_html(cfg, tables, figs, md))):
        with atomic_open(out / name) as fh:
            fh.write(text)
        files[name] = out / name
    write_json(out / "report.json", tables_json(cfg, tables))
    files["report.json"] = out / "report.json"
    return files
