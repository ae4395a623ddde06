"""SQLite cache of validated answers keyed by the request, so reruns repeat no request."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from vs2_plugin.errors import ConfigError

#: Keys per ``IN (...)`` query: SQLite builds before 3.32 bind at most 999 parameters.
_CHUNK = 999


def request_key(payload: dict) -> str:
    """Stable hash of everything that determines an answer (never includes the API key)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class AnswerCache:
    """``key -> (answer text, usage)``; safe to share between threads; ``path=None`` disables it."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path).expanduser() if path else None
        self._lock = threading.Lock()
        self._conn = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a crashed process, no fsync per answer
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, usage TEXT, created REAL)"
                )
                self._conn.commit()
            except sqlite3.Error as exc:  # a folder, another file, a cache of another shape
                raise ConfigError(
                    f"judge cache {self.path}: cannot be used as the answer cache ({exc}); give --cache a new "
                    "file or --no-cache"
                ) from None

    def get(self, key: str) -> tuple[str, dict] | None:
        if self._conn is None:
            return None
        with self._lock:
            row = self._conn.execute("SELECT answer, usage FROM answers WHERE key = ?", (key,)).fetchone()
        return (row[0], json.loads(row[1] or "{}")) if row else None

    def get_many(self, keys: list[str]) -> dict[str, tuple[str, dict]]:
        """All cached answers and their usage among ``keys`` in a few queries."""
        return {
            key: (answer, json.loads(usage or "{}")) for key, answer, usage in self._select(keys, "key, answer, usage")
        }

    def answers(self, keys: list[str]) -> dict[str, str]:
        """``key -> answer text`` for the cached ones among ``keys`` (a rerun's lookups stay cheap)."""
        return dict(self._select(keys, "key, answer"))

    def _select(self, keys: list[str], columns: str) -> list[tuple]:
        if self._conn is None or not keys:
            return []
        unique = list(dict.fromkeys(keys))
        rows: list[tuple] = []
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows.extend(self._conn.execute(f"SELECT {columns} FROM answers WHERE key IN ({marks})", chunk))
        return rows

    def put(self, key: str, answer: str, usage: dict) -> None:
        if self._conn is None:
            return
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO answers (key, answer, usage, created) VALUES (?, ?, ?, ?)",
                (key, answer, json.dumps(usage), time.time()),
            )
            self._conn.commit()

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        if self._conn is not None:
            with self._lock:
                self._conn.close()
            self._conn = None
