"""A tiny document model rendered twice: self-contained HTML (figures embedded) and Markdown.

Blocks are added in reading order; figures are written to ``figures/<name>.png|svg`` and tables
to ``tables/<name>.csv`` (and ``.tex`` when given) as they are added, so the files on disk and
the two renderings always agree.
"""

from __future__ import annotations

import base64
import html
import math
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plot import figure_png

NOTE, WARN = "note", "warn"


def fmt(v: Any) -> str:
    """Cell text: '-' for missing (NaN), 'inf', 4 significant digits for floats, ints as ints."""
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "-"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.4e}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return str(list(np.asarray(v).tolist()))
    return str(v)


@dataclass
class Document:
    """Blocks of a report plus the folder their figures and tables are written to."""

    out_dir: Path
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    svg: bool = True

    def __post_init__(self) -> None:
        (self.out_dir / "figures").mkdir(parents=True, exist_ok=True)
        (self.out_dir / "tables").mkdir(parents=True, exist_ok=True)

    def section(self, title: str, anchor: str) -> None:
        self.sections.append((title, anchor))
        self.blocks.append(("h2", (title, anchor)))

    def para(self, text: str, *, kind: str = "") -> None:
        """A paragraph; ``kind`` = ``"note"`` or ``"warn"`` draws it as a call-out box."""
        self.blocks.append(("p", (text, kind)))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def table(
        self,
        frame: pd.DataFrame,
        *,
        name: str | None = None,
        caption: str = "",
        latex: str | None = None,
        highlight: list[bool] | None = None,
        csv_frame: pd.DataFrame | None = None,
        max_rows: int | None = None,
    ) -> None:
        """Show ``frame``; with ``name`` also write ``tables/<name>.csv`` (``csv_frame`` if given) and ``.tex``."""
        if name:
            path = self.out_dir / "tables" / f"{name}.csv"
            (csv_frame if csv_frame is not None else frame).to_csv(path, index=False)
            self.files.append(path)
            if latex is not None:
                tex = path.with_suffix(".tex")
                tex.write_text(latex)
                self.files.append(tex)
        shown = frame if max_rows is None or len(frame) <= max_rows else frame.iloc[:max_rows]
        if shown is not frame:
            caption = f"{caption} (first {max_rows} of {len(frame)} rows; all in tables/{name}.csv)".strip()
        self.blocks.append(("table", (shown, caption, highlight)))

    def figure(self, fig: Figure, *, name: str, caption: str) -> None:
        """Write ``figures/<name>.png`` (and ``.svg`` unless ``svg=False``) and embed the PNG."""
        png = figure_png(fig)
        png_path = self.out_dir / "figures" / f"{name}.png"
        svg_path = png_path.with_suffix(".svg")
        png_path.write_bytes(png)
        self.files.append(png_path)
        if self.svg:
            fig.savefig(svg_path, format="svg")
            self.files.append(svg_path)
        self.blocks.append(("figure", (name, png, caption)))

    # ------------------------------------------------------------------ rendering

    def to_html(self, *, title: str) -> str:
        parts = ["<nav><ol>" + "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for t, a in self.sections)
                 + "</ol></nav>"]
        for kind, data in self.blocks:
            if kind == "h2":
                parts.append(f'<h2 id="{data[1]}">{html.escape(data[0])}</h2>')
            elif kind == "p":
                text, style = data
                cls = f' class="{style}"' if style else ""
                parts.append(f"<p{cls}>{html.escape(text)}</p>")
            elif kind == "pre":
                parts.append(f"<pre>{html.escape(data)}</pre>")
            elif kind == "table":
                parts.append(_html_table(*data))
            elif kind == "figure":
                name, png, caption = data
                b64 = base64.b64encode(png).decode("ascii")
                parts.append(f'<figure id="fig-{name}"><img src="data:image/png;base64,{b64}" '
                             f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        template = string.Template(resources.files("reports").joinpath("templates/report.html").read_text())
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return template.substitute(title=html.escape(title), body="\n".join(parts), generated=generated)

    def to_markdown(self, *, title: str) -> str:
        lines = [f"# {title}", ""]
        for kind, data in self.blocks:
            if kind == "h2":
                lines += [f"## {data[0]}", ""]
            elif kind == "p":
                text, style = data
                lines += [f"> {text}" if style else text, ""]
            elif kind == "pre":
                lines += ["```", data, "```", ""]
            elif kind == "table":
                frame, caption, _ = data
                if caption:
                    lines += [f"_{caption}_", ""]
                lines += [_md_table(frame), ""]
            elif kind == "figure":
                name, _, caption = data
                lines += [f"![{caption}](figures/{name}.png)", "", f"_{caption}_", ""]
        return "\n".join(lines)


def _html_table(frame: pd.DataFrame, caption: str, highlight: list[bool] | None) -> str:
    text_cols = {c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)}
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for i, (_, r) in enumerate(frame.iterrows()):
        cls = ' class="hl"' if highlight is not None and highlight[i] else ""
        cells = "".join(f'<td class="{"t" if c in text_cols else ""}">{html.escape(fmt(r[c]))}</td>'
                        for c in frame.columns)
        rows.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty and not len(frame.columns):
        return "_(empty)_"
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(r[c]).replace("|", "\\|") for c in frame.columns) + " |" for _, r in frame.iterrows()]
    return "\n".join([head, sep, *body])
