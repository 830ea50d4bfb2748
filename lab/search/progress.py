"""A one-line live progress display for sweeps (stderr; redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress_line(name: str, c: Mapping[str, int], *, target: int, best: str, eta_s: float | None) -> str:
    """``[exp] 7/12 done | 1 running | 0 pruned | 2 infeasible | 0 failed | best top1=45.2 | ETA 1m20s``."""
    parts = [
        f"[{name}] {c.get('finished', 0)}/{target} done",
        f"{c.get('running', 0)} running",
        f"{c.get('pruned', 0)} pruned",
        f"{c.get('infeasible', 0)} infeasible",
        f"{c.get('failed', 0) + c.get('lost', 0)} failed",
    ]
    if c.get("complete", 0) and best:
        parts.append(best)
    parts.append("ETA " + (format_duration(eta_s) if eta_s is not None else "?"))
    return " | ".join(parts)


class Progress:
    """Redraws one line in place on a TTY; prints a new line per change otherwise (logs, CI)."""

    def __init__(self, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._stream = stream  # None = sys.stderr at write time (keeps the object picklable for Ray)
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = ""
        self._width = 0
        self.started = time.monotonic()

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_stream": None}

    def update(self, line: str) -> None:
        if not self.enabled or line == self._last:
            return
        self._last = line
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line that is not the progress line (kept above it on a terminal)."""
        if self.tty and self._last:
            self.stream.write("\r" + " " * self._width + "\r")
        print(text, file=self.stream, flush=True)
        if self.tty and self._last:
            self.stream.write(self._last)
            self.stream.flush()


def eta(durations: list[float], remaining: int, workers: int) -> float | None:
    """Remaining wall time from the median finished-trial duration."""
    if not durations:
        return None
    d = sorted(durations)[len(durations) // 2]
    return d * max(0, remaining) / max(1, workers)


def best_summary(study: Any, objectives: Any) -> str:
    """``best top1=45.20`` (single objective) or ``front 4`` (multi-objective)."""
    try:
        if len(objectives) == 1:
            return f"best {objectives[0].name}={study.best_value:.4g}"
        return f"front {len(study.best_trials)}"
    except ValueError:
        return ""
