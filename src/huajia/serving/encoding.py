"""Result pictures in the format a client asks for (JPEG, WebP), metered and cached.

Results are stored as PNG with their infotext. Re-encoding a 2048² picture as WebP takes about a
second of CPU, so it runs on a small pool of its own (never on the event loop nor in the request
thread pool that ``/health`` shares; one thread per two cores, at nice 10), and each (picture,
format, quality) is encoded once (requests that arrive while it is encoded wait for that
encoding) and kept in a small in-memory cache, capped in bytes, least recently used out first.
It is metered: at most ``max_waiting`` different encodings wait or run at once; one more is a
503 with Retry-After (48 requests for 48 qualities of one picture would otherwise queue a
minute of CPU), while a request for an encoding already under way or cached is always served.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from huajia.errors import HuajiaError
from huajia.serving.schemas import OUTPUT_FORMATS


class ReencodingBusy(HuajiaError):
    """Too many different re-encodings wait already (HTTP 503, Retry-After)."""


def lower_priority(niceness: int = 10) -> None:
    """This worker thread yields the CPU to the event loop and the request threads (Linux
    schedules threads by their own nice value; elsewhere nothing changes)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def encode_as(png: bytes, output_format: str, quality: int = 100) -> bytes:
    """A result picture (stored as PNG, with its infotext) in the format a client asked for."""
    if output_format == "png":
        return png
    # WebP's effort 1 of 6: a 2048² result in 0.07 s of CPU instead of 0.20 s at Pillow's
    # default 4, for 3 % more bytes (measured on an upscaled result)
    effort = {"method": 1} if output_format == "webp" else {}
    with Image.open(io.BytesIO(png)) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, OUTPUT_FORMATS[output_format], quality=quality,
                                  **effort)
    return buffer.getvalue()


class Reencoder:
    """``await encode(name, png, format, quality)``: at most ``workers`` encodings at once (one
    per two cores by default) and ``max_waiting`` waiting or running, each (name, format,
    quality) encoded once while it stays in the ``max_bytes`` cache."""

    def __init__(self, workers: int | None = None, max_bytes: int = 64 * 1024**2,
                 max_waiting: int = 8):
        workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self.max_bytes, self.max_waiting = max_bytes, max_waiting
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="huajia-encode",
                                        initializer=lower_priority)
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._pending: dict[tuple, asyncio.Future] = {}  # encodings under way (event loop only)
        self._lock = threading.Lock()
        self.encoded = 0  # encodings done (tests and benchmarks)

    async def encode(self, name: str, png: bytes, output_format: str, quality: int) -> bytes:
        if output_format == "png":
            return png
        key = (name, output_format, quality)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        # one encoding per key at a time: 48 requests for one picture wait for the same one
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_waiting:
                raise ReencodingBusy(
                    f"{len(self._pending)} pictures are being re-encoded already; retry shortly, "
                    "or ask for format=png (sent as stored, with no re-encoding)")
            pending = self._pending[key] = asyncio.get_running_loop().run_in_executor(
                self._pool, encode_as, png, output_format, quality)
            pending.add_done_callback(lambda done: self._finish(key, done))
        return await asyncio.shield(pending)

    def _finish(self, key: tuple, done) -> None:
        self._pending.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._keep(key, done.result())

    def _keep(self, key: tuple, data: bytes) -> None:
        with self._lock:
            self.encoded += 1
            if key in self._cache or len(data) > self.max_bytes:
                return
            self._cache[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._cache.popitem(last=False)
                self._size -= len(old)

    def forget(self, name: str) -> None:
        """Drop every encoding of ``name`` (a deleted result)."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == name]:
                self._size -= len(self._cache.pop(key))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
