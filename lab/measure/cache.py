"""A measurement cache so a sweep never measures the same network twice.

Entries are keyed by ``(config_id, resolution, what was measured, environment)``: ``what``
names one measurement (``"params"``, ``"flops"``, ``"throughput"``, ...) together with its
protocol options, and ``environment`` is ``env_fingerprint(...)`` for timings (empty for
the deterministic counts). Values are JSON objects stored in one SQLite file under the cache
dir (default ``.cache/measure/``, git-ignored). SQLite in WAL mode with a busy timeout makes
concurrent writers from several processes safe; a put of an existing key replaces it.

This module imports no torch, so worker processes can use it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path(".cache/measure")
DB_NAME = "measure.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT PRIMARY KEY,
    config_id TEXT NOT NULL,
    res INTEGER NOT NULL,
    what TEXT NOT NULL,
    key_json TEXT NOT NULL,
    value_json TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(*, config_id: str, res: int, what: str, options: Mapping[str, Any] | None = None,
              env: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """``(sha256 hex, canonical JSON)`` of one measurement's identity."""
    if not config_id:
        raise ValueError("cache_key needs a config_id (models without one cannot be cached; pass cache=None)")
    if not isinstance(res, int) or isinstance(res, bool) or res < 1:
        raise ValueError(f"cache_key: res must be a positive int, got {res!r}")
    ident = {"config_id": config_id, "res": res, "what": what, "options": dict(options or {}), "env": dict(env or {})}
    text = _canonical(ident)
    return hashlib.sha256(text.encode()).hexdigest(), text


class MeasureCache:
    """SQLite-backed JSON cache; safe for several processes writing at once."""

    def __init__(self, directory: str | Path = DEFAULT_CACHE_DIR, *, timeout_s: float = 60.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self.timeout_s = timeout_s
        with self._connect() as con:
            con.execute(_SCHEMA)

    def _connect(self) -> _Closing:
        con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        con.execute("PRAGMA journal_mode = WAL")
        return _Closing(con)

    def get(self, *, config_id: str, res: int, what: str, options: Mapping[str, Any] | None = None,
            env: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The stored value, or ``None`` when this measurement was never stored."""
        key, _ = cache_key(config_id=config_id, res=res, what=what, options=options, env=env)
        with self._connect() as con:
            row = con.execute("SELECT value_json FROM measurements WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, value: Mapping[str, Any], *, config_id: str, res: int, what: str,
            options: Mapping[str, Any] | None = None, env: Mapping[str, Any] | None = None) -> None:
        """Store (or replace) one measurement; ``value`` must be JSON-serialisable."""
        key, key_json = cache_key(config_id=config_id, res=res, what=what, options=options, env=env)
        try:
            value_json = json.dumps(dict(value), sort_keys=True)
        except TypeError as exc:
            raise ValueError(f"MeasureCache.put: value for {what!r} is not JSON-serialisable ({exc})") from None
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO measurements (key, config_id, res, what, key_json, value_json, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, config_id, res, what, key_json, value_json, time.time()),
            )

    def get_or_compute(self, compute: Callable[[], Mapping[str, Any]], *, config_id: str, res: int, what: str,
                       options: Mapping[str, Any] | None = None,
                       env: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """``(value, was_cached)``: the stored value, or ``compute()`` stored then returned. Two processes
        missing the same key at once both compute; the later write wins (same key, same meaning)."""
        ident = {"config_id": config_id, "res": res, "what": what, "options": options, "env": env}
        hit = self.get(**ident)
        if hit is not None:
            return hit, True
        value = dict(compute())
        self.put(value, **ident)
        return json.loads(json.dumps(value, sort_keys=True)), False

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def entries(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """All ``(identity, value)`` pairs, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT key_json, value_json FROM measurements ORDER BY created").fetchall()
        for k, v in rows:
            yield json.loads(k), json.loads(v)


class _Closing:
    """``sqlite3.Connection`` whose ``with`` block also closes it (the stdlib one only commits)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._con.execute(*args)

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()
