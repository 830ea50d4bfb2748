"""Ablation tables: one row per setting of the varied factor(s), mean ± std over seeds, costs, Δ vs baseline.

Input is the sweep's trials table (``trials.parquet``): factors are ``p.<dotted key>`` columns,
accuracy metrics (``top1``, ``top5``) are averaged over the ``complete`` trials of each setting
(seeds), costs (``params``, ``flops``, ``throughput``, ``latency_ms``) are the median over the
setting's measured rows. Output: a numeric DataFrame and Markdown / LaTeX (booktabs) / CSV text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ACCURACY = ("top1", "top5")
COSTS = ("params", "flops", "throughput", "latency_ms")
COST_LABELS = {"params": "Params", "flops": "FLOPs", "throughput": "Throughput (img/s)", "latency_ms": "Latency (ms)"}


def _hashable(v: Any) -> Any:
    """Group key for a factor value: lists/arrays (e.g. kernel tuples) become their JSON text."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return json.dumps(np.asarray(v).tolist())
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def _sort_key(key: Any) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    return tuple((0, float(k), "") if isinstance(k, (int, float, np.integer, np.floating)) else (1, 0.0, str(k))
                 for k in key)


def _same(a: Any, b: Any) -> bool:
    a, b = _hashable(a), _hashable(b)
    if isinstance(a, (int, float, np.integer, np.floating)) and isinstance(b, (int, float, np.integer, np.floating)):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-12))
    return str(a) == str(b)


def human(x: float, *, unit: str = "") -> str:
    """Compact number: 4.21M, 310.5M, 1.23G; '-' for NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}{unit}"
    return f"{x:.4g}{unit}"


@dataclass(frozen=True)
class AblationTable:
    """Result of ``ablation_table``: ``frame`` has one row per setting, baseline first.

    Columns: the factors, ``n`` (complete trials with the metric), ``n_other`` (pruned / failed /
    infeasible / stopped trials of that setting), ``<metric>_mean``/``_std`` per accuracy metric,
    the cost columns, ``delta_<metric>`` (absolute) and ``delta_<cost>_pct`` (relative, %) vs the
    baseline row, and ``is_baseline``.
    """

    factors: tuple[str, ...]
    metrics: tuple[str, ...]
    costs: tuple[str, ...]
    frame: pd.DataFrame
    baseline_found: bool
    precision: int = 2

    def display(self) -> tuple[list[str], list[list[str]]]:
        """Header and formatted cells shared by the Markdown and LaTeX writers."""
        head = [f.removeprefix("p.") for f in self.factors] + ["seeds"]
        head += [m for m in self.metrics] + [COST_LABELS.get(c, c) for c in self.costs]
        head += [f"Δ {m}" for m in self.metrics] + [f"Δ {COST_LABELS.get(c, c).split(' (')[0]}" for c in self.costs]
        rows = []
        p = self.precision
        for _, r in self.frame.iterrows():
            cells = [str(r[f]) for f in self.factors]
            cells[0] = cells[0] + (" (baseline)" if r["is_baseline"] else "")
            cells.append(f"{int(r['n'])}" + (f" (+{int(r['n_other'])} not complete)" if r["n_other"] else ""))
            for m in self.metrics:
                mean, std = r[f"{m}_mean"], r[f"{m}_std"]
                cells.append("-" if not np.isfinite(mean) else f"{mean:.{p}f}" + (
                    f" ± {std:.{p}f}" if np.isfinite(std) else ""))
            for c in self.costs:
                v = r[c]
                cells.append(f"{v:.{p}f}" if c == "latency_ms" and np.isfinite(v)
                             else f"{v:.0f}" if c == "throughput" and np.isfinite(v) else human(v))
            for m in self.metrics:
                d = r[f"delta_{m}"]
                cells.append("-" if not np.isfinite(d) else ("0" if r["is_baseline"] else f"{d:+.{p}f}"))
            for c in self.costs:
                d = r[f"delta_{c}_pct"]
                cells.append("-" if not np.isfinite(d) else ("0" if r["is_baseline"] else f"{d:+.1f}%"))
            rows.append(cells)
        return head, rows

    def to_markdown(self) -> str:
        head, rows = self.display()
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        if not self.baseline_found:
            lines.append("\n_No baseline row found among the settings: Δ columns are empty._")
        return "\n".join(lines) + "\n"

    def to_latex(self, *, caption: str = "", label: str = "") -> str:
        """A booktabs ``table`` (needs ``\\usepackage{booktabs}``)."""
        head, rows = self.display()
        lines = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{" + "l" * len(self.factors)
                 + "r" * (len(head) - len(self.factors)) + "}", "\\toprule",
                 " & ".join(latex_escape(h) for h in head) + " \\\\", "\\midrule"]
        for i, row in enumerate(rows):
            lines.append(" & ".join(latex_escape(c) for c in row) + " \\\\")
            if i == 0 and self.baseline_found and len(rows) > 1:
                lines.append("\\midrule")
        lines += ["\\bottomrule", "\\end{tabular}"]
        if caption:
            lines.append(f"\\caption{{{latex_escape(caption)}}}")
        if label:
            lines.append(f"\\label{{{label}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        return self.frame.to_csv(index=False)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials; ± and Δ become math symbols."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def ablation_table(
    trials: pd.DataFrame,
    *,
    factors: Sequence[str],
    baseline: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = ACCURACY,
    costs: Sequence[str] = COSTS,
    precision: int = 2,
) -> AblationTable:
    """Group ``trials`` by ``factors`` (``p.*`` columns) and summarise each setting.

    ``baseline`` maps factor columns to the baseline values (extra keys are ignored); its row
    is listed first and Δ columns are relative to it. Metrics/costs missing from ``trials`` are
    left out rather than failing.
    """
    factors = tuple(factors)
    if not factors:
        raise ValueError("ablation_table needs at least one factor column, e.g. 'p.stages.0.mixer.wavelet_levels'")
    missing = [f for f in factors if f not in trials.columns]
    if missing:
        have = [c for c in trials.columns if str(c).startswith("p.")]
        raise KeyError(f"factor column(s) {missing} not in trials; sampled columns are: {have or 'none'}")
    metrics = tuple(m for m in metrics if m in trials.columns)
    costs = tuple(c for c in costs if c in trials.columns)
    status = trials["status"] if "status" in trials.columns else pd.Series("complete", index=trials.index)
    keys = trials[list(factors)].apply(lambda col: col.map(_hashable))
    rows = []
    groups: dict[tuple, list[int]] = {}
    for pos, key in enumerate(keys.itertuples(index=False, name=None)):
        groups.setdefault(key, []).append(pos)
    for key, pos in sorted(groups.items(), key=lambda kv: _sort_key(kv[0])):
        g = trials.iloc[pos]
        done = g[(status.iloc[pos] == "complete").to_numpy()]
        row: dict[str, Any] = dict(zip(factors, key, strict=True))
        ok = np.ones(len(done), dtype=bool)
        for m in metrics:
            ok &= np.isfinite(pd.to_numeric(done[m], errors="coerce").to_numpy(dtype=float))
        row["n"] = int(ok.sum()) if metrics else len(done)
        row["n_other"] = int(len(g) - len(done))
        for m in metrics:
            vals = pd.to_numeric(done[m], errors="coerce").to_numpy(dtype=float)[ok]
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        for c in costs:
            vals = pd.to_numeric(g[c], errors="coerce").to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            row[c] = float(np.median(vals)) if len(vals) else float("nan")
        row["is_baseline"] = baseline is not None and all(
            _same(k, baseline[f]) for k, f in zip(key, factors, strict=True) if f in baseline)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if baseline is not None and not any(f in baseline for f in factors):
        raise ValueError(f"baseline {dict(baseline)!r} names none of the factors {list(factors)}")
    base = frame[frame["is_baseline"]] if len(frame) else frame
    if len(base) > 1:
        raise ValueError(f"baseline {dict(baseline or {})!r} matches {len(base)} settings; give every factor's value")
    found = len(base) == 1
    for m in metrics:
        frame[f"delta_{m}"] = frame[f"{m}_mean"] - base[f"{m}_mean"].iloc[0] if found else float("nan")
    for c in costs:
        frame[f"delta_{c}_pct"] = 100 * (frame[c] / base[c].iloc[0] - 1) if found else float("nan")
    if len(frame):
        frame = pd.concat([frame[frame["is_baseline"]], frame[~frame["is_baseline"]]], ignore_index=True)
    return AblationTable(factors=factors, metrics=metrics, costs=costs, frame=frame, baseline_found=found,
                         precision=precision)
