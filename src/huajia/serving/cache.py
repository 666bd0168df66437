"""Content-addressed result cache on disk (as ComfyUI caches by content).

The key is a hash of everything that determines the output: model identity (name + weights
hash), every generation parameter, the seed and the LoRAs with their scales. A hit returns the
stored bytes unchanged without touching the model. The cache is capped in bytes; the least
recently used entries go first. The same store, with ``evict=False``, holds the result files:
full, it takes no more (the service refuses new work) rather than drop a finished job's result;
each entry records its tenant (``owner``) for per-tenant quotas and file access.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path


def cache_key(model_identity: str, params: dict) -> str:
    canonical = json.dumps({"model": model_identity, "params": params}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResultCache:
    def __init__(self, folder: str | Path, max_bytes: int = 2 * 1024**3, evict: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.evict = max_bytes, evict
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "index.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # the index only orders eviction: losing a few 'used' stamps in a crash is harmless,
        # and not syncing keeps a cache hit far below 10 ms
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, "
                         "size INTEGER NOT NULL, used REAL NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "owner" not in columns:  # a store from before tenants
            self._db.execute("ALTER TABLE entries ADD COLUMN owner TEXT")

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.bin"

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:  # not there, or a name the file system refuses (too long, …)
            return None
        with self._lock:
            self._db.execute("UPDATE entries SET used = ? WHERE key = ?", (time.time(), key))
        return data

    def put(self, key: str, data: bytes, owner: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers see the whole file or none of it
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries (key, size, used, owner) "
                             "VALUES (?, ?, ?, ?)", (key, len(data), time.time(), owner))
            if self.evict:
                self._evict()

    def _evict(self) -> None:
        total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
        if total <= self.max_bytes:
            return
        for key, size in self._db.execute("SELECT key, size FROM entries ORDER BY used").fetchall():
            if total <= self.max_bytes:
                break
            self._path(key).unlink(missing_ok=True)
            self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
            total -= size

    def size(self, owner: str | None = None) -> int:
        """Bytes stored (of one tenant's entries, when ``owner`` is given)."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        with self._lock:
            return self._db.execute(f"SELECT COALESCE(SUM(size), 0) FROM entries {where}",
                                    args).fetchone()[0]

    def owner(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT owner FROM entries WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def delete(self, key: str) -> None:
        """The entry and its file gone (a missing key is fine)."""
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError:  # a name the file system refuses was never stored
            return
        with self._lock:
            self._db.execute("DELETE FROM entries WHERE key = ?", (key,))

    def unused_since(self, cutoff: float) -> list[str]:
        """Keys not used since ``cutoff`` (seconds since the epoch): retention's sweep."""
        with self._lock:
            return [row[0] for row in self._db.execute(
                "SELECT key FROM entries WHERE used < ?", (cutoff,))]
